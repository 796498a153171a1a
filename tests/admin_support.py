"""What the admin tests share: a signed-in client with its CSRF token, and
reads of the tables (and audit log) the admin pages change."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

from starlette.testclient import TestClient

from quality.app import create_app
from quality.settings import Settings
from tests.conftest import csrf_token_in, execute, login, run_async

# Everything an admin page may change: a refused submission must leave all of it as it was.
ADMIN_TABLES = ("users", "roles", "role_permissions", "defect_codes", "audit_log")


def sign_in(client: TestClient, make_user: Any, username: str, role: str) -> str:
    """Create the user, sign in, and return the session's CSRF token."""
    make_user(username, role)
    assert login(client, username).status_code == 303
    return csrf_token_in(client.get("/account").text)


def query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    assert settings.database_url
    (rows,) = run_async(execute(settings.database_url, sql))
    return rows


def snapshot(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables an admin form may change."""
    assert settings.database_url
    results = run_async(execute(settings.database_url,
                                *(f"SELECT * FROM {table} ORDER BY 1, 2" for table in ADMIN_TABLES)))
    return dict(zip(ADMIN_TABLES, results, strict=True))


def make_role(settings: Settings, name: str, *permissions: str) -> None:
    """A custom role holding exactly `permissions`."""
    query(settings, f"INSERT INTO roles (name) VALUES ('{name}')")
    for permission in permissions:
        query(settings, "INSERT INTO role_permissions (role_id, permission)"
                        f" SELECT id, '{permission}' FROM roles WHERE name = '{name}'")


def losing_every_first_try(settings: Settings) -> None:
    """From now on the first try of each save that writes one audit row loses,
    as to a concurrent transaction or a Galera certification failure (1213);
    the MEMORY table `tries` counts the tries through the rollbacks."""
    query(settings, "CREATE TABLE tries (n INT) ENGINE=MEMORY")
    query(settings,
          "CREATE TRIGGER loses_once BEFORE INSERT ON audit_log FOR EACH ROW BEGIN"
          " INSERT INTO tries VALUES (1);"
          " IF (SELECT COUNT(*) FROM tries) % 2 = 1 THEN"
          " SIGNAL SQLSTATE '40001' SET MESSAGE_TEXT = 'Deadlock found', MYSQL_ERRNO = 1213; END IF; END")


def audit_rows(settings: Settings) -> list[tuple[Any, ...]]:
    """(actor, action, target, before, after) of every audit row, oldest first."""
    return query(settings,
                 "SELECT actor, action, target, before_value, after_value FROM audit_log ORDER BY id")


def post_pairs(client: TestClient, url: str, pairs: list[tuple[str, str]],
               headers: dict[str, str] | None = None, **options: Any) -> Any:
    """POST a form whose names repeat (checkbox groups), as a browser sends it."""
    return client.post(url, content=urlencode(pairs), headers={
        "content-type": "application/x-www-form-urlencoded", **(headers or {})}, **options)


@contextmanager
def two_processes(settings: Settings) -> Iterator[tuple[TestClient, TestClient]]:
    """Two clients, each on an app of its own (its own lifespan, pool and loop),
    like two processes serving the same database."""
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        yield first, second
