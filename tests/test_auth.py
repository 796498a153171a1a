"""Signing in and out: wrong passwords, throttling, where a sign-in may lead."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from quality.app import create_app
from quality.settings import Settings
from tests.conftest import csrf_token_in, login, session_count


def test_pages_need_a_session(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/"


def test_admin_signs_in_and_sees_home(client: TestClient, make_user: Any) -> None:
    make_user("boss", "admin")
    response = login(client, "boss")
    assert response.status_code == 303 and response.headers["location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert 'data-testid="who"' in home.text and "boss" in home.text


def test_wrong_password_and_unknown_user_are_refused(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    make_user("olga", "operator")
    for username, password in (("olga", "wrong-password"), ("nobody", "whatever-123")):
        response = login(client, username, password)
        assert response.status_code == 401
        assert "Wrong user name or password." in response.text
    assert session_count(settings) == 0
    assert client.get("/", follow_redirects=False).status_code == 303


def test_failed_logins_are_throttled_across_processes(
    settings: Settings, make_user: Any
) -> None:
    make_user("pat", "operator")
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        for attempt in range(5):
            client = first if attempt % 2 else second
            assert login(client, "pat", "bad-password").status_code == 401
        blocked = login(first, "pat")  # even the right password waits now
        assert blocked.status_code == 429
        assert "Too many failed sign-in attempts" in blocked.text
        assert login(second, "pat").status_code == 429
    assert session_count(settings) == 0


def test_next_parameter_cannot_leave_the_site(client: TestClient, make_user: Any) -> None:
    make_user("nia", "admin")
    page = client.get("/login?next=//evil.example/x")
    assert "evil.example" not in page.text
    response = client.post(
        "/login",
        data={"username": "nia", "password": "correct-horse-42", "csrf_token": csrf_token_in(page.text),
              "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"
