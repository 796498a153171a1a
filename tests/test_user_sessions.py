"""Sessions as rows in the database: a new one per sign-in, ended everywhere at
sign-out or when the user is disabled (within the second a process may trust
a session it checked), sliding with use for a shift, two shifts at most."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from quality.http.session_cookie import COOKIE_NAME
from quality.settings import Settings
from tests.conftest import csrf_token_in, eventually, execute, login, run_async, session_count


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
    assert eventually(lambda: client.get("/", follow_redirects=False).status_code == 303)
    assert login(client, "dan").status_code == 401


def test_session_slides_with_use_and_ends_when_expired(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    make_user("sid", "operator")
    login(client, "sid")
    assert settings.database_url
    url = settings.database_url
    run_async(execute(url, "UPDATE sessions SET expires_at = UTC_TIMESTAMP(6) + INTERVAL 1 MINUTE"))

    def slid() -> bool:
        assert client.get("/", follow_redirects=False).status_code == 200
        (rows,) = run_async(execute(
            url, "SELECT TIMESTAMPDIFF(MINUTE, UTC_TIMESTAMP(6), expires_at) FROM sessions"))
        return rows[0][0] >= settings.session_hours * 60 - 1  # a whole shift again

    assert eventually(slid)
    run_async(execute(url, "UPDATE sessions SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND"))
    assert eventually(lambda: client.get("/", follow_redirects=False).status_code == 303)
    response = client.get("/", follow_redirects=False)
    assert response.headers["location"].startswith("/login")


def test_a_session_ends_two_shifts_after_sign_in_however_it_slid(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    make_user("ada", "operator")
    login(client, "ada")
    assert client.get("/", follow_redirects=False).status_code == 200
    assert settings.database_url
    hours = int(settings.session_hours * 2 * 60 + 1)
    run_async(execute(  # in use all along, but signed in more than two shifts ago
        settings.database_url,
        f"UPDATE sessions SET created_at = UTC_TIMESTAMP(6) - INTERVAL {hours} MINUTE,"
        " expires_at = UTC_TIMESTAMP(6) + INTERVAL 1 HOUR"))
    assert eventually(lambda: client.get("/", follow_redirects=False).status_code == 303)


def test_signing_in_again_ends_the_browsers_previous_session(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    make_user("ben", "operator")
    login(client, "ben")
    first = client.cookies.get(COOKIE_NAME)
    login(client, "ben")
    assert session_count(settings) == 1
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, first or "")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_expired_sessions_are_purged_at_the_next_sign_in(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    make_user("eve", "operator")
    login(client, "eve")
    assert settings.database_url
    run_async(execute(settings.database_url,
                      "UPDATE sessions SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND"))
    client.cookies.clear()
    login(client, "eve")
    assert session_count(settings) == 1


def test_authenticated_pages_are_not_stored(client: TestClient, make_user: Any) -> None:
    make_user("gus", "operator")
    assert "no-store" not in client.get("/login").headers["cache-control"]
    login(client, "gus")
    assert client.get("/").headers["cache-control"] == "no-store"
    assert client.get("/scan").headers["cache-control"] == "no-store"
