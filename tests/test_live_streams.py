"""The live streams (/scan/stream, /fgscan/stream, /scans/stream): each ends
soon after its user may no longer see it, and none keeps a stream slot past
its end, whatever it was sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from quality.http.live import CHECK_SECONDS
from quality.http.slots import STREAMS_PER_USER
from quality.settings import Settings
from tests.admin_support import query
from tests.conftest import LiveServer, app_services, csrf_token_in, login
from tests.test_admin_roles import matrix_form

STREAM_PATHS = ("/scans/stream", "/scan/stream", "/fgscan/stream")


async def signed_in(server: LiveServer, username: str) -> httpx2.AsyncClient:
    http = httpx2.AsyncClient(base_url=server.url, timeout=30)
    page = await http.get("/login")
    answer = await http.post("/login", data={"username": username, "password": "correct-horse-42",
                                             "csrf_token": csrf_token_in(page.text)})
    assert answer.status_code == 303, answer.status_code
    return http


# -- a stream ends when its user loses what let them open it ----------------------

async def csrf(http: httpx2.AsyncClient, page: str) -> str:
    return csrf_token_in((await http.get(page)).text)


def user_id(settings: Settings, username: str) -> int:
    return query(settings, f"SELECT id FROM users WHERE username = '{username}'")[0][0]


async def demote_to_operator(admin: httpx2.AsyncClient, _user: httpx2.AsyncClient,
                             settings: Settings, username: str) -> None:
    target = user_id(settings, username)
    answer = await admin.post(f"/admin/users/{target}", data={
        "csrf_token": await csrf(admin, f"/admin/users/{target}"), "full_name": "",
        "role": "operator", "active": "on"})
    assert answer.status_code == 303 and "?done=saved" in answer.headers["location"]


async def take_fg_from_operators(admin: httpx2.AsyncClient, _user: httpx2.AsyncClient,
                                 settings: Settings, _username: str) -> None:
    form = matrix_form(settings, await csrf(admin, "/admin/roles"), operator={"scan.quality"})
    answer = await admin.post("/admin/roles/matrix", content=urlencode(form), headers={
        "content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 303 and "?done=matrix" in answer.headers["location"]


async def disable(admin: httpx2.AsyncClient, _user: httpx2.AsyncClient,
                  settings: Settings, username: str) -> None:
    target = user_id(settings, username)
    answer = await admin.post(f"/admin/users/{target}/disable",
                              data={"csrf_token": await csrf(admin, f"/admin/users/{target}")})
    assert answer.status_code == 303 and "?done=disabled" in answer.headers["location"]


async def sign_out(_admin: httpx2.AsyncClient, user: httpx2.AsyncClient,
                   _settings: Settings, _username: str) -> None:
    answer = await user.post("/logout", data={"csrf_token": await csrf(user, "/account")},
                             follow_redirects=False)
    assert answer.status_code == 303


async def drained(stream: httpx2.Response) -> bytes:
    return b"".join([chunk async for chunk in stream.aiter_bytes()])


@pytest.mark.parametrize(("role", "path", "revoke", "reconnected"), [
    ("supervisor", "/scans/stream", demote_to_operator, 403),
    ("operator", "/fgscan/stream", take_fg_from_operators, 403),
    ("operator", "/scan/stream", disable, 303),
    ("supervisor", "/scans/stream", sign_out, 303),
], ids=["role-changed", "permission-untick", "disabled", "signed-out"])
async def test_an_open_stream_ends_soon_after_its_user_may_no_longer_see_it(
    live_server: LiveServer, settings: Settings, make_user: Any, role: str, path: str,
    revoke: Callable[..., Any], reconnected: int,
) -> None:
    make_user("ada", "admin")
    make_user("sue", role)
    admin, user = await signed_in(live_server, "ada"), await signed_in(live_server, "sue")
    try:
        async with user.stream("GET", path) as stream:
            assert stream.status_code == 200
            read = asyncio.create_task(drained(stream))  # done when the stream ends
            await asyncio.sleep(2 * CHECK_SECONDS)
            assert not read.done()  # it held through its checks while nothing changed
            await revoke(admin, user, settings, "sue")
            # Generous against the promised 2 s, far below the stream's own 600 s deadline.
            async with asyncio.timeout(5):
                assert (await read).startswith(b"retry:")
        # Reconnecting is refused like any request.
        async with user.stream("GET", path) as again:
            assert again.status_code == reconnected
    finally:
        await admin.aclose()
        await user.aclose()


# -- a stream's parameters are checked before it takes a slot ---------------------

def open_slots(client: TestClient) -> int:
    return app_services(client).streams.open


def stream_status(client: TestClient, path: str, **request: Any) -> int:
    """The answer's status; a stream that opened is closed at once, unread."""
    with client.stream("GET", path, **request) as answer:
        return answer.status_code


@pytest.mark.parametrize("path", STREAM_PATHS)
@pytest.mark.parametrize("request_options", [
    {"params": {"v": "²"}},  # "²".isdigit(), yet no int
    {"params": {"v": "9" * 5000}},  # past int()'s digit limit
    {"headers": {"Last-Event-ID": "9" * 5000}},
    {"params": {"v": "-1"}},
], ids=["superscript-v", "5000-digit-v", "5000-digit-last-event-id", "negative-v"])
def test_a_bad_stream_position_is_refused_and_takes_no_slot(
    client: TestClient, make_user: Any, path: str, request_options: dict[str, Any]
) -> None:
    make_user("ada", "admin")  # may open every stream
    login(client, "ada")
    for _ in range(STREAMS_PER_USER + 1):  # more than a user's slots: none kept
        assert stream_status(client, path, **request_options) == 400
        assert open_slots(client) == 0
    assert stream_status(client, path, params={"v": "0"}) == 200
    assert open_slots(client) == 0  # given back when the client left


async def test_a_bad_last_event_id_byte_is_refused_and_takes_no_slot(
    live_server: LiveServer, make_user: Any
) -> None:
    """A raw 0xB2 byte is "²" to the app (headers are Latin-1): only a real
    server passes it through as sent."""
    make_user("sue", "supervisor")
    http = await signed_in(live_server, "sue")
    try:
        for path in STREAM_PATHS:
            for _ in range(STREAMS_PER_USER + 1):
                async with http.stream("GET", path, headers={"Last-Event-ID": b"\xb2"}) as answer:
                    assert answer.status_code == 400, (path, answer.status_code)
        async with contextlib.AsyncExitStack() as stack:  # every slot still free
            for _ in range(STREAMS_PER_USER):
                stream = await stack.enter_async_context(http.stream("GET", "/scans/stream"))
                assert stream.status_code == 200
    finally:
        await http.aclose()


def test_a_stream_the_client_leaves_gives_its_slot_back_at_once(
    client: TestClient, make_user: Any
) -> None:
    make_user("ada", "admin")
    login(client, "ada")
    for path in STREAM_PATHS:
        for _ in range(STREAMS_PER_USER + 1):
            assert stream_status(client, path) == 200  # left before its body began
            assert open_slots(client) == 0
        with client.stream("GET", path) as answer:
            chunks = answer.iter_bytes()  # held: dropping it would close the response
            assert next(chunks).startswith(b"retry:")
            assert open_slots(client) == 1
        assert open_slots(client) == 0  # left mid-stream


# -- whatever a stream is sent -----------------------------------------------------

FUZZ = hypothesis_settings(max_examples=200, deadline=None, derandomize=True,
                           suppress_health_check=[HealthCheck.function_scoped_fixture])
# Positions and filter values that are almost right, or wrong in the ways that matter.
NEAR = st.sampled_from([
    "", "0", "7", "-1", "+1", " 1", "1 ", "0x10", "1_000", "1e3", "²", "³", "¹",
    "\u0663", "\uff11\uff12",  # Arabic-Indic and fullwidth digits: int() reads them
    "99999999999999999999", "999999999999999999999", "9" * 4301, "9" * 12_000, "\x00", "é" * 2000,
    "quality", "fg", "QUALITY", "2026-11-27", "2026-02-30", "2026-11-27T25:00", "9", "OP07",
    "CP00012345", "CP00012345-0001", "OC12", "104", "yes", "on", "a" * 12_000,
])
VALUE = st.one_of(NEAR, st.text(max_size=300), st.integers(0, 12_000).map(lambda n: "9" * n))
PARAMETERS = st.lists(st.tuples(st.one_of(st.sampled_from(
    ["v", "station", "from", "to", "shift", "operator", "order", "piece", "checker", "defect",
     "rejected", "rescans", "before", "after"]), st.text(max_size=20)), VALUE), max_size=4)


@FUZZ
@given(path=st.sampled_from(STREAM_PATHS), parameters=PARAMETERS,
       last_event_id=st.one_of(st.none(), VALUE, st.binary(max_size=300)))
def test_whatever_a_stream_is_sent_it_never_fails_and_keeps_no_slot(
    fuzz_client: TestClient, path: str, parameters: list[tuple[str, str]],
    last_event_id: str | bytes | None,
) -> None:
    headers = {}
    if last_event_id is not None:
        # Header values are bytes on the wire: text goes as UTF-8, bytes as they are.
        headers["Last-Event-ID"] = (last_event_id.encode() if isinstance(last_event_id, str)
                                    else last_event_id)
    status = stream_status(fuzz_client, path, params=parameters, headers=headers)
    event(f"{path} {status}")
    assert status < 500, (path, parameters, last_event_id)
    assert open_slots(fuzz_client) == 0


@pytest.fixture
def fuzz_client(client: TestClient, make_user: Any) -> TestClient:
    make_user("ada", "admin")  # may open every stream
    login(client, "ada")
    return client

