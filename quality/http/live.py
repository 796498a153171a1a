"""Live event streams (server-sent events), written once for every stream:
the stations' live tables (/scan/stream, /fgscan/stream) and the scan list's
live first page (/scans/stream). A page brings what it watches and what it
sends (`events`); the rest is here.

- Slots: a process keeps at most STREAMS_PER_USER streams open per user and
  STREAMS_PER_PROCESS in all, so neither one browser left opening tabs nor a
  crowd of them ties up the process. A `LiveStream` takes its slot as the
  response starts, after its parameters were checked (a bad request takes
  none; no slot free: a 429), and gives it back however it ends: its events'
  end, an error, the client leaving before or during the body, cancellation.
- Checks: every CHECK_SECONDS the stream asks whether its session still holds
  and its user still has the permission its route's guard declares
  (`still_allowed`), on the process's trusted-session cache, so an open page
  costs no database work while nothing is revoked; it ends within 2 s of
  either's loss, and after STREAM_SECONDS anyway: the browser reconnects, and
  the reconnection is checked like any request.
- Framing (quality/sse.py): `retry:` first; each update one `event:` with an
  `id:` (the newest scan it carries, which the browser sends back as
  Last-Event-ID and `position` reads); a keep-alive comment after
  KEEPALIVE_SECONDS of quiet;
  a burst of changes waits COALESCE_SECONDS and goes as one update.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from quality.db import DatabaseUnavailable
from quality.http.errors import error_page
from quality.http.services import services
from quality.http.sessions import session_allows
from quality.i18n import lazy
from quality.session_cache import TRUST_SECONDS
from quality.sse import KEEPALIVE, RETRY

STREAM_SECONDS = 600.0
KEEPALIVE_SECONDS = 15.0
CHECK_SECONDS = TRUST_SECONDS
COALESCE_SECONDS = 0.2
# A scan id as the streams send it (`id:`) and the pages write it (`v`): at most BIGINT's digits.
_SCAN_ID = re.compile(r"[0-9]{1,20}")


def position(request: Request) -> int | None:
    """The newest scan the page already has: the browser's Last-Event-ID when it
    reconnects, else the page's `v`; None when neither says. Anything else is a
    400, answered before the stream takes a slot."""
    seen = request.headers.get("last-event-id") or request.query_params.get("v", "")
    if not seen:
        return None
    if not _SCAN_ID.fullmatch(seen):
        raise HTTPException(400, lazy("This live table's position is not valid. Reload the page."))
    return int(seen)


async def still_allowed(request: Request) -> bool:
    """Whether a live stream's user may still see it: their session holds and
    they still have the permission its route's guard declares. Unconfirmed
    (database unreachable) counts as no: the browser reconnects, and the
    reconnection is checked like any request."""
    try:
        return await session_allows(request, request.scope["route"].endpoint.permission)
    except DatabaseUnavailable:
        return False


async def events(changes: Callable[[], list[asyncio.Event]], fresh: Callable[[], bytes | None],
                 allowed: Callable[[], Awaitable[bool]]) -> AsyncGenerator[bytes, None]:
    """A stream's frames: `fresh()` after each change (None: nothing new to
    send), keep-alives in between, for as long as `allowed()` and at most
    STREAM_SECONDS. `changes()` gives the events set at the next change; they
    are taken before `fresh()` reads, so no change slips by."""
    yield RETRY
    deadline = time.monotonic() + STREAM_SECONDS
    sent_at = time.monotonic()
    while time.monotonic() < deadline and await allowed():
        watched = changes()
        frame = fresh()
        if frame is not None:
            yield frame
            sent_at = time.monotonic()
        elif time.monotonic() - sent_at >= KEEPALIVE_SECONDS:
            yield KEEPALIVE
            sent_at = time.monotonic()
        if await _changed(watched):
            await asyncio.sleep(COALESCE_SECONDS)


async def _changed(watched: list[asyncio.Event]) -> bool:
    """Whether any of these is set within CHECK_SECONDS (then the check comes round again)."""
    waits = [asyncio.ensure_future(change.wait()) for change in watched]
    done, pending = await asyncio.wait(waits, timeout=CHECK_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    for waiting in pending:
        waiting.cancel()
    return bool(done)


class LiveStream(StreamingResponse):
    """A live event stream, holding one of the process's stream slots exactly
    while it runs: taken as the response starts (a 429 instead when none is
    free), given back however it ends. Its parameters were checked before it
    was made, so nothing fails between taking and holding."""

    def __init__(self, request: Request, frames: AsyncGenerator[bytes, None]) -> None:
        super().__init__(frames, media_type="text/event-stream",
                         headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self._request = request
        self._frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Closed however the response ends, even if it never began.
        async with contextlib.aclosing(self._frames):
            slot = services(self._request).streams.take(self._request.state.user.id)
            if slot is None:
                refused = error_page(self._request, 429, lazy(
                    "Too many live tables are open. Close a page and reload."), {"Retry-After": "30"})
                await refused(scope, receive, send)
                return
            with slot:
                await super().__call__(scope, receive, send)
