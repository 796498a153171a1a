"""Every failure becomes a clear page (or fragment, for htmx) with the right status."""

from __future__ import annotations

import logging
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from quality.db import DatabaseUnavailable
from quality.http.render import is_htmx, render
from quality.permissions import NotSignedIn

log = logging.getLogger(__name__)

TITLES = {
    400: "Bad request",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    413: "Too large",
    422: "Check the form",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "Database busy",
}


def error_page(request: Request, status: int, message: str,
               headers: dict[str, str] | None = None) -> Response:
    context = {"status": status, "title": TITLES.get(status, "Error"), "message": message}
    return render(request, "errors/error.html", context, block="error",
                  status_code=status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = "There is no page at this address."
    else:
        message = exc.detail
    return error_page(request, exc.status_code, message, dict(exc.headers or {}))


async def not_signed_in(request: Request, exc: Exception) -> Response:
    login = "/login?next=" + quote(request.url.path)
    if is_htmx(request) or request.method != "GET":
        # A scan page keeps what it was sending and asks the operator to sign in again.
        return error_page(request, 401, "Your session has ended. Sign in again.",
                          {"HX-Location": login} if request.method == "GET" else None)
    return Response(status_code=303, headers={"Location": login})


async def database_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable for %s %s: %s", request.method, request.url.path, exc)
    return error_page(
        request, 503, "The database is busy or unreachable. Nothing was changed; try again.",
        {"Retry-After": "2"},
    )


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_page(request, 500, "The server could not finish this request.")


handlers = {
    HTTPException: http_error,
    NotSignedIn: not_signed_in,
    DatabaseUnavailable: database_unavailable,
    Exception: server_error,
}
