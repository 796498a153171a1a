"""Operations endpoints: /healthz for load balancers, /metrics for Prometheus."""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from quality.db import DatabaseUnavailable
from quality.permissions import PUBLIC, guard
from quality.services import services
from quality.user_sessions import client_address

LOOPBACK = {"127.0.0.1", "::1"}


@guard(PUBLIC)
async def healthz(request: Request) -> Response:
    db = services(request).db
    try:
        async with db.transaction() as cur:
            await cur.execute("SELECT 1")
            await cur.fetchone()
    except DatabaseUnavailable as exc:
        return JSONResponse({"status": "unavailable", "database": str(exc)}, status_code=503)
    stats = db.stats()
    return JSONResponse(
        {"status": "ok", "database": "reachable",
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
            raise HTTPException(401, "Send the metrics token as 'Authorization: Bearer ...'.")
    elif settings.forwarded_allow_ips:
        raise HTTPException(403, "Behind a trusted proxy, set QUALITY_METRICS_TOKEN to scrape metrics.")
    elif client_address(request) not in LOOPBACK:
        raise HTTPException(403, "Set QUALITY_METRICS_TOKEN to scrape metrics from another host.")
    body = generate_latest(services(request).metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
