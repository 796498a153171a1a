"""Signing in and out: wrong passwords, throttling, where a sign-in may lead."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from quality.app import create_app
from quality.settings import DatabaseURL, Settings
from quality.throttle import BOUNDS, MAX_WAIT, STRANGER_WAIT
from tests.conftest import (
    PASSWORD,
    LiveServer,
    client_sockets_may_leak,
    csrf_token_in,
    database_for,
    execute,
    login,
    run_async,
    session_count,
)
from tests.test_passwords import old_scrypt_hash


def client_from(settings: Settings, address: str) -> TestClient:
    """A browser at `address` (another app instance, as another process would be)."""
    return TestClient(create_app(settings), client=(address, 50000))


def age_attempts(settings: Settings, seconds: int) -> None:
    """Move every sign-in attempt `seconds` into the past, as if that time had gone by."""
    assert settings.database_url
    run_async(execute(settings.database_url,
                      f"UPDATE login_attempts SET last_at = last_at - INTERVAL {seconds} SECOND"))


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
        assert "Too many failed sign-in attempts. Wait 15 seconds, then try again." in blocked.text
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


async def test_a_parallel_burst_gets_no_more_tries_than_the_limit(
    settings: Settings, make_user: Any
) -> None:
    make_user("bea", "operator")
    env = {"QUALITY_POOL_TIMEOUT": "60"}  # a slow machine queues; nothing may fail as busy
    servers = [LiveServer(settings, env), LiveServer(settings, env)]
    try:
        for server in servers:  # one after the other: each ensures the admin account
            await asyncio.to_thread(server.start)
        async def guesses(server: LiveServer) -> list[int]:
            async with httpx2.AsyncClient(base_url=server.url, timeout=120) as http:
                token = csrf_token_in((await http.get("/login")).text)
                data = {"username": "bea", "password": "wrong-guess", "csrf_token": token}
                answers = await asyncio.gather(*(http.post("/login", data=data) for _ in range(20)))
            return [answer.status_code for answer in answers]

        with client_sockets_may_leak():
            first, second = await asyncio.gather(*(guesses(server) for server in servers))
    finally:
        for server in servers:
            server.stop()
    statuses = Counter(first + second)
    assert statuses == {401: BOUNDS["pair"].free, 429: 40 - BOUNDS["pair"].free}


def test_a_locked_out_address_does_not_lock_the_user_out_elsewhere(
    settings: Settings, make_user: Any
) -> None:
    make_user("ivy", "operator")
    with client_from(settings, "10.0.0.66") as stranger, client_from(settings, "10.0.0.7") as own:
        for _ in range(BOUNDS["pair"].free):
            assert login(stranger, "ivy", "guess-guess").status_code == 401
        assert login(stranger, "ivy").status_code == 429
        assert login(own, "ivy").status_code == 303
    assert session_count(settings) == 1


def test_waits_grow_with_each_further_failure_of_a_pair(
    settings: Settings, make_user: Any
) -> None:
    make_user("max", "operator")
    with client_from(settings, "10.0.0.8") as client:
        for _ in range(BOUNDS["pair"].free):
            assert login(client, "max", "guess-guess").status_code == 401
        assert "Wait 15 seconds" in login(client, "max", "guess-guess").text
        age_attempts(settings, 16)
        assert login(client, "max", "guess-guess").status_code == 401
        refused = login(client, "max")
        assert refused.status_code == 429 and "Wait 30 seconds" in refused.text
        age_attempts(settings, 31)
        assert login(client, "max").status_code == 303  # and the pair starts afresh
        assert login(client, "max", "guess-guess").status_code == 401


def test_guesses_spread_over_addresses_only_delay_a_clean_address(
    settings: Settings, make_user: Any
) -> None:
    make_user("kim", "operator")
    free = BOUNDS["pair"].free
    strangers = [f"10.0.1.{n}" for n in range(BOUNDS["user"].free // free)]
    for address in strangers:
        with client_from(settings, address) as stranger:
            for _ in range(free):
                assert login(stranger, "kim", "guess-guess").status_code == 401
    with client_from(settings, "10.0.0.9") as own:
        delayed = login(own, "kim")
        seconds = int(STRANGER_WAIT.total_seconds())
        assert delayed.status_code == 429 and f"Wait {seconds} seconds" in delayed.text
        age_attempts(settings, seconds + 1)
        assert login(own, "kim").status_code == 303
    with client_from(settings, strangers[0]) as stranger:
        assert login(stranger, "kim").status_code == 429  # a guessing address still waits


def test_an_address_has_a_looser_bound_of_its_own(settings: Settings, make_user: Any) -> None:
    make_user("lou", "operator")
    assert settings.database_url
    run_async(execute(
        settings.database_url,
        "INSERT INTO login_attempts (scope, subject, failures, last_at)"
        f" VALUES ('address', '10.0.0.10', {BOUNDS['address'].free}, UTC_TIMESTAMP(6))"))
    with client_from(settings, "10.0.0.10") as client:
        assert login(client, "lou").status_code == 429
    with client_from(settings, "10.0.0.11") as client:
        assert login(client, "lou").status_code == 303


def test_an_old_hash_is_replaced_at_sign_in(settings: Settings, client: TestClient) -> None:
    assert settings.database_url
    run_async(execute(
        settings.database_url,
        "INSERT INTO users (username, password_hash, role_id) SELECT 'old', "
        f"'{old_scrypt_hash('correct-horse-42')}', id FROM roles WHERE name = 'operator'"))
    assert login(client, "old").status_code == 303
    (rows,) = run_async(execute(settings.database_url,
                                "SELECT password_hash FROM users WHERE username = 'old'"))
    assert rows[0][0].startswith("$argon2id$")


# -- a stranger's guesses, a shift change ---------------------------------------


def test_a_strangers_failures_never_lock_the_user_out_of_their_own_station(
    settings: Settings, make_user: Any
) -> None:
    make_user("sup1", "supervisor")
    for n in range(14):  # a stranger tries from eight other stations, now and then
        with client_from(settings, f"127.0.0.{2 + n % 8}") as stranger:
            assert login(stranger, "sup1", "guess-guess").status_code == 401
        age_attempts(settings, int(MAX_WAIT.total_seconds()) + 1)
    with client_from(settings, "127.0.0.1") as own:
        assert login(own, "sup1", "typo-typo").status_code == 401
        delayed = login(own, "sup1")
        seconds = int(STRANGER_WAIT.total_seconds())
        assert delayed.status_code == 429 and f"Wait {seconds} seconds" in delayed.text
        age_attempts(settings, seconds + 1)
        assert login(own, "sup1").status_code == 303
    assert session_count(settings) == 1


async def sign_in_at_once(server: LiveServer, attempts: list[tuple[str, str, str]]) -> list[int]:
    """Each (address, user name, password) from a browser of its own at that
    address; every browser first loads the sign-in page, then all post at once."""
    ready = asyncio.Barrier(len(attempts))

    async def sign_in(address: str, username: str, password: str) -> int:
        transport = httpx2.AsyncHTTPTransport(local_address=address)
        async with httpx2.AsyncClient(base_url=server.url, transport=transport, timeout=120) as http:
            token = csrf_token_in((await http.get("/login")).text)
            await ready.wait()
            data = {"username": username, "password": password, "csrf_token": token}
            return (await http.post("/login", data=data)).status_code

    with client_sockets_may_leak():
        return list(await asyncio.gather(*(sign_in(*attempt) for attempt in attempts)))


@pytest.fixture
async def busy_server(settings: Settings) -> AsyncIterator[LiveServer]:
    """The app in a process of its own, where a slow machine queues for the pool
    rather than answering busy."""
    server = LiveServer(settings, {"QUALITY_POOL_TIMEOUT": "60"})
    await asyncio.to_thread(server.start)
    yield server
    server.stop()


async def test_a_shift_change_signs_everyone_in_from_one_address(
    settings: Settings, make_user: Any, busy_server: LiveServer
) -> None:
    # More people than the address's free failures, behind one address (a
    # terminal server, a NAT), twice over: none refused, none an error.
    users = [make_user(f"op{n}", "operator") for n in range(BOUNDS["address"].free + 10)]
    for _ in range(2):
        statuses = await sign_in_at_once(busy_server, [("127.0.0.1", user, PASSWORD) for user in users])
        assert Counter(statuses) == {303: len(users)}
    assert session_count(settings) == 2 * len(users)


async def test_the_same_user_signs_in_at_several_terminals_at_once(
    settings: Settings, make_user: Any, busy_server: LiveServer
) -> None:
    make_user("sup2", "supervisor")
    # Four stations of their own, and more terminals than the pair's free
    # failures behind one more address.
    addresses = [f"127.0.0.{n}" for n in range(2, 6)] + ["127.0.0.6"] * (BOUNDS["pair"].free + 1)
    statuses = await sign_in_at_once(busy_server, [(address, "sup2", PASSWORD) for address in addresses])
    assert Counter(statuses) == {303: len(addresses)}
    assert session_count(settings) == len(addresses)


async def test_guesses_over_many_names_at_once_get_no_more_tries_than_the_address_allows(
    busy_server: LiveServer,
) -> None:
    free = BOUNDS["address"].free
    guesses = [("127.0.0.1", f"nobody{n}", "wrong-guess") for n in range(free + 10)]
    statuses = await sign_in_at_once(busy_server, guesses)
    assert Counter(statuses) == {401: free, 429: 10}


@contextlib.contextmanager
def held_open(url: DatabaseURL, *statements: str) -> Iterator[None]:
    """The statements run in a transaction of another connection, left open
    (its row locks held) until the block ends."""
    holding, done = threading.Event(), threading.Event()

    async def hold() -> None:
        holder = database_for(url, maxsize=1)
        async with holder.transaction() as cur:
            for statement in statements:
                await cur.execute(statement)
            holding.set()
            await asyncio.to_thread(done.wait)
        await holder.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(run_async, hold())
        try:
            assert holding.wait(10)
            yield
        finally:
            done.set()
        held.result()


def test_a_sign_in_that_keeps_waiting_for_its_counters_is_a_503(
    settings: Settings, make_user: Any
) -> None:
    make_user("una", "operator")
    url = settings.database_url
    assert url
    ((wait_before,),) = run_async(execute(url, "SELECT @@GLOBAL.innodb_lock_wait_timeout"))[0]
    run_async(execute(url, "SET GLOBAL innodb_lock_wait_timeout = 1"))  # for the app's connections
    try:
        with held_open(url, "INSERT INTO login_attempts (scope, subject, failures, last_at)"
                            " VALUES ('address', '10.0.0.12', 0, UTC_TIMESTAMP(6))"), \
                client_from(settings, "10.0.0.12") as client:
            locked = login(client, "una")
    finally:
        run_async(execute(url, f"SET GLOBAL innodb_lock_wait_timeout = {wait_before}"))
    assert locked.status_code == 503 and locked.headers["retry-after"] == "2"
    assert "The database is busy or unreachable." in locked.text
    assert session_count(settings) == 0
