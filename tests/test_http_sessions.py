"""Sessions as rows in the database: a new one per sign-in, ended everywhere at
sign-out or when the user is disabled (within the second a process may trust
a session it checked), sliding with use for a shift, two shifts at most."""

from __future__ import annotations

import asyncio
import inspect
import time
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from quality.clock import utc_now
from quality.http.session_cookie import COOKIE_NAME
from quality.scans.feed import ScanWatcher
from quality.session_cache import TRUST_SECONDS, Checked, SessionCache, User
from quality.settings import Settings
from tests.conftest import (
    LiveServer,
    csrf_token_in,
    eventually,
    execute,
    login,
    run_async,
    session_count,
)
from tests.test_sign_in import held_open


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


def test_the_purge_skips_sessions_another_transaction_holds(
    client: TestClient, make_user: Any, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    make_user("eve", "operator")
    for _ in range(3):
        client.cookies.clear()
        login(client, "eve")
    assert settings.database_url
    run_async(execute(settings.database_url,
                      "UPDATE sessions SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND"))
    client.cookies.clear()
    with held_open(settings.database_url, "SELECT id FROM sessions ORDER BY id LIMIT 1 FOR UPDATE"):
        assert login(client, "eve").status_code == 303
    # A purge that waited for the held row would have timed out, and said so.
    assert "left for later" not in caplog.text
    assert session_count(settings) == 2  # the held one is left for the next purge


def test_authenticated_pages_are_not_stored(client: TestClient, make_user: Any) -> None:
    make_user("gus", "operator")
    assert "no-store" not in client.get("/login").headers["cache-control"]
    login(client, "gus")
    assert client.get("/").headers["cache-control"] == "no-store"
    assert client.get("/scan").headers["cache-control"] == "no-store"


# -- trusting a checked session for up to a second ------------------------------

SOMEONE = User(1, "someone", "", "operator", frozenset({"scan.quality"}))


def checked(version: int | None, seconds_ago: float = 0.0) -> Checked:
    return Checked(SOMEONE, version, time.monotonic() - seconds_ago, utc_now() + timedelta(hours=1))


def test_a_check_is_trusted_for_a_second_without_confirmation() -> None:
    cache = SessionCache()  # a watcher that never reached the database
    cache.put(b"fresh", checked(None))
    cache.put(b"stale", checked(None, seconds_ago=TRUST_SECONDS + 0.1))
    assert cache.get(b"fresh") == SOMEONE
    assert cache.get(b"stale") is None


def test_confirmation_extends_trust_until_the_counter_moves() -> None:
    cache = SessionCache()
    cache.confirm(7, time.monotonic())
    cache.put(b"id", checked(7, seconds_ago=60))
    assert cache.get(b"id") == SOMEONE  # nothing revoked since, confirmed just now
    cache.confirm(8, time.monotonic())
    assert cache.get(b"id") is None  # a revocation: checked again


def test_a_check_overtaken_by_a_revocation_is_not_kept() -> None:
    cache = SessionCache()
    cache.confirm(7, time.monotonic())
    cache.put(b"id", checked(6))  # began before the revocation it may have missed
    assert cache.get(b"id") is None


def test_a_session_needing_to_slide_is_checked_again() -> None:
    cache = SessionCache()
    cache.confirm(1, time.monotonic())
    cache.put(b"id", Checked(SOMEONE, 1, time.monotonic(), utc_now() - timedelta(seconds=1)))
    assert cache.get(b"id") is None


def test_the_bound_is_one_second_and_the_watcher_confirms_inside_it() -> None:
    interval = inspect.signature(ScanWatcher).parameters["interval"].default
    assert TRUST_SECONDS <= 1.0 and interval < TRUST_SECONDS


async def test_ends_reach_another_process_within_its_trust(
    settings: Settings, make_user: Any
) -> None:
    make_user("pia", "operator")
    make_user("quinn", "operator")
    first, second = LiveServer(settings), LiveServer(settings)
    assert settings.database_url
    url = settings.database_url
    clients: list[httpx2.AsyncClient] = []
    try:
        for server in (first, second):  # one after the other: each ensures the admin account
            await asyncio.to_thread(server.start)
        async def signed_in(username: str) -> tuple[httpx2.AsyncClient, httpx2.AsyncClient]:
            here = httpx2.AsyncClient(base_url=first.url, timeout=30)
            page = await here.get("/login")
            await here.post("/login", data={"username": username, "password": "correct-horse-42",
                                            "csrf_token": csrf_token_in(page.text)})
            there = httpx2.AsyncClient(base_url=second.url, timeout=30, cookies=here.cookies)
            clients.extend((here, there))
            assert (await there.get("/scan")).status_code == 200  # checked, so now trusted
            return here, there

        async def seen_within_polls(there: httpx2.AsyncClient, path: str, status: int) -> int:
            """Polls of the other process until it answers `status`: generous
            slack over the 1 s bound for a loaded machine, never a timing."""
            for polls in range(1, 151):
                if (await there.get(path, follow_redirects=False)).status_code == status:
                    return polls
                await asyncio.sleep(0.1)
            raise AssertionError(f"{path} never answered {status}")

        # sign-out in one process
        here, there = await signed_in("pia")
        home = await here.get("/")
        await here.post("/logout", data={"csrf_token": csrf_token_in(home.text)})
        await seen_within_polls(there, "/scan", 303)

        # a permission taken from the role, by SQL as an admin page would
        here, there = await signed_in("quinn")
        await execute(url, "DELETE rp FROM role_permissions rp JOIN roles r ON r.id = rp.role_id"
                           " WHERE r.name = 'operator' AND rp.permission = 'scan.quality'")
        await seen_within_polls(there, "/scan", 403)

        # the user disabled
        await execute(url, "UPDATE users SET active = FALSE WHERE username = 'quinn'")
        await seen_within_polls(there, "/", 303)
    finally:
        for client in clients:
            await client.aclose()
        first.stop()
        second.stop()
