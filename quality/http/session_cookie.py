"""Signed session cookie (itsdangerous), set only when its content changes.

The cookie holds two random values: `t`, the session token whose SHA-256 names
the server-side session row, and `c`, the CSRF token; and `l`, the signed-in
user's language (quality/http/language.py). Nothing in it grants a right by
itself: user, role and permissions are read from the database.
A tampered or foreign cookie is ignored, as if there were none.
"""

from __future__ import annotations

import json
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE_NAME = "quality_session"
# Cookies whose signature this process checked; forgotten all at once when full.
_MAX_VERIFIED = 10_000


class Session(dict[str, Any]):
    """The cookie's content; `changed` is set by any write."""

    changed = False

    def __setitem__(self, key: str, value: Any) -> None:
        self.changed = True
        super().__setitem__(key, value)

    def replace(self, values: dict[str, Any]) -> None:
        self.changed = True
        self.clear()
        self.update(values)


class SessionMiddleware:
    def __init__(self, app: ASGIApp, secret_key: str, max_age_seconds: int) -> None:
        self.app = app
        self.serializer = URLSafeSerializer(secret_key, salt="quality.session")
        self.max_age = max_age_seconds
        self._verified: dict[str, dict[str, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session = Session(self._load(HTTPConnection(scope).cookies.get(COOKIE_NAME)))
        scope["session"] = session
        secure = scope.get("scheme") == "https"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and session.changed:
                headers = MutableHeaders(scope=message)
                headers.append("Set-Cookie", self._cookie(session, secure))
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _load(self, raw: str | None) -> dict[str, Any]:
        """The cookie's content. A browser sends the same cookie on every request
        of its session, so the signature is checked once per process and the
        cookie remembered; only cookies we signed are, so a stranger's stream of
        made-up cookies cannot fill the memory."""
        if not raw:
            return {}
        data = self._verified.get(raw)
        if data is None:
            try:
                data = self.serializer.loads(raw)
            except (BadSignature, json.JSONDecodeError, UnicodeDecodeError):
                return {}
            if not isinstance(data, dict):
                return {}
            if len(self._verified) >= _MAX_VERIFIED:
                self._verified.clear()
            self._verified[raw] = data
        return data  # shared: the request's Session is a copy of it

    def _cookie(self, session: Session, secure: bool) -> str:
        attributes = "Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
        if not session:
            return f"{COOKIE_NAME}=; Max-Age=0; {attributes}"
        value = self.serializer.dumps(dict(session))
        return f"{COOKIE_NAME}={value}; Max-Age={self.max_age}; {attributes}"
