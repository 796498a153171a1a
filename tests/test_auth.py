"""Sign-in, sessions, CSRF and the permission check, through real requests."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from quality.app import create_app
from quality.http.session_cookie import COOKIE_NAME
from quality.permissions import PUBLIC, guard
from quality.settings import Settings
from tests.conftest import csrf_token_in, execute, login, run_async


def session_count(settings: Settings) -> int:
    assert settings.database_url
    (rows,) = run_async(execute(settings.database_url, "SELECT COUNT(*) FROM sessions"))
    return rows[0][0]


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


def test_login_gives_a_new_session_id(client: TestClient, make_user: Any) -> None:
    make_user("sam", "supervisor")
    client.get("/login")
    before = client.cookies.get(COOKIE_NAME)
    login(client, "sam")
    after = client.cookies.get(COOKIE_NAME)
    assert before and after and before != after


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


def test_state_changes_need_the_csrf_token(
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


def test_missing_permission_is_a_403_page(settings: Settings, make_user: Any) -> None:
    async def secret(request: Request) -> Response:
        return PlainTextResponse("user list")

    app = create_app(settings)
    app.router.routes.append(Route("/only-admins", guard("admin.users")(secret)))
    make_user("opal", "operator")
    make_user("ada", "admin")
    with TestClient(app) as client:
        login(client, "opal")
        response = client.get("/only-admins")
        assert response.status_code == 403
        assert "Your role does not allow this page." in response.text
        assert "user list" not in response.text
    with TestClient(app) as client:
        login(client, "ada")
        assert client.get("/only-admins").text == "user list"


def test_role_change_takes_effect_on_the_next_request(
    settings: Settings, make_user: Any
) -> None:
    async def secret(request: Request) -> Response:
        return PlainTextResponse("user list")

    app = create_app(settings)
    app.router.routes.append(Route("/only-admins", guard("admin.users")(secret)))
    make_user("eve", "admin")
    with TestClient(app) as client:
        login(client, "eve")
        assert client.get("/only-admins").status_code == 200
        assert settings.database_url
        run_async(execute(
            settings.database_url,
            "UPDATE users SET role_id = (SELECT id FROM roles WHERE name = 'operator')"
            " WHERE username = 'eve'",
        ))
        assert client.get("/only-admins").status_code == 403


def test_disabled_user_loses_session(settings: Settings, client: TestClient, make_user: Any) -> None:
    make_user("dan", "operator")
    login(client, "dan")
    assert client.get("/", follow_redirects=False).status_code == 200
    assert settings.database_url
    run_async(execute(settings.database_url, "UPDATE users SET active = FALSE WHERE username = 'dan'"))
    assert client.get("/", follow_redirects=False).status_code == 303
    assert login(client, "dan").status_code == 401


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


def test_every_route_declares_its_permission(settings: Settings) -> None:
    app = create_app(settings)
    for route in app.routes:
        if isinstance(route, Route):
            assert hasattr(route.endpoint, "permission"), f"{route.path} has no permission check"
            if route.path not in ("/login", "/healthz", "/metrics"):
                assert route.endpoint.permission is not PUBLIC, f"{route.path} is public"


def test_security_headers(client: TestClient) -> None:
    response = client.get("/login")
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


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
