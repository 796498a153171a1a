"""Server-side sessions: a row per login, found by the SHA-256 of the cookie's
token. Ending a row (logout, password change, user disabled) ends the session
in every process at once; expiry slides with use, a shift at a time."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from starlette.requests import Request

from quality.clock import utc_now
from quality.db import Cursor, Database
from quality.services import services


@dataclass(frozen=True)
class User:
    id: int
    username: str
    full_name: str
    role: str
    permissions: frozenset[str]
    language: str | None = None  # their choice of UI language; None: the plant's

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def display_name(self) -> str:
        return self.full_name or self.username


# Sliding expiry is written at most this often, not on every request.
_EXTEND_EVERY = timedelta(minutes=5)
_UNKNOWN = object()


def _token_id(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def start_session(cur: Cursor, request: Request, user_id: int, hours: float) -> None:
    """A fresh token and CSRF token on every login (no session fixation)."""
    token = secrets.token_urlsafe(32)
    now = utc_now()
    await cur.execute(
        "INSERT INTO sessions (id, user_id, created_at, expires_at, address, user_agent)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (
            _token_id(token), user_id, now, now + timedelta(hours=hours),
            client_address(request)[:45], request.headers.get("user-agent", "")[:200],
        ),
    )
    request.session.replace({"t": token, "c": secrets.token_urlsafe(32)})


async def end_session(db: Database, request: Request) -> None:
    token = request.session.get("t")
    if token:
        async with db.transaction() as cur:
            await cur.execute("DELETE FROM sessions WHERE id = %s", (_token_id(token),))
    request.session.replace({})


async def end_user_sessions(cur: Cursor, user_id: int) -> None:
    await cur.execute("DELETE FROM sessions WHERE user_id = %s", (user_id,))


async def load_user(request: Request) -> User | None:
    """The signed-in user with their current role and permissions, or None."""
    cached = getattr(request.state, "user", _UNKNOWN)
    if cached is not _UNKNOWN:
        return cached
    user = None
    token = request.session.get("t")
    if isinstance(token, str):
        user = await _lookup(request, _token_id(token))
    request.state.user = user
    return user


async def _lookup(request: Request, session_id: bytes) -> User | None:
    db = services(request).db
    hours = services(request).settings.session_hours
    now = utc_now()
    renewed = now + timedelta(hours=hours)
    async with db.transaction() as cur:
        await cur.execute(
            "CALL session_user(%s, %s, %s, %s)",
            (session_id, now, renewed, renewed - _EXTEND_EVERY),
        )
        row = await cur.fetchone()
        await cur.nextset()
    if row is None:
        return None
    user_id, username, full_name, role, permissions, language = row
    return User(
        id=user_id, username=username, full_name=full_name, role=role,
        permissions=frozenset(permissions.split(",")) if permissions else frozenset(),
        language=language,
    )


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
