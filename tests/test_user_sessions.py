"""Sessions as rows in the database: a new one per sign-in, ended everywhere at
sign-out or when the user is disabled, sliding with use for a shift."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from quality.http.session_cookie import COOKIE_NAME
from quality.settings import Settings
from tests.conftest import csrf_token_in, execute, login, run_async, session_count


def test_login_gives_a_new_session_id(client: TestClient, make_user: Any) -> None:
    make_user("sam", "supervisor")
    client.get("/login")
    before = client.cookies.get(COOKIE_NAME)
    login(client, "sam")
    after = client.cookies.get(COOKIE_NAME)
    assert before and after and before != after


def test_logout_ends_the_session_everywhere(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    make_user("lea", "operator")
    login(client, "lea")
    stolen = client.cookies.get(COOKIE_NAME)
    home = client.get("/")
    response = client.post("/logout", data={"csrf_token": csrf_token_in(home.text)}, follow_redirects=False)
    assert response.status_code == 303
    assert session_count(settings) == 0
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, stolen or "")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_disabled_user_loses_session(settings: Settings, client: TestClient, make_user: Any) -> None:
    make_user("dan", "operator")
    login(client, "dan")
    assert client.get("/", follow_redirects=False).status_code == 200
    assert settings.database_url
    run_async(execute(settings.database_url, "UPDATE users SET active = FALSE WHERE username = 'dan'"))
    assert client.get("/", follow_redirects=False).status_code == 303
    assert login(client, "dan").status_code == 401


def test_session_slides_with_use_and_ends_when_expired(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    make_user("sid", "operator")
    login(client, "sid")
    assert settings.database_url
    url = settings.database_url
    run_async(execute(url, "UPDATE sessions SET expires_at = UTC_TIMESTAMP(6) + INTERVAL 1 MINUTE"))
    assert client.get("/", follow_redirects=False).status_code == 200
    (rows,) = run_async(execute(
        url, "SELECT TIMESTAMPDIFF(MINUTE, UTC_TIMESTAMP(6), expires_at) FROM sessions"))
    assert rows[0][0] >= settings.session_hours * 60 - 1  # a whole shift again

    run_async(execute(url, "UPDATE sessions SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND"))
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
