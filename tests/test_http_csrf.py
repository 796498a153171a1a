"""CSRF tokens: one per browser session, required on every state change."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from quality.http.csrf import csrf_token, verify_csrf
from quality.http.session_cookie import SessionMiddleware
from quality.settings import Settings
from tests.conftest import login, session_count


def tiny_app() -> Starlette:
    async def token(request: Request) -> Response:
        return PlainTextResponse(csrf_token(request))

    async def change(request: Request) -> Response:
        await verify_csrf(request)
        return PlainTextResponse("changed")

    return Starlette(
        routes=[Route("/token", token), Route("/change", change, methods=["GET", "POST"])],
        middleware=[Middleware(SessionMiddleware, secret_key="k" * 32, max_age_seconds=60)],
    )


def test_one_token_per_session() -> None:
    with TestClient(tiny_app()) as client:
        first = client.get("/token").text
        assert len(first) >= 40 and client.get("/token").text == first
    with TestClient(tiny_app()) as other:
        assert other.get("/token").text != first


def test_a_state_change_needs_the_token_as_header_or_form_field() -> None:
    with TestClient(tiny_app()) as client:
        token = client.get("/token").text
        assert client.get("/change").status_code == 200  # reading changes nothing
        assert client.post("/change").status_code == 403
        assert client.post("/change", headers={"X-CSRF-Token": "forged"}).status_code == 403
        assert client.post("/change", data={"csrf_token": token[:-1]}).status_code == 403
        assert client.post("/change", headers={"X-CSRF-Token": token}).text == "changed"
        assert client.post("/change", data={"csrf_token": token}).text == "changed"


def test_a_session_without_a_token_accepts_none() -> None:
    with TestClient(tiny_app()) as client:
        response = client.post("/change", headers={"X-CSRF-Token": ""})
        assert response.status_code == 403


def test_sign_in_and_out_need_the_token(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    make_user("ida", "operator")
    client.get("/login")
    response = client.post("/login", data={"username": "ida", "password": "correct-horse-42"})
    assert response.status_code == 403
    assert session_count(settings) == 0

    login(client, "ida")
    response = client.post("/logout", data={"csrf_token": "forged"})
    assert response.status_code == 403
    assert session_count(settings) == 1
