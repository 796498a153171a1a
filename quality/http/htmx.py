"""What htmx tells the server about a request."""

from __future__ import annotations

from starlette.requests import Request


def is_htmx(request: Request) -> bool:
    """An htmx request, not a full navigation that happens to carry the header."""
    return (
        request.headers.get("hx-request") == "true"
        and request.headers.get("sec-fetch-mode") != "navigate"
    )
