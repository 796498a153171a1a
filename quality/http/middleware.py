"""One middleware around every request: request id, a bound on the body's size,
security headers, the access log line and the request metrics, in a single
pass over the request and the response."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quality.i18n import lazy
from quality.metrics import Metrics

log = logging.getLogger("quality.access")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Every form here is a few hundred bytes; nothing bigger is read into memory.
MAX_BODY_BYTES = 64 * 1024


class RequestMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise HTTPException(413, lazy("The request is too large."))
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        finally:
            self._record(scope, request_id, status, time.perf_counter() - started)

    def _record(self, scope: Scope, request_id: str, status: int, seconds: float) -> None:
        route = scope.get("route")
        route_name = getattr(route, "path", None) or ("static" if scope["path"].startswith(
            "/static/") else "unmatched")
        self.metrics.requests.labels(scope["method"], route_name, str(status)).inc()
        self.metrics.latency.labels(route_name).observe(seconds)
        if not log.isEnabledFor(logging.INFO):
            return
        user = scope.get("state", {}).get("user")
        log.info(
            "%s %s %s %.1fms",
            scope["method"], scope["path"], status, seconds * 1000,
            extra={
                "request_id": request_id, "route": route_name, "status": status,
                "duration_ms": round(seconds * 1000, 1),
                "user": getattr(user, "username", None),
            },
        )


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _REQUEST_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex
