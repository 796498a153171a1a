"""Named capabilities and the one check every route goes through: `guard`."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from quality.db import DatabaseUnavailable
from quality.http.csrf import verify_csrf
from quality.http.errors import NotSignedIn
from quality.http.sessions import load_user
from quality.i18n import lazy

# Seeded by migration 0001; roles get them through the permission matrix.
PERMISSIONS = {
    "scan.quality": lazy("Use the quality scan station (/scan)"),
    "scan.fg": lazy("Use the finished-goods scan station (/fgscan)"),
    "scans.view": lazy("View scan lists"),
    "scans.export": lazy("Export scan lists as CSV and XLSX"),
    "reports.view": lazy("View reports"),
    "admin.users": lazy("Manage users"),
    "admin.roles": lazy("Manage roles and their permissions"),
    "admin.defects": lazy("Manage the defect code catalogue"),
    "admin.audit": lazy("View the audit log"),
    "alerts.view": lazy("See and acknowledge quality alerts"),  # these two: migration 0015
    "admin.alerts": lazy("Manage alert rules"),
}
# The matrix groups its columns by the part of a name before the dot, each
# group headed with its area's title here (the roles page test wants one for each).
AREAS = {
    "scan": lazy("Stations"),
    "scans": lazy("Scan lists"),
    "reports": lazy("Reports"),
    "admin": lazy("Administration"),
    "alerts": lazy("Alerts"),
}
SIGNED_IN = "signed-in"  # any user with a live session
PUBLIC = None  # no session needed (login page, health check)


def by_area() -> list[tuple[str, list[tuple[str, str]]]]:
    """Each area's title with its permissions (name, description), in
    PERMISSIONS order: the matrix's column groups."""
    grouped: dict[str, list[tuple[str, str]]] = {}
    for name, text in PERMISSIONS.items():
        grouped.setdefault(name.split(".")[0], []).append((name, text))
    return [(AREAS[area], permissions) for area, permissions in grouped.items()]


Handler = Callable[[Request], Awaitable[Response]]

log = logging.getLogger(__name__)


def guard(permission: str | None, *, when_unavailable: Handler | None = None
          ) -> Callable[[Handler], Handler]:
    """Everything a route checks before its handler runs, declared with the route:
    the user must hold `permission`, and a state-changing request must carry the
    session's CSRF token. `when_unavailable` answers in place of the generic 503
    page when the database is busy or unreachable (in the checks or the handler)."""
    if permission not in (SIGNED_IN, PUBLIC) and permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            try:
                await _check_permission(request, permission)
                await verify_csrf(request)
                return await handler(request)
            except DatabaseUnavailable as exc:
                if when_unavailable is None:
                    raise
                log.warning("database unavailable for %s %s: %s; answered by the route",
                            request.method, request.url.path, exc)
                return await when_unavailable(request)

        guarded.permission = permission  # type: ignore[attr-defined]
        return guarded

    return decorate


async def _check_permission(request: Request, permission: str | None) -> None:
    if permission is PUBLIC:
        return
    user = await load_user(request)
    if user is None:
        raise NotSignedIn
    if permission != SIGNED_IN and not user.can(permission):
        raise HTTPException(403, lazy("Your role does not allow this page."))
