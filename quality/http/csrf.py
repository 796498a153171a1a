"""CSRF tokens: one random token per browser session, sent back by every
state-changing request as the `X-CSRF-Token` header (htmx) or a
`csrf_token` form field (plain forms)."""

from __future__ import annotations

import hmac
import secrets

from starlette.exceptions import HTTPException
from starlette.requests import Request

from quality.i18n import lazy

FIELD = "csrf_token"
HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(request: Request) -> str:
    """The session's token, created on first use."""
    token = request.session.get("c")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["c"] = token
    return token


async def verify_csrf(request: Request) -> None:
    if request.method in SAFE_METHODS:
        return
    expected = request.session.get("c")
    sent = request.headers.get(HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(FIELD)
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(sent, expected):
        raise HTTPException(
            403, lazy("This form has expired or did not come from this site. Reload the page and try again.")
        )
