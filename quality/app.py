"""The application: lifespan (the process's services: one database pool, the
live scan tables, the renderer), middleware, routes.

Wiring only; each capability lives in its own module and brings its routes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from quality.alerts.engine import AlertBoard, AlertEngine, Channels
from quality.alerts.outbox import Sender
from quality.db import Database
from quality.http.errors import handlers
from quality.http.exporter import Exporter
from quality.http.middleware import RequestMiddleware
from quality.http.services import LifespanState, Services
from quality.http.session_cookie import SessionMiddleware
from quality.http.slots import STREAMS_PER_PROCESS, STREAMS_PER_USER, Slots
from quality.http.templates import STATIC_DIR, Renderer
from quality.http.writes import WritesMiddleware
from quality.logs import configure_logging
from quality.metrics import Metrics
from quality.pages import home, ops
from quality.pages.account import language, password, sign_in
from quality.pages.admin import audit as admin_audit
from quality.pages.admin import defects as admin_defects
from quality.pages.admin import index as admin_index
from quality.pages.admin import roles as admin_roles
from quality.pages.admin import users as admin_users
from quality.pages.alerts import admin as admin_alerts
from quality.pages.alerts import views as alerts
from quality.pages.reports import views as reports
from quality.pages.scan_list import views as scan_list
from quality.pages.stations import views as stations
from quality.replica import Replica
from quality.scans.feed import ScanWatcher, TableMarkup
from quality.session_cache import SessionCache
from quality.settings import Settings, load_settings
from quality.shifts import Shifts
from quality.summary.writer import Summariser


def create_app(settings: Settings | None = None) -> Starlette:
    if settings is None:
        # Called by uvicorn as a factory, in each worker process.
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
    if settings.database_url is None or settings.secret_key is None:
        raise RuntimeError("create_app needs a database URL and secret key (quality serve sets both)")
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[LifespanState]:
        # Created here, on the serving event loop: a pool made elsewhere would
        # belong to another loop.
        db = Database(
            settings.database_url.connect_kwargs(),
            minsize=settings.pool_min,
            maxsize=settings.pool_max,
            timeout=settings.pool_timeout,
            recycle=settings.pool_recycle,
            query_timeout=settings.query_timeout,
            bulk_share=settings.pool_bulk_share,
        )
        if settings.replica_url is not None:
            db.replica = Replica(db, _replica_pool(settings), settings.replica_max_lag)
        await db.open()
        metrics.watch_pool(db)
        renderer = Renderer(settings.timezone, {"navigation": home.destinations_for,
                                                "alert_stream": alerts.banner_stream},
                            settings.language)
        sessions = SessionCache()
        watcher = ScanWatcher(db, TableMarkup(renderer), sessions)
        await watcher.start()
        engine = AlertEngine(db, AlertBoard(), Channels(webhook=settings.alert_webhook is not None,
                                                        email=settings.smtp_url is not None),
                             Shifts.of_plant(settings))
        watcher.listeners.append(engine.observe)
        await engine.start()
        sender = Sender(db, settings, metrics, engine.fired)
        sender.start()
        summariser = Summariser(db, Shifts.of_plant(settings))
        summariser.start()
        exporter = Exporter(settings.exports_per_user, settings.exports_per_process)
        try:
            yield {"services": Services(settings, db, watcher, metrics, renderer, sessions,
                                        Slots(STREAMS_PER_USER, STREAMS_PER_PROCESS), exporter, engine)}
        finally:
            exporter.close()
            await summariser.stop()
            await sender.stop()
            await engine.stop()
            await watcher.stop()
            await db.close()
            await metrics.stop()

    app = _App(
        outermost=lambda inner: RequestMiddleware(inner, metrics=metrics),
        routes=[
            *home.routes,
            *sign_in.routes,
            *language.routes,
            *stations.routes,
            *scan_list.routes,
            *reports.routes,
            *ops.routes,
            *password.routes,
            *admin_index.routes,
            *admin_users.routes,
            *admin_roles.routes,
            *admin_defects.routes,
            *admin_audit.routes,
            *alerts.routes,
            *admin_alerts.routes,
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=settings.secret_key,
                max_age_seconds=int(settings.session_hours * 3600) + 7 * 86400,
            ),
            *([Middleware(WritesMiddleware, max_lag=settings.replica_max_lag)]
              if settings.replica_url is not None else []),
        ],
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    return app


def _replica_pool(settings: Settings) -> Database:
    """The read replica's own pool, as bounded as the primary's. It opens no
    connection before the first check, so a replica that is down at start-up
    is a warning, not an error."""
    assert settings.replica_url is not None
    return Database(
        settings.replica_url.connect_kwargs(),
        minsize=0,
        maxsize=settings.pool_max,
        timeout=settings.pool_timeout,
        recycle=settings.pool_recycle,
        query_timeout=settings.query_timeout,
        bulk_share=settings.pool_bulk_share,
    )


class _App(Starlette):
    """Starlette with one middleware outside its own server-error one, which
    otherwise sits outermost: the 500 page then goes out through our request
    middleware too, with the same security headers and request id as any page."""

    def __init__(self, *, outermost: Callable[[ASGIApp], ASGIApp], **kwargs: Any) -> None:
        self._outermost = outermost
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        return self._outermost(super().build_middleware_stack())
