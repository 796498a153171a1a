"""Operations endpoints: /healthz for load balancers, /metrics for Prometheus."""

from __future__ import annotations

import asyncio
import hmac
import logging

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from quality.db import DatabaseUnavailable, PoolTimeout
from quality.i18n import lazy
from quality.permissions import PUBLIC, guard
from quality.services import services
from quality.user_sessions import client_address

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "::1"}
# Load balancers and compose give up after a few seconds: answer well inside 1 s,
# waiting for a free connection only half of that.
HEALTH_SECONDS = 0.9
HEALTH_ACQUIRE_SECONDS = 0.5


@guard(PUBLIC)
async def healthz(request: Request) -> Response:
    """200 when a connection answers `SELECT 1` in time, else 503 with one word:
    `busy` (no connection free), `unreachable` (connect or query failed) or
    `slow` (no answer in time). The details go to the log, never to the caller."""
    db = services(request).db
    try:
        async with asyncio.timeout(HEALTH_SECONDS):
            async with db.transaction(acquire_timeout=HEALTH_ACQUIRE_SECONDS) as cur:
                await cur.execute("SELECT 1")
                await cur.fetchone()
    except PoolTimeout as exc:
        return _unhealthy("busy", exc)
    except DatabaseUnavailable as exc:
        return _unhealthy("unreachable", exc)
    except TimeoutError as exc:
        return _unhealthy("slow", exc)
    stats = db.stats()
    return JSONResponse(
        {"status": "ok", "database": "reachable", "encrypted": db.encrypted,
         "pool": {"size": stats.size, "in_use": stats.in_use, "max": stats.maxsize}}
    )


@guard(PUBLIC)
async def metrics(request: Request) -> Response:
    # Scrapers carry no session: they show QUALITY_METRICS_TOKEN, or, when no
    # token is set, must call from this machine. Behind a trusted proxy the
    # address is whatever the proxy forwarded (or the proxy's own loopback),
    # so it proves nothing and only the token will do.
    settings = services(request).settings
    token = settings.metrics_token
    if token:
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, lazy("Send the metrics token as 'Authorization: Bearer ...'."))
    elif settings.forwarded_allow_ips:
        raise HTTPException(403, lazy("Behind a trusted proxy, set QUALITY_METRICS_TOKEN to scrape metrics."))
    elif client_address(request) not in LOOPBACK:
        raise HTTPException(
            403, lazy("Set QUALITY_METRICS_TOKEN to scrape metrics from another host."))
    return Response(services(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _unhealthy(reason: str, exc: BaseException) -> Response:
    log.warning("health check failed (%s): %s", reason, exc or type(exc).__name__)
    return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
