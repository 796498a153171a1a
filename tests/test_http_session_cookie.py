"""The signed session cookie: written only when its content changes, ignored
when tampered with or signed with another key."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from quality.http.session_cookie import COOKIE_NAME, SessionMiddleware
from tests.conftest import login


def tiny_app(secret_key: str = "k" * 32) -> Starlette:
    async def show(request: Request) -> Response:
        return JSONResponse(dict(request.session))

    async def remember(request: Request) -> Response:
        request.session["t"] = request.query_params["value"]
        return JSONResponse(dict(request.session))

    async def forget(request: Request) -> Response:
        request.session.replace({})
        return JSONResponse({})

    return Starlette(
        routes=[Route("/", show), Route("/remember", remember), Route("/forget", forget)],
        middleware=[Middleware(SessionMiddleware, secret_key=secret_key, max_age_seconds=3600)],
    )


def test_cookie_is_written_only_when_the_session_changes() -> None:
    with TestClient(tiny_app()) as client:
        assert "set-cookie" not in client.get("/").headers
        written = client.get("/remember?value=abc").headers["set-cookie"]
        assert written.startswith(f"{COOKIE_NAME}=")
        assert "Max-Age=3600" in written and "HttpOnly" in written and "SameSite=Lax" in written
        assert "Secure" not in written
        reread = client.get("/")
        assert reread.json() == {"t": "abc"} and "set-cookie" not in reread.headers


def test_cookie_is_secure_over_https() -> None:
    with TestClient(tiny_app(), base_url="https://testserver") as client:
        assert "; Secure" in client.get("/remember?value=abc").headers["set-cookie"]


def test_an_emptied_session_deletes_the_cookie() -> None:
    with TestClient(tiny_app()) as client:
        client.get("/remember?value=abc")
        assert "Max-Age=0" in client.get("/forget").headers["set-cookie"]
        assert client.get("/").json() == {}


def test_a_cookie_signed_with_another_key_is_ignored() -> None:
    with TestClient(tiny_app("another-key-" * 3)) as foreign:
        cookie = foreign.get("/remember?value=abc").cookies[COOKIE_NAME]
    with TestClient(tiny_app()) as client:
        client.cookies.set(COOKIE_NAME, cookie)
        assert client.get("/").json() == {}


def test_a_cookie_checked_before_gives_each_request_its_own_copy() -> None:
    """The process remembers cookies it has checked; a request changing its
    session changes its own copy, and a changed signature is still refused."""
    with TestClient(tiny_app()) as client:
        client.get("/remember?value=abc")
        cookie = client.cookies[COOKIE_NAME]
        assert client.get("/").json() == {"t": "abc"}
        assert client.get("/remember?value=xyz").json() == {"t": "xyz"}  # sent with the abc cookie
        client.cookies.clear()
        client.cookies.set(COOKIE_NAME, cookie)
        assert client.get("/").json() == {"t": "abc"}
        payload, signature = cookie.rsplit(".", 1)
        client.cookies.clear()
        client.cookies.set(COOKIE_NAME, payload + "." + signature[::-1])
        assert client.get("/").json() == {}


def test_tampered_cookie_is_ignored(client: TestClient, make_user: Any) -> None:
    make_user("tom", "admin")
    login(client, "tom")
    cookie = client.cookies.get(COOKIE_NAME)
    assert cookie
    payload, signature = cookie.rsplit(".", 1)
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, payload + "." + signature[::-1])
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
