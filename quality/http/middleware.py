"""One middleware around every request: request id, a bound on the body's size,
security headers, the access log line and the request metrics, in a single
pass over the request and the response."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable

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
# As they go on the wire (lower-case names), added in one pass over a response's headers.
_SECURITY_HEADERS_RAW = tuple(
    (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in SECURITY_HEADERS.items()
)
_REQUEST_ID_HEADER = b"x-request-id"
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
                message["headers"] = _with_our_headers(message.get("headers", ()), request_id)
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


def _with_our_headers(headers: Iterable[tuple[bytes, bytes]], request_id: str
                      ) -> list[tuple[bytes, bytes]]:
    """The response's headers with our request id (replacing any) and each
    security header the route did not set itself."""
    kept = [header for header in headers if header[0] != _REQUEST_ID_HEADER]
    names = {name for name, _ in kept}
    kept.append((_REQUEST_ID_HEADER, request_id.encode("latin-1")))
    kept.extend(header for header in _SECURITY_HEADERS_RAW if header[0] not in names)
    return kept


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _REQUEST_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex
