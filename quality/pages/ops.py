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
from quality.http.services import services
from quality.http.sessions import client_address
from quality.i18n import lazy
from quality.permissions import PUBLIC, guard
from quality.session_cache import REVOCATIONS

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "::1"}
# Load balancers and compose give up after a few seconds: answer well inside 1 s,
# waiting for a free connection only half of that.
HEALTH_SECONDS = 0.9
HEALTH_ACQUIRE_SECONDS = 0.5


@guard(PUBLIC)
async def healthz(request: Request) -> Response:
    """200 when a connection reads the revocation counter's one row in time,
    else 503: a table, not `SELECT 1`, which a Galera node without quorum
    still answers while refusing every table (1047). Anyone may
    ask; only an operator (`_trusted`) is told more than ok/unavailable: why
    (`busy`: no connection free, `unreachable`: connect or query failed, `slow`:
    no answer in time), whether connections are encrypted and the pool's use,
    and, with a read replica, whether it answers, its lag and the reads it
    served against those the primary answered instead. The replica never
    makes the answer 503: without it the primary answers every read.
    What went wrong in detail goes to the log, never to the caller."""
    db = services(request).db
    try:
        async with asyncio.timeout(HEALTH_SECONDS):
            async with db.transaction(acquire_timeout=HEALTH_ACQUIRE_SECONDS) as cur:
                await cur.execute(REVOCATIONS)
                await cur.fetchone()
    except PoolTimeout as exc:
        return _unhealthy(request, "busy", exc)
    except DatabaseUnavailable as exc:
        return _unhealthy(request, "unreachable", exc)
    except TimeoutError as exc:
        return _unhealthy(request, "slow", exc)
    if not _trusted(request):
        return JSONResponse({"status": "ok"})
    stats = db.stats()
    body = {"status": "ok", "database": "reachable", "encrypted": db.encrypted,
            "pool": {"size": stats.size, "in_use": stats.in_use, "max": stats.maxsize}}
    if (replica := db.replica) is not None:
        body["replica"] = {
            "reachable": replica.reachable, "encrypted": replica.pool.encrypted,
            "lag_seconds": None if replica.lag is None else round(replica.lag, 3),
            "max_lag_seconds": replica.max_lag,
            "reads": replica.served, "fallbacks": dict(replica.fallbacks),
        }
    return JSONResponse(body)


@guard(PUBLIC)
async def metrics(request: Request) -> Response:
    settings = services(request).settings
    if settings.metrics_token:
        if not _shows_token(request):
            raise HTTPException(401, lazy("Send the metrics token as 'Authorization: Bearer ...'."))
    elif settings.forwarded_allow_ips:
        raise HTTPException(403, lazy("Behind a trusted proxy, set QUALITY_METRICS_TOKEN to scrape metrics."))
    elif not _from_this_machine(request):
        raise HTTPException(
            403, lazy("Set QUALITY_METRICS_TOKEN to scrape metrics from another host."))
    return Response(services(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _trusted(request: Request) -> bool:
    """Whether the caller may see how the process is doing: it shows the metrics
    token, or calls from this machine. Scrapers carry no session. Behind a
    trusted proxy the address is whatever the proxy forwarded (or the proxy's
    own loopback), so it proves nothing and only the token will do."""
    return _shows_token(request) or _from_this_machine(request)


def _shows_token(request: Request) -> bool:
    token = services(request).settings.metrics_token
    sent = request.headers.get("authorization", "")
    return bool(token) and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())


def _from_this_machine(request: Request) -> bool:
    return not services(request).settings.forwarded_allow_ips and client_address(request) in LOOPBACK


def _unhealthy(request: Request, reason: str, exc: BaseException) -> Response:
    log.warning("health check failed (%s): %s", reason, exc or type(exc).__name__)
    body = {"status": "unavailable", **({"reason": reason} if _trusted(request) else {})}
    return JSONResponse(body, status_code=503)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
