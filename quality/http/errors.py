"""Every failure becomes a clear page (or fragment, for htmx) with the right status."""

from __future__ import annotations

import logging
from http import HTTPStatus
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from quality.db import DatabaseUnavailable
from quality.http.htmx import is_htmx
from quality.http.render import render
from quality.http.sessions import load_user
from quality.i18n import lazy

log = logging.getLogger(__name__)


class NotSignedIn(Exception):
    """The request needs a session and has none (or it ended): the guard
    (quality/permissions.py) raises it, `not_signed_in` answers it."""

TITLES = {
    400: lazy("Bad request"),
    401: lazy("Sign-in needed"),
    403: lazy("Not allowed"),
    404: lazy("Not found"),
    405: lazy("Not allowed here"),
    413: lazy("Too large"),
    422: lazy("Check the form"),
    429: lazy("Too many attempts"),
    500: lazy("Something went wrong"),
    503: lazy("Database busy"),
}
ERROR_TITLE = lazy("Error")
# Shown for an HTTPException that names no message of its own.
MESSAGES = {
    404: lazy("There is no page at this address."),
    405: lazy("This address does not take this kind of request."),
}
NO_DETAILS = lazy("The request could not be answered.")


def error_page(request: Request, status: int, message: str,
               headers: dict[str, str] | None = None) -> Response:
    context = {"status": status, "title": TITLES.get(status, ERROR_TITLE), "message": message}
    return render(request, "errors/error.html", context, block="error",
                  status_code=status, headers=headers)


async def _know_reader(request: Request) -> None:
    """Who reads an error page the guard never saw (an unknown address, a method a
    route does not take, a bug), so it comes in their language with their
    navigation. A failure to find out leaves the page a signed-out one."""
    if hasattr(request.state, "user"):
        return
    try:
        await load_user(request)
    except Exception:  # the page must still be answered: the database may be the fault
        log.warning("reader of an error page unknown on %s %s", request.method, request.url.path,
                    exc_info=True)
        request.state.user = None


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    await _know_reader(request)
    if exc.detail == HTTPStatus(exc.status_code).phrase:  # Starlette's default: English, not ours
        message = MESSAGES.get(exc.status_code, NO_DETAILS)
    else:
        message = exc.detail
    return error_page(request, exc.status_code, message, dict(exc.headers or {}))


async def not_signed_in(request: Request, exc: Exception) -> Response:
    login = "/login?next=" + quote(request.url.path)
    if is_htmx(request) or request.method != "GET":
        # A scan page keeps what it was sending and asks the operator to sign in again.
        return error_page(request, 401, lazy("Your session has ended. Sign in again."),
                          {"HX-Location": login} if request.method == "GET" else None)
    return Response(status_code=303, headers={"Location": login})


async def database_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable for %s %s: %s", request.method, request.url.path, exc)
    # Not asked again: a reader the guard found keeps their page; the database is away.
    return error_page(
        request, 503, lazy("The database is busy or unreachable. Nothing was changed; try again."),
        {"Retry-After": "2"},
    )


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    await _know_reader(request)
    return error_page(request, 500, lazy("The server could not finish this request."))


handlers = {
    HTTPException: http_error,
    NotSignedIn: not_signed_in,
    DatabaseUnavailable: database_unavailable,
    Exception: server_error,
}
