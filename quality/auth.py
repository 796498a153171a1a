"""Sign in and out, with failed attempts throttled per user name and per client
address in the database, so every process sees the same counts."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from quality.clock import utc_now
from quality.db import Cursor, Database
from quality.http.render import render
from quality.i18n import lazy, lazy_plural
from quality.passwords import DUMMY_HASH, verify_password
from quality.permissions import PUBLIC, SIGNED_IN, guard
from quality.services import services
from quality.user_sessions import client_address, end_session, load_user, start_session

log = logging.getLogger(__name__)

WINDOW = timedelta(minutes=15)
LIMITS = {"user": 5, "address": 30}  # failures allowed per WINDOW


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
    async with db.transaction() as cur:
        wait = await _throttled_for(cur, username, address)
        if wait is None:
            await cur.execute(
                "SELECT id, password_hash, active FROM users WHERE username = %s", (username,)
            )
            account = await cur.fetchone()
    if wait is not None:
        minutes = max(1, int(wait.total_seconds() // 60) + 1)
        message = lazy_plural("Too many failed sign-in attempts. Try again in %(num)s minute.",
                              "Too many failed sign-in attempts. Try again in %(num)s minutes.", minutes)
        return _login_form(request, message, username, 429, next_url)

    stored = account[1] if account else DUMMY_HASH
    valid = await asyncio.to_thread(verify_password, password, stored)
    if not (valid and account and account[2]):
        await _record_failure(db, username, address)
        services(request).metrics.login_failures.inc()
        log.info("failed sign-in for %r from %s", username, address)
        return _login_form(request, lazy("Wrong user name or password."), username, 401, next_url)

    async with db.transaction() as cur:
        await cur.execute(
            "DELETE FROM login_throttle WHERE scope = 'user' AND subject = %s", (username,)
        )
        await start_session(cur, request, account[0], services(request).settings.session_hours)
    return RedirectResponse(next_url, 303)


@guard(SIGNED_IN)
async def logout(request: Request) -> Response:
    await end_session(services(request).db, request)
    return RedirectResponse("/login", 303)


def _login_form(
    request: Request, error: str | None = None, username: str = "", status: int = 200,
    next_url: str | None = None,
) -> Response:
    context = {
        "error": error,
        "username": username,
        "next": next_url or safe_next_url(request.query_params.get("next")),
    }
    return render(request, "auth/login.html", context, status_code=status)


def safe_next_url(value: str | None) -> str:
    """Only a path on this site; anything else (another host, //evil) goes home."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "\\" in value:
        return "/"
    return value


async def _throttled_for(cur: Cursor, username: str, address: str) -> timedelta | None:
    """How long this user name or address must still wait, if it is locked out."""
    await cur.execute(
        "SELECT scope, failures, window_started_at FROM login_throttle"
        " WHERE (scope = 'user' AND subject = %s) OR (scope = 'address' AND subject = %s)",
        (username, address),
    )
    now = utc_now()
    waits = [
        started + WINDOW - now
        for scope, failures, started in await cur.fetchall()
        if failures >= LIMITS[scope] and started + WINDOW > now
    ]
    return max(waits) if waits else None


async def _record_failure(db: Database, username: str, address: str) -> None:
    now = utc_now()
    window_open = now - WINDOW
    async with db.transaction() as cur:
        await cur.executemany(
            "INSERT INTO login_throttle (scope, subject, failures, window_started_at)"
            " VALUES (%s, %s, 1, %s)"
            " ON DUPLICATE KEY UPDATE"
            "  failures = IF(window_started_at < %s, 1, failures + 1),"
            "  window_started_at = IF(window_started_at < %s, VALUES(window_started_at),"
            "                         window_started_at)",
            [
                ("user", username, now, window_open, window_open),
                ("address", address, now, window_open, window_open),
            ],
        )


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
