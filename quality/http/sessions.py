"""Server-side sessions: a row per login, found by the SHA-256 of the cookie's
token. Expiry slides with use, a shift at a time, up to twice a shift in all.

Each process trusts a session it checked for a moment (quality/session_cache.py:
`SessionCache`), so a scan costs one database round trip (its save), and
ending a session takes effect in every process within a second.

Starting, checking (and sliding) and ending a session are transactions safe to
run again, so they go through `Database.run`: a deadlock with a concurrent
sign-in or purge is run again, not a 500.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import timedelta
from typing import Any

from starlette.requests import Request

from quality.clock import utc_now
from quality.db import Cursor, Database
from quality.http.language import remember_language
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


async def start_session(db: Database, request: Request, user_id: int, hours: float) -> None:
    """A fresh token and CSRF token on every login (no session fixation); the
    browser's previous session, if any, ends."""
    previous = request.session.get("t")
    previous_id = _token_id(previous) if isinstance(previous, str) else None
    token = secrets.token_urlsafe(32)
    await db.run(_insert_session, request, user_id, hours, _token_id(token), previous_id)
    if previous_id:
        services(request).sessions.forget(previous_id)
    request.session.replace({"t": token, "c": secrets.token_urlsafe(32)})


async def _insert_session(cur: Cursor, request: Request, user_id: int, hours: float, session_id: bytes,
                          previous_id: bytes | None) -> None:
    if previous_id:
        await cur.execute("DELETE FROM sessions WHERE id = %s", (previous_id,))
    now = utc_now()
    await cur.execute(
        "INSERT INTO sessions (id, user_id, created_at, expires_at, address, user_agent)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (
            session_id, user_id, now, now + timedelta(hours=hours),
            client_address(request)[:45], request.headers.get("user-agent", "")[:200],
        ),
    )


async def end_session(db: Database, request: Request) -> None:
    token = request.session.get("t")
    if isinstance(token, str):
        await db.run(_delete_session, _token_id(token))
        services(request).sessions.forget(_token_id(token))
    request.session.replace({})


async def _delete_session(cur: Cursor, session_id: bytes) -> None:
    await cur.execute("DELETE FROM sessions WHERE id = %s", (session_id,))


async def end_user_sessions(cur: Cursor, user_id: int, keep: bytes | None = None) -> None:
    """End every session of this user, in every process; but `keep`, if given."""
    await cur.execute("DELETE FROM sessions WHERE user_id = %s AND id <> %s",
                      (user_id, keep or b""))


def current_session_id(request: Request) -> bytes | None:
    """The database id of this request's session, if it has one."""
    token = request.session.get("t")
    return _token_id(token) if isinstance(token, str) else None


async def purge_sessions(db: Database, hours: float) -> None:
    """Delete a batch of sessions that have ended (expired, or past their cap),
    in a transaction of its own. Rows another transaction holds (a session being
    started or ended, another purge's batch) are skipped for the next purge, so
    concurrent sign-ins never wait for each other here."""
    await db.run(_delete_ended, hours)


async def _delete_ended(cur: Cursor, hours: float) -> None:
    now = utc_now()
    ended = "(expires_at < %s OR created_at < %s)"
    limits = (now, now - MAX_SHIFTS * timedelta(hours=hours))
    # Found by a plain read (no locks: usually there is nothing to delete), then
    # locked by primary key, skipping any row another transaction holds.
    await cur.execute(f"SELECT id FROM sessions WHERE {ended} LIMIT 500", limits)
    found = [session_id for (session_id,) in await cur.fetchall()]
    if not found:
        return
    ids = ", ".join(["%s"] * len(found))
    await cur.execute(f"SELECT id FROM sessions WHERE id IN ({ids}) AND {ended} FOR UPDATE SKIP LOCKED",
                      (*found, *limits))
    locked = [session_id for (session_id,) in await cur.fetchall()]
    if locked:
        await cur.execute(f"DELETE FROM sessions WHERE id IN ({', '.join(['%s'] * len(locked))})", locked)


async def load_user(request: Request) -> User | None:
    """The signed-in user with their current role and permissions, or None."""
    cached = getattr(request.state, "user", _UNKNOWN)
    if cached is not _UNKNOWN:
        return cached
    user = None
    token = request.session.get("t")
    if isinstance(token, str):
        user = await _lookup(request, _token_id(token))
    if user is not None:
        remember_language(request, user.language)
    request.state.user = user
    return user


async def session_allows(request: Request, permission: str) -> bool:
    """Whether this request's session still holds and its user may still
    `permission`, checked again (a long response, such as an event stream,
    outlives the check made at its start) on the same trust as a page's check."""
    token = request.session.get("t")
    if not isinstance(token, str):
        return False
    user = await _lookup(request, _token_id(token))
    return user is not None and user.can(permission)


async def _lookup(request: Request, session_id: bytes) -> User | None:
    cache = services(request).sessions
    user = cache.get(session_id)
    if user is not None:
        return user
    version, checked_at = cache.version, time.monotonic()
    hours = timedelta(hours=services(request).settings.session_hours)
    now = utc_now()
    renewed = now + hours
    row = await services(request).db.run(
        _check_session, {"session": session_id, "now": now, "renewed": renewed,
                         "extend_below": renewed - _EXTEND_EVERY, "started_after": now - MAX_SHIFTS * hours})
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


async def _check_session(cur: Cursor, arguments: dict[str, Any]) -> tuple | None:
    """The session's user, sliding its expiry when due (one round trip). On a
    Galera node a session not found is looked for once more once the node has
    caught up with the cluster: the host of another node may have started it
    a moment ago (the sign-in answered there, the next request came here)."""
    row = await _session_user(cur, arguments)
    if row is None and await cur.catch_up():
        row = await _session_user(cur, arguments)
    return row


async def _session_user(cur: Cursor, arguments: dict[str, Any]) -> tuple | None:
    await call(cur, "session_user", **arguments)
    row = await cur.fetchone()
    await cur.nextset()
    return row


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
