"""Sign in and out, with sign-in attempts throttled in the database, so every
process sees the same counts.

An attempt is counted before its password is checked, under row locks on its
counters, so a parallel burst gets no more tries than a sequential one. Delays
grow per (user name, address) pair; a looser bound per address and one per user
name stop guessing spread over names or addresses, and the per-user bound only
delays, never locks out, a sign-in from an address with no recent failures for
that user: a stranger's guesses cannot keep the rightful user off their station.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from asyncmy.errors import OperationalError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from quality.accounts import AccountError, change_own_password
from quality.audit import Actor
from quality.clock import utc_now
from quality.db import Cursor, Database, error_code
from quality.http.render import render
from quality.http.services import services
from quality.i18n import lazy, lazy_plural
from quality.pages.account.password import check_new_password
from quality.passwords import DUMMY_HASH, hash_password, needs_rehash, verify_password
from quality.permissions import PUBLIC, SIGNED_IN, guard
from quality.user_sessions import (
    client_address,
    end_session,
    load_user,
    purge_sessions,
    start_session,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Bound:
    """Failed attempts allowed without waiting, then a wait after each further
    one that starts at `first_wait` and doubles, up to MAX_WAIT."""

    free: int
    first_wait: timedelta

    def wait_after(self, failures: int) -> timedelta:
        if failures < self.free:
            return timedelta(0)
        return min(self.first_wait * 2 ** min(failures - self.free, 16), MAX_WAIT)


MAX_WAIT = timedelta(minutes=15)
BOUNDS = {
    "pair": Bound(free=5, first_wait=timedelta(seconds=15)),
    "user": Bound(free=10, first_wait=timedelta(seconds=15)),
    "address": Bound(free=30, first_wait=timedelta(seconds=15)),
}
# The per-user bound's wait, from an address with no recent failures for that user.
CLEAN_ADDRESS_WAIT = timedelta(seconds=10)
# Failures are forgotten after this long without an attempt.
FORGET_AFTER = timedelta(hours=1)
_LOCK_RETRIES = 3
_DEADLOCK = 1213


@guard(PUBLIC)
async def login_page(request: Request) -> Response:
    if await load_user(request):
        return RedirectResponse(safe_next_url(request.query_params.get("next")), 303)
    return _login_form(request)


@guard(PUBLIC)
async def login(request: Request) -> Response:
    form = await request.form()
    username = str(form.get("username", "")).strip().lower()[:64]
    password = str(form.get("password", ""))[:1024]
    next_url = safe_next_url(str(form.get("next", "")))
    if not username or not password:
        return _login_form(request, lazy("Enter your user name and password."), username, 400, next_url)

    db = services(request).db
    address = client_address(request)[:64]
    counters = _counters(username, address)
    wait, account = await _count_attempt(db, counters, username)
    if wait:
        return _login_form(request, _wait_message(wait), username, 429, next_url)

    stored = account[1] if account else DUMMY_HASH
    valid = await asyncio.to_thread(verify_password, password, stored)
    if not (valid and account and account[2]):
        services(request).metrics.login_failures.inc()
        log.info("failed sign-in for %r from %s", username, address)
        return _login_form(request, lazy("Wrong user name or password."), username, 401, next_url)

    if account[3]:
        refused = await _replace_reset_password(request, form, account[0], username, password)
        if refused is not None:
            # The password was right: this attempt is no failure.
            async with db.transaction() as cur:
                await _take_back_attempt(cur, counters)
            return refused
    # Hashed before borrowing a connection: a hash takes tens of milliseconds. A
    # reset password was just replaced by a freshly hashed one.
    rehash = needs_rehash(stored) and not account[3]
    new_hash = await asyncio.to_thread(hash_password, password) if rehash else None
    hours = services(request).settings.session_hours
    async with db.transaction() as cur:
        await _take_back_attempt(cur, counters)
        if new_hash:
            await cur.execute("UPDATE users SET password_hash = %s WHERE id = %s",
                              (new_hash, account[0]))
        await start_session(cur, request, account[0], hours)
        await purge_sessions(cur, hours)
        await cur.execute("DELETE FROM login_attempts WHERE last_at < %s LIMIT 500",
                          (utc_now() - FORGET_AFTER,))
    return RedirectResponse(next_url, 303)


@guard(SIGNED_IN)
async def logout(request: Request) -> Response:
    await end_session(services(request).db, request)
    return RedirectResponse("/login", 303)


async def _replace_reset_password(request: Request, form: FormData, user_id: int, username: str,
                                  password: str) -> Response | None:
    """An admin reset this password: the user chooses their own before getting a
    session. None once changed; otherwise the form asking for it."""
    next_url = safe_next_url(str(form.get("next", "")))
    if "new_password" not in form:
        return _login_form(request, lazy("Your password was reset. Choose a new one to continue."),
                           username, 200, next_url, change_required=True)
    checked = check_new_password(form)
    if checked.ok:
        try:
            await change_own_password(
                services(request).db, user_id, password, checked.values["new_password"],
                actor=Actor(user_id, username, client_address(request)),
            )
            return None
        except AccountError as exc:
            checked.errors[exc.field or "new_password"] = exc.args[0]
    return _login_form(request, next(iter(checked.errors.values())), username, 422, next_url,
                       change_required=True)


def _login_form(
    request: Request, error: str | None = None, username: str = "", status: int = 200,
    next_url: str | None = None, change_required: bool = False,
) -> Response:
    context = {
        "error": error,
        "username": username,
        "next": next_url or safe_next_url(request.query_params.get("next")),
        "change_required": change_required,
    }
    return render(request, "account/login.html", context, status_code=status)


def safe_next_url(value: str | None) -> str:
    """Only a path on this site; anything else (another host, //evil) goes home."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "\\" in value:
        return "/"
    return value


def _counters(username: str, address: str) -> list[tuple[str, str]]:
    """The attempt's counters, in primary-key order, the order they are locked in."""
    return [("pair", f"{address} {username}"), ("user", username), ("address", address)]


async def _count_attempt(db: Database, counters: list[tuple[str, str]], username: str
                         ) -> tuple[timedelta | None, tuple | None]:
    """Count this attempt before its password is checked, or say how long to wait.
    The account (id, password hash, active, must change password) comes in the
    same transaction."""
    for attempt in range(_LOCK_RETRIES):
        try:
            async with db.transaction() as cur:
                now = utc_now()
                wait = await _wait_for(cur, counters, now)
                if wait:
                    return wait, None
                await cur.execute(
                    "UPDATE login_attempts SET failures = failures + 1, last_at = %s"
                    f" WHERE {_MATCH}", (now, *_flat(counters)))
                await cur.execute(
                    "SELECT id, password_hash, active, must_change_password FROM users"
                    " WHERE username = %s", (username,))
                return None, await cur.fetchone()
        except OperationalError as exc:
            if error_code(exc) != _DEADLOCK or attempt == _LOCK_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


async def _wait_for(cur: Cursor, counters: list[tuple[str, str]], now: datetime) -> timedelta:
    # Creating or locking the counters first makes concurrent attempts on the same
    # pair, user or address queue here, each seeing the counts the others left.
    await cur.executemany(
        "INSERT INTO login_attempts (scope, subject, failures, last_at) VALUES (%s, %s, 0, %s)"
        " ON DUPLICATE KEY UPDATE failures = IF(last_at < %s, 0, failures)",
        [(scope, subject, now, now - FORGET_AFTER) for scope, subject in counters],
    )
    await cur.execute(f"SELECT scope, failures, last_at FROM login_attempts WHERE {_MATCH}",
                      _flat(counters))
    found = {scope: (failures, last_at) for scope, failures, last_at in await cur.fetchall()}
    waits = []
    for scope, (failures, last_at) in found.items():
        wait = BOUNDS[scope].wait_after(failures)
        if scope == "user" and found["pair"][0] == 0:
            wait = min(wait, CLEAN_ADDRESS_WAIT)
        waits.append(last_at + wait - now)
    return max(max(waits), timedelta(0))


async def _take_back_attempt(cur: Cursor, counters: list[tuple[str, str]]) -> None:
    """A successful sign-in was no failure: its pair starts afresh, and the user's
    and address's counts drop by the attempt counted for it."""
    pair, *others = counters
    await cur.execute("DELETE FROM login_attempts WHERE scope = %s AND subject = %s", pair)
    await cur.execute(
        "UPDATE login_attempts SET failures = GREATEST(failures, 1) - 1"
        " WHERE (scope = %s AND subject = %s) OR (scope = %s AND subject = %s)", _flat(others))


_MATCH = " OR ".join(["(scope = %s AND subject = %s)"] * 3)


def _flat(counters: list[tuple[str, str]]) -> tuple[str, ...]:
    return tuple(value for counter in counters for value in counter)


def _wait_message(wait: timedelta) -> str:
    seconds = max(1, int(wait.total_seconds() + 0.999))
    if seconds < 120:
        return lazy_plural("Too many failed sign-in attempts. Wait %(num)s second, then try again.",
                           "Too many failed sign-in attempts. Wait %(num)s seconds, then try again.",
                           seconds)
    return lazy_plural("Too many failed sign-in attempts. Wait %(num)s minute, then try again.",
                       "Too many failed sign-in attempts. Wait %(num)s minutes, then try again.",
                       (seconds + 59) // 60)


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
