"""The permission names and the route guard: permission, CSRF and a route's own
answer when the database is unavailable."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from quality.app import create_app
from quality.db import Database
from quality.http.services import services
from quality.permissions import PERMISSIONS, PUBLIC, SIGNED_IN, guard
from quality.settings import Settings
from tests.conftest import csrf_token_in, eventually, execute, login, run_async


async def secret(request: Request) -> Response:
    return PlainTextResponse("user list")


def unreachable(settings: Settings) -> Settings:
    """The same settings with a database that is not there."""
    assert settings.database_url
    url = settings.database_url.__class__(
        **{**settings.database_url.__dict__, "unix_socket": "/nonexistent/mysqld.sock"})
    return settings.__class__(**{**settings.__dict__, "database_url": url, "pool_timeout": 0.5})


async def test_the_migration_seeds_exactly_the_permissions_the_code_names(db: Database) -> None:
    async with db.transaction() as cur:
        await cur.execute("SELECT name, description FROM permissions")
        seeded = dict(await cur.fetchall())
    assert seeded == PERMISSIONS


def test_an_unknown_permission_is_refused_when_the_route_is_declared() -> None:
    with pytest.raises(ValueError, match=r"unknown permission 'admin\.everything'"):
        guard("admin.everything")
    assert guard(SIGNED_IN) and guard(PUBLIC)


def test_every_route_declares_its_permission(settings: Settings) -> None:
    app = create_app(settings)
    for route in app.routes:
        if isinstance(route, Route):
            assert hasattr(route.endpoint, "permission"), f"{route.path} has no permission check"
            # /sw.js is a static script (SPEC §7: static files need no session),
            # served from the root only so that its scope covers the stations.
            if route.path not in ("/login", "/healthz", "/metrics", "/sw.js"):
                assert route.endpoint.permission is not PUBLIC, f"{route.path} is public"


def test_missing_permission_is_a_403_page(settings: Settings, make_user: Any) -> None:
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


def test_role_change_takes_effect_within_a_second(
    settings: Settings, make_user: Any
) -> None:
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
        assert eventually(lambda: client.get("/only-admins").status_code == 403)


def test_a_state_change_without_the_csrf_token_never_reaches_the_handler(
    client: TestClient, make_user: Any
) -> None:
    calls: list[str] = []

    async def change(request: Request) -> Response:
        calls.append(request.method)
        return PlainTextResponse("changed")

    client.app.router.routes.append(Route("/change", guard(SIGNED_IN)(change), methods=["POST"]))
    make_user("cy", "operator")
    login(client, "cy")
    assert client.post("/change", data={"csrf_token": "forged"}).status_code == 403
    assert calls == []
    token = csrf_token_in(client.get("/").text)
    assert client.post("/change", data={"csrf_token": token}).text == "changed"
    assert client.post("/change", headers={"X-CSRF-Token": token}).text == "changed"
    assert calls == ["POST", "POST"]


def test_the_route_answers_for_itself_when_the_database_is_unavailable(settings: Settings) -> None:
    async def uses_database(request: Request) -> Response:
        async with services(request).db.transaction() as cur:
            await cur.execute("SELECT 1")
        return PlainTextResponse("read")

    async def kept(request: Request) -> Response:
        return PlainTextResponse("kept your input", status_code=503)

    app = create_app(unreachable(settings))
    app.router.routes += [
        Route("/own", guard(PUBLIC, when_unavailable=kept)(uses_database)),
        Route("/generic", guard(PUBLIC)(uses_database)),
    ]
    with TestClient(app) as client:
        own = client.get("/own")
        assert (own.status_code, own.text) == (503, "kept your input")
        generic = client.get("/generic")
        assert generic.status_code == 503 and generic.headers["retry-after"] == "2"
        assert "The database is busy or unreachable." in generic.text
