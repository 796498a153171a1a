"""Read-your-writes with a read replica: every request that may write (any
method but GET/HEAD/OPTIONS) leaves the browser a `quality_wrote` cookie with
the time its answer went out, and `written_at(request)` reads it back, for
`Database.read` to keep that client's reads on the primary until the replica
has what it wrote (quality/replica.py).

A cookie, not this process's memory: the next request may reach another app
host. It grants nothing: a forged or stale value only sends that client's
reads to the primary, or lets them see the replica a moment early, as any
client that never wrote would. It lives a little longer than the replica may
lag, since past that the replica is not used anyway. The app adds the
middleware only when a replica is configured.
"""

from __future__ import annotations

import math
import time

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE_NAME = "quality_wrote"
_READS = {"GET", "HEAD", "OPTIONS"}


class WritesMiddleware:
    def __init__(self, app: ASGIApp, max_lag: float) -> None:
        self.app = app
        self.max_age = math.ceil(max_lag) + 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _READS:
            await self.app(scope, receive, send)
            return
        secure = "; Secure" if scope.get("scheme") == "https" else ""

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Sent when the handler is done: what it wrote is committed by now.
                MutableHeaders(scope=message).append(
                    "Set-Cookie", f"{COOKIE_NAME}={time.time():.6f}; Max-Age={self.max_age};"
                                  f" Path=/; HttpOnly; SameSite=Lax{secure}")
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def written_at(connection: HTTPConnection) -> float | None:
    """When this client last wrote (epoch seconds), if recently; None otherwise."""
    try:
        value = float(connection.cookies.get(COOKIE_NAME) or "nan")
    except ValueError:
        return None
    return value if math.isfinite(value) else None
