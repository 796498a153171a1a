"""What a request handler may use from its process: settings, the database pool,
the live scan tables, metrics, the template renderer, the sessions it trusts
and the exports' places and thread, in one typed object.

The app's lifespan builds it once and hands it to every request as lifespan
state; `services(request)` is the one way a handler reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

from starlette.requests import HTTPConnection

from quality.answers import SharedAnswers

if TYPE_CHECKING:  # imported for the type checker only: these modules import this one
    from quality.alerts.engine import AlertEngine
    from quality.db import Database
    from quality.http.exporter import Exporter
    from quality.http.slots import Slots
    from quality.http.templates import Renderer
    from quality.metrics import Metrics
    from quality.scans.feed import ScanWatcher
    from quality.session_cache import SessionCache
    from quality.settings import Settings

@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    db: Database
    scan_watcher: ScanWatcher
    metrics: Metrics
    renderer: Renderer
    sessions: SessionCache
    streams: Slots  # the live streams open (quality/http/live.py)
    exporter: Exporter  # the exports' places and thread (quality/pages/scan_list/export.py)
    alerts: AlertEngine  # the alert rules' windows and the open alerts (quality/alerts/)
    # Totals and reports shared by every open page asking the same (quality/answers.py).
    answers: SharedAnswers = field(default_factory=SharedAnswers)


class LifespanState(TypedDict):
    """What the lifespan yields; Starlette copies it into every request's state."""

    services: Services


def services(connection: HTTPConnection) -> Services:
    """The process's services, as the lifespan built them."""
    return connection.state.services
