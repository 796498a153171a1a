"""asyncmy's private attributes the pool reads: still there and still meaning
what quality/asyncmy_internals.py says, on a real connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncmy
import pytest
from asyncmy.constants import SERVER_STATUS

from quality.asyncmy_internals import last_server_status, stream_broken
from quality.settings import DatabaseURL

IN_TRANS = SERVER_STATUS.SERVER_STATUS_IN_TRANS


@pytest.fixture
async def conn(db_url: DatabaseURL) -> AsyncIterator[Any]:
    connection = await asyncmy.connect(**db_url.connect_kwargs(), autocommit=False)
    yield connection
    connection.close()


async def run(conn: Any, sql: str) -> None:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        await cur.fetchall()


async def test_last_server_status_sees_a_transaction_open_and_then_closed(conn: Any) -> None:
    await run(conn, "START TRANSACTION")
    await run(conn, "SELECT 1")
    assert last_server_status(conn) & IN_TRANS
    await run(conn, "COMMIT")
    # The public attribute may keep an older non-zero status; the last result must not.
    assert not last_server_status(conn) & IN_TRANS


async def test_stream_broken_sees_a_connection_the_server_killed(
    conn: Any, db_url: DatabaseURL
) -> None:
    assert stream_broken(conn) is False
    async with conn.cursor() as cur:
        await cur.execute("SELECT CONNECTION_ID()")
        (connection_id,) = await cur.fetchone()
    killer = await asyncmy.connect(**db_url.connect_kwargs())
    try:
        async with killer.cursor() as cur:
            await cur.execute(f"KILL {int(connection_id)}")
    finally:
        killer.close()
    for _ in range(100):  # the hang-up reaches the socket asynchronously
        if stream_broken(conn):
            break
        await asyncio.sleep(0.02)
    assert stream_broken(conn) is True
    assert conn.connected  # what the pool cannot rely on alone


def test_both_attributes_are_read_directly() -> None:
    """A rename in asyncmy must fail here, not read as 'healthy, nothing open'."""

    class Renamed:
        server_status = 0

    with pytest.raises(AttributeError):
        last_server_status(Renamed())
    with pytest.raises(AttributeError):
        stream_broken(Renamed())
