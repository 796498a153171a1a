"""Server-side sessions: a row per login, found by the SHA-256 of the cookie's
token. Expiry slides with use, a shift at a time, up to twice a shift in all.

Each process trusts a session it checked for a moment (quality/session_cache.py:
`SessionCache`), so a scan costs one database round trip (its save), and
ending a session takes effect in every process within a second.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import timedelta

from starlette.requests import Request

from quality.clock import utc_now
from quality.db import Cursor, Database
from quality.http.services import services
from quality.procedures import call
from quality.session_cache import Checked, User

# Sliding expiry is written at most this often, not on every request.
_EXTEND_EVERY = timedelta(minutes=5)
# However it slides, a session ends this many shifts after sign-in.
MAX_SHIFTS = 2
_UNKNOWN = object()
def _token_id(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def start_session(cur: Cursor, request: Request, user_id: int, hours: float) -> None:
    """A fresh token and CSRF token on every login (no session fixation); the
    browser's previous session, if any, ends."""
    previous = request.session.get("t")
    if isinstance(previous, str):
        await cur.execute("DELETE FROM sessions WHERE id = %s", (_token_id(previous),))
        services(request).sessions.forget(_token_id(previous))
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
    if isinstance(token, str):
        async with db.transaction() as cur:
            await cur.execute("DELETE FROM sessions WHERE id = %s", (_token_id(token),))
        services(request).sessions.forget(_token_id(token))
    request.session.replace({})


async def end_user_sessions(cur: Cursor, user_id: int, keep: bytes | None = None) -> None:
    """End every session of this user, in every process; but `keep`, if given."""
    await cur.execute("DELETE FROM sessions WHERE user_id = %s AND id <> %s",
                      (user_id, keep or b""))


def current_session_id(request: Request) -> bytes | None:
    """The database id of this request's session, if it has one."""
    token = request.session.get("t")
    return _token_id(token) if isinstance(token, str) else None


async def purge_sessions(cur: Cursor, hours: float) -> None:
    """Delete a batch of sessions that have ended (expired, or past their cap)."""
    now = utc_now()
    await cur.execute(
        "DELETE FROM sessions WHERE expires_at < %s OR created_at < %s LIMIT 500",
        (now, now - MAX_SHIFTS * timedelta(hours=hours)),
    )


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


async def session_alive(request: Request) -> bool:
    """Whether this request's session still holds, checked again (a long
    response, such as an event stream, outlives the check made at its start)."""
    token = request.session.get("t")
    return isinstance(token, str) and await _lookup(request, _token_id(token)) is not None


async def _lookup(request: Request, session_id: bytes) -> User | None:
    cache = services(request).sessions
    user = cache.get(session_id)
    if user is not None:
        return user
    version, checked_at = cache.version, time.monotonic()
    hours = timedelta(hours=services(request).settings.session_hours)
    now = utc_now()
    renewed = now + hours
    async with services(request).db.transaction() as cur:
        await call(cur, "session_user", session=session_id, now=now, renewed=renewed,
                   extend_below=renewed - _EXTEND_EVERY, started_after=now - MAX_SHIFTS * hours)
        row = await cur.fetchone()
        await cur.nextset()
    if row is None:
        return None
    user_id, username, full_name, role, permissions, expires_at, created_at, language = row
    user = User(
        id=user_id, username=username, full_name=full_name, role=role,
        permissions=frozenset(permissions.split(",")) if permissions else frozenset(),
        language=language,
    )
    # Checked again once the session needs sliding, or at its absolute end.
    recheck_after = min(expires_at - hours + _EXTEND_EVERY, created_at + MAX_SHIFTS * hours)
    cache.put(session_id, Checked(user, version, checked_at, recheck_after))
    return user


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
