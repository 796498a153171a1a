"""The server-sent events wire format, written once: an event's bytes, the
reconnection delay, the keep-alive comment. quality/http/live.py runs the
streams; the live tables (quality/scans/feed.py) frame their table with it
once per change, for every open page."""

from __future__ import annotations

RETRY = b"retry: 2000\n\n"  # the browser reconnects 2 s after a stream ends
KEEPALIVE = b": keep-alive\n\n"


def event(name: str, event_id: int, html: str) -> bytes:
    """One event carrying HTML, a `data:` line per line of it; `event_id` is what
    the browser sends back as Last-Event-ID when it reconnects."""
    data = "".join(f"data: {line}\n" for line in html.splitlines())
    return f"event: {name}\nid: {event_id}\n{data}\n".encode()
