"""Sign in and out. A password is checked only through quality/throttle.py,
which counts the attempt in the database first (every process sees the same
counts) and says when to wait instead.

A sign-in's own work is in transactions that are safe to run again after a
deadlock (`Database.run`); the sessions that have ended and the attempts that
are forgotten are deleted after it, in transactions of their own that skip
what another sign-in is deleting, so concurrent sign-ins never wait for each
other there.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from quality import audit
from quality.accounts import AccountError, change_own_password, store_rehash
from quality.audit import Actor
from quality.db import Database, DatabaseUnavailable
from quality.http.render import render
from quality.http.services import services
from quality.http.sessions import (
    client_address,
    end_session,
    load_user,
    purge_sessions,
    start_session,
)
from quality.i18n import lazy
from quality.pages.account.password import check_new_password
from quality.passwords import hash_password, needs_rehash
from quality.permissions import PUBLIC, SIGNED_IN, guard
from quality.throttle import Throttled, forget_old_attempts, sign_in_wait_message, verify_counted

log = logging.getLogger(__name__)


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
    try:
        account = await verify_counted(db, username, address, password)
    except Throttled as exc:
        await db.run(audit.record, Actor(None, username, address), "sign-in.locked", username, None,
                     {"wait_seconds": int(exc.wait.total_seconds())})
        return _login_form(request, sign_in_wait_message(exc.wait), username, 429, next_url)
    if not (account and account.active):
        services(request).metrics.login_failures.inc()
        log.info("failed sign-in for %r from %s", username, address)
        # The name as typed, never the password.
        await db.run(audit.record, Actor(None, username, address), "sign-in.failed", username, None, None)
        return _login_form(request, lazy("Wrong user name or password."), username, 401, next_url)

    if account.must_change_password:
        refused = await _replace_reset_password(request, form, account.user_id, username, password)
        if refused is not None:
            return refused
    elif needs_rehash(account.password_hash):  # (a reset one was just replaced by a fresh hash)
        # Hashed before borrowing a connection: a hash takes tens of milliseconds.
        new_hash = await asyncio.to_thread(hash_password, password)
        await db.run(store_rehash, account.user_id, new_hash)
    hours = services(request).settings.session_hours
    await start_session(db, request, account.user_id, hours)
    await db.run(audit.record, Actor(account.user_id, username, address), "sign-in.ok", username, None, None)
    await _tidy(db, hours)
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
    status = 422
    if checked.ok:
        try:
            await change_own_password(
                services(request).db, user_id, password, checked.values["new_password"],
                actor=Actor(user_id, username, client_address(request)),
            )
            return None
        except Throttled as exc:  # its check is counted again, like any check of a password
            checked.errors["password"], status = sign_in_wait_message(exc.wait), 429
        except AccountError as exc:
            checked.errors[exc.field or "new_password"] = exc.args[0]
    return _login_form(request, next(iter(checked.errors.values())), username, status, next_url,
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


async def _tidy(db: Database, hours: float) -> None:
    """Delete a batch of ended sessions and forgotten attempts. The sign-in is
    done: if the database cannot do this now, the next sign-in will."""
    try:
        await purge_sessions(db, hours)
        await forget_old_attempts(db)
    except DatabaseUnavailable as exc:
        log.warning("ended sessions and old sign-in attempts left for later: %s", exc)


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
