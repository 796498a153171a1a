"""The pool and its transaction context manager against a real MariaDB."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter

import asyncmy
import pytest

from quality.db import (
    RUN_TRIES,
    ConnectionLost,
    Contended,
    Cursor,
    Database,
    DatabaseUnavailable,
    PoolTimeout,
    QueryTimeout,
    TransientError,
    error_code,
    transaction_open,
)
from quality.localdb import LocalMariaDB
from quality.settings import DatabaseURL
from tests.conftest import database_for, execute, run_async


async def count_connections(url: DatabaseURL) -> int:
    (rows,) = await execute(
        url.__class__(**{**url.__dict__, "database": "mysql"}),
        f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{url.database}'",
    )
    return rows[0][0]


async def rows_in(db: Database, sql: str) -> list[tuple]:
    async with db.transaction() as cur:
        await cur.execute(sql)
        return await cur.fetchall()


async def test_200_tasks_never_exceed_pool_max(db_url: DatabaseURL) -> None:
    db = database_for(db_url, maxsize=5, timeout=60)
    await db.open()
    watcher = await asyncmy.connect(**{**db_url.connect_kwargs(), "db": "mysql"})
    peak = 0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        async with watcher.cursor() as cur:
            while not done.is_set():
                await cur.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s",
                    (db_url.database,),
                )
                (count,) = await cur.fetchone()
                peak = max(peak, count)
                await asyncio.sleep(0.002)

    async def work(n: int) -> int:
        async with db.transaction() as cur:
            await cur.execute("SELECT SLEEP(0.01), %s", (n,))
            return (await cur.fetchone())[1]

    sampler = asyncio.create_task(sample())
    results = await asyncio.gather(*(work(n) for n in range(200)))
    done.set()
    await sampler
    watcher.close()
    stats = db.stats()
    await db.close()

    assert sorted(results) == list(range(200))
    print(f"\npeak server-side connections with QUALITY_POOL_MAX=5: {peak}")
    assert 2 <= peak <= 5
    assert stats.size <= 5 and stats.in_use == 0 and stats.acquired == 200


async def test_exception_rolls_back_and_returns_connection(db: Database) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with db.transaction() as cur:
            await cur.execute("INSERT INTO defect_codes (code, name) VALUES ('901', 'Test')")
            raise RuntimeError("boom")
    assert await rows_in(db, "SELECT code FROM defect_codes WHERE code = '901'") == []
    stats = db.stats()
    assert stats.in_use == 0 and stats.idle >= 1 and stats.discarded == 0


async def test_commit_on_success(db: Database) -> None:
    async with db.transaction() as cur:
        await cur.execute("INSERT INTO defect_codes (code, name) VALUES ('902', 'Kept')")
    assert await rows_in(db, "SELECT name FROM defect_codes WHERE code = '902'") == [("Kept",)]


async def test_cancelled_mid_statement_rolls_back(db: Database) -> None:
    started = asyncio.Event()

    async def doomed() -> None:
        async with db.transaction() as cur:
            await cur.execute("INSERT INTO defect_codes (code, name) VALUES ('903', 'Lost')")
            started.set()
            await cur.execute("SELECT SLEEP(5)")

    task = asyncio.create_task(doomed())
    await started.wait()
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert db.stats().in_use == 0
    assert await rows_in(db, "SELECT code FROM defect_codes WHERE code = '903'") == []


async def test_cancelled_between_statements_rolls_back_and_keeps_connection(db: Database) -> None:
    inserted = asyncio.Event()

    async def doomed() -> None:
        async with db.transaction() as cur:
            await cur.execute("INSERT INTO defect_codes (code, name) VALUES ('904', 'Lost')")
            inserted.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(doomed())
    await inserted.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = db.stats()
    assert stats.in_use == 0 and stats.discarded == 0
    assert await rows_in(db, "SELECT code FROM defect_codes WHERE code = '904'") == []


async def test_pool_timeout_raises_typed_error_then_recovers(db_url: DatabaseURL) -> None:
    db = database_for(db_url, maxsize=2, timeout=0.5)
    await db.open()
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with db.transaction() as cur:
            await cur.execute("SELECT 1")
            holding.set()
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    await holding.wait()
    await asyncio.sleep(0.05)
    with pytest.raises(PoolTimeout, match="all 2 in use"):
        async with db.transaction():
            pass
    assert not any(task.done() for task in holders)  # it gave up; nobody freed a slot
    release.set()
    await asyncio.gather(*holders)
    assert await rows_in(db, "SELECT 42") == [(42,)]
    stats = db.stats()
    assert stats.timeouts == 1 and stats.in_use == 0
    await db.close()


async def test_killed_connections_are_replaced_silently(db_url: DatabaseURL) -> None:
    db = database_for(db_url, minsize=3, maxsize=3)
    await db.open()
    assert db.stats().idle == 3
    server = DatabaseURL(**{**db_url.__dict__, "database": "mysql"})
    (ids,) = await execute(
        server, f"SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '{db_url.database}'"
    )
    assert len(ids) == 3
    await execute(server, *(f"KILL {connection_id}" for (connection_id,) in ids))
    while await count_connections(db_url):  # noqa: ASYNC110 - polling the server, not a flag
        await asyncio.sleep(0.01)

    results = await asyncio.gather(*(rows_in(db, "SELECT 7") for _ in range(6)))
    assert results == [[(7,)]] * 6
    assert db.stats().discarded >= 3
    await db.close()


async def test_connection_killed_mid_transaction_is_typed_and_rolled_back(db: Database) -> None:
    with pytest.raises(ConnectionLost):
        async with db.transaction() as cur:
            await cur.execute("INSERT INTO defect_codes (code, name) VALUES ('905', 'Lost')")
            await cur.execute("SELECT CONNECTION_ID()")
            (own_id,) = await cur.fetchone()
            async with db.transaction() as other:
                await other.execute(f"KILL {own_id}")
            await cur.execute("SELECT 1")
    assert await rows_in(db, "SELECT code FROM defect_codes WHERE code = '905'") == []
    assert db.stats().in_use == 0


async def test_statement_over_query_timeout_is_stopped(db_url: DatabaseURL) -> None:
    db = database_for(db_url, query_timeout=0.3)
    await db.open()
    with pytest.raises(QueryTimeout, match="query timeout"):
        async with db.transaction() as cur:
            await cur.execute("SELECT SLEEP(5) FROM defect_codes")
    assert await rows_in(db, "SELECT 1") == [(1,)]
    assert db.stats().discarded == 0  # the same connection went on serving
    await db.close()


async def test_recycled_after_lifetime_but_never_while_in_use(db_url: DatabaseURL) -> None:
    db = database_for(db_url, maxsize=1, recycle=0.5)
    await db.open()
    async with db.transaction() as cur:
        await cur.execute("SELECT CONNECTION_ID()")
        (first,) = await cur.fetchone()
        await asyncio.sleep(0.7)  # past its lifetime while borrowed
        await cur.execute("SELECT CONNECTION_ID()")
        assert (await cur.fetchone())[0] == first
    async with db.transaction() as cur:
        await cur.execute("SELECT CONNECTION_ID()")
        (second,) = await cur.fetchone()
    assert second != first
    assert db.stats().discarded == 1
    await db.close()


async def test_close_waits_for_borrowed_connections(db: Database) -> None:
    finished = []

    async def borrow() -> None:
        async with db.transaction() as cur:
            await cur.execute("SELECT SLEEP(0.3)")
        finished.append(True)

    task = asyncio.create_task(borrow())
    await asyncio.sleep(0.05)
    await db.close()
    assert finished == [True]
    await task
    with pytest.raises(DatabaseUnavailable, match="shutting down"):
        async with db.transaction():
            pass


async def test_server_restart_under_running_pool(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.mktemp("restart", numbered=True)
    server = LocalMariaDB(base, buffer_pool="32M")
    await asyncio.to_thread(server.ensure_running)
    try:
        db = database_for(server.url(), minsize=2, maxsize=4, timeout=1.0)
        await db.open()
        assert await rows_in(db, "SELECT 1") == [(1,)]

        await asyncio.to_thread(server.stop)
        with pytest.raises(DatabaseUnavailable):
            await rows_in(db, "SELECT 1")

        await asyncio.to_thread(server.ensure_running)
        loop = asyncio.get_running_loop()
        back = loop.time()
        assert await rows_in(db, "SELECT 2") == [(2,)]
        print(f"\nfirst query after restart answered {1000 * (loop.time() - back):.1f} ms "
              "after the server accepted connections")
        assert db.stats().in_use == 0
        await db.close()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(server.release)


async def test_connection_dead_before_first_statement_is_retried(
    db_url: DatabaseURL, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="quality.db")
    db = database_for(db_url, minsize=1, maxsize=1)
    await db.open()
    async with db.transaction() as cur:
        await cur.execute("SELECT CONNECTION_ID()")
        (victim,) = await cur.fetchone()
    server = DatabaseURL(**{**db_url.__dict__, "database": "mysql"})
    # Kill it while this event loop is blocked, so the pool cannot have seen the
    # disconnect yet: the first statement meets the dead connection.
    run_async(execute(server, f"KILL {victim}"))
    time.sleep(0.2)  # noqa: ASYNC251 - blocking on purpose, see above

    async with db.transaction() as cur:
        await cur.execute("INSERT INTO defect_codes (code, name) VALUES ('906', 'Saved')")
        await cur.execute("SELECT CONNECTION_ID()")
        (replacement,) = await cur.fetchone()
    assert replacement != victim
    assert "found dead" in caplog.text  # the statement itself met the dead connection
    assert await rows_in(db, "SELECT name FROM defect_codes WHERE code = '906'") == [("Saved",)]
    assert db.stats().discarded == 1
    await db.close()


async def test_failed_first_statement_leaves_nothing_behind(db: Database) -> None:
    async with db.transaction() as cur:
        await cur.execute(
            "CREATE PROCEDURE half_done() BEGIN"
            " INSERT INTO defect_codes (code, name) VALUES ('908', 'First step');"
            " INSERT INTO defect_codes (code, name) VALUES ('000', 'Duplicate'); END"
        )
    with pytest.raises(asyncmy.errors.IntegrityError):
        async with db.transaction() as cur:
            await cur.execute("CALL half_done()")
    # the procedure's first step must not ride along into the next transaction
    async with db.transaction() as cur:
        await cur.execute("INSERT INTO defect_codes (code, name) VALUES ('909', 'Next')")
    assert await rows_in(db, "SELECT code FROM defect_codes WHERE code IN ('908', '909')") == [
        ("909",)]


async def test_commit_is_skipped_only_when_nothing_is_open(db: Database) -> None:
    async with db.transaction() as cur:
        await cur.execute(
            "CREATE PROCEDURE commits_itself() BEGIN"
            " INSERT INTO defect_codes (code, name) VALUES ('910', 'Own commit'); COMMIT; END"
        )
    async with db.transaction() as cur:
        await cur.execute("CALL commits_itself()")
        assert not transaction_open(cur.pooled.conn)
    async with db.transaction() as cur:
        await cur.execute("INSERT INTO defect_codes (code, name) VALUES ('911', 'Ours')")
        assert transaction_open(cur.pooled.conn)
    assert await rows_in(
        db, "SELECT code FROM defect_codes WHERE code IN ('910', '911') ORDER BY code"
    ) == [("910",), ("911",)]


async def test_connection_held_too_long_is_reported(
    db_url: DatabaseURL, caplog: pytest.LogCaptureFixture
) -> None:
    db = database_for(db_url, maxsize=1, leak_after=0.2, recycle=0.4)
    await db.open()
    caplog.set_level("WARNING", logger="quality.db")
    async with db.transaction() as cur:
        await cur.execute("SELECT 1")
        await asyncio.sleep(0.8)  # housekeeping runs every 0.5 s at the shortest
    assert "has been held for" in caplog.text
    await db.close()


async def test_a_server_that_accepts_but_never_answers_is_unavailable_not_a_hang() -> None:
    # A listening socket that never sends MariaDB's greeting (a hung server, a
    # half-open proxy): connecting must give up after the pool timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        host, port = silent.getsockname()
        db = Database({"host": host, "port": port, "user": "u", "password": "p", "db": "d"},
                      minsize=0, maxsize=1, timeout=0.5)
        try:
            async with asyncio.timeout(30):  # a liveness bound, far above the 0.5 s
                with pytest.raises(DatabaseUnavailable):
                    async with db.transaction() as cur:
                        await cur.execute("SELECT 1")
            assert db.stats().in_use == 0 and db.stats().size == 0
        finally:
            await db.close()


# -- running a transaction again after a deadlock or a lock wait timeout ----------


async def probe_rows(db: Database, *ids: int) -> None:
    async with db.transaction() as cur:
        await cur.execute("CREATE TABLE probe (id INT PRIMARY KEY, n INT NOT NULL)")
        await cur.executemany("INSERT INTO probe (id, n) VALUES (%s, 0)", [(n,) for n in ids])


async def test_the_loser_of_a_deadlock_is_run_again(db: Database) -> None:
    await probe_rows(db, 1, 2)
    both_hold_one = asyncio.Barrier(2)
    runs: list[int] = []

    async def bump(cur: Cursor, first: int, second: int) -> str:
        runs.append(first)
        await cur.execute("UPDATE probe SET n = n + 1 WHERE id = %s", (first,))
        if runs.count(first) == 1:
            await both_hold_one.wait()  # each holds one row and now asks for the other's
        await cur.execute("UPDATE probe SET n = n + 1 WHERE id = %s", (second,))
        return f"{first} then {second}"

    done = await asyncio.gather(db.run(bump, 1, 2), db.run(bump, 2, 1))
    assert done == ["1 then 2", "2 then 1"]
    assert sorted(Counter(runs).values()) == [1, 2]  # the deadlock's loser ran twice
    assert db.stats().reruns == 1  # and /metrics counts it
    assert await rows_in(db, "SELECT id, n FROM probe ORDER BY id") == [(1, 2), (2, 2)]
    assert db.stats().in_use == 0


async def test_a_transaction_that_keeps_losing_gives_up_as_contended(
    db: Database, db_url: DatabaseURL
) -> None:
    await probe_rows(db, 1)
    holder = await asyncmy.connect(**db_url.connect_kwargs(), autocommit=False)
    runs = 0

    async def bump(cur: Cursor) -> None:
        nonlocal runs
        runs += 1
        await cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
        await cur.execute("UPDATE probe SET n = n + 1 WHERE id = 1")

    try:
        async with holder.cursor() as locking:
            await locking.execute("SELECT n FROM probe WHERE id = 1 FOR UPDATE")
        with pytest.raises(Contended) as raised:
            await db.run(bump)
    finally:
        await holder.rollback()
        holder.close()
    assert isinstance(raised.value, DatabaseUnavailable)  # answered 503, never 500
    # Every try waited for the held row until the lock wait ended it.
    assert runs == RUN_TRIES and error_code(raised.value.__cause__) == 1205
    assert await rows_in(db, "SELECT n FROM probe") == [(0,)]
    assert db.stats().in_use == 0


async def test_errors_that_running_again_cannot_cure_are_raised_at_once(db: Database) -> None:
    runs = 0

    async def broken(cur: Cursor) -> None:
        nonlocal runs
        runs += 1
        await cur.execute("SELECT no_such_column FROM users")

    with pytest.raises(asyncmy.errors.OperationalError):
        await db.run(broken)
    assert runs == 1


async def test_the_bulk_lane_holds_at_most_its_share_and_the_rest_stays_free(db_url: DatabaseURL) -> None:
    # 5 connections, a 40 % share: bulk work holds 2 at most, however much of it
    # there is; the others wait for the lane within the pool timeout and then
    # give up, while ordinary transactions still find the other 3 free.
    db = database_for(db_url, maxsize=5, timeout=1.0, bulk_share=0.4)
    await db.open()
    holding = asyncio.Semaphore(0)
    release = asyncio.Event()

    async def bulk_read() -> None:
        async with db.bulk.transaction() as cur:
            await cur.execute("SELECT COUNT(*) FROM scans")
            holding.release()
            await release.wait()

    readers = [asyncio.create_task(bulk_read()) for _ in range(6)]
    await holding.acquire()
    await holding.acquire()
    await asyncio.sleep(0.1)
    lane = db.bulk.stats()
    assert (lane.maxsize, lane.in_use, lane.waiting) == (2, 2, 4)
    assert db.stats().in_use == 2
    assert await count_connections(db_url) <= 5

    # Three ordinary transactions at once, while the lane is full and four wait.
    async def ordinary(n: int) -> int:
        async with db.transaction() as cur:
            await cur.execute("SELECT %s", (n,))
            return (await cur.fetchone())[0]

    assert await asyncio.gather(*(ordinary(n) for n in range(3))) == [0, 1, 2]

    # The waiters give up after the pool timeout with the pool's own error.
    waited = await asyncio.gather(*readers[2:], return_exceptions=True)
    assert all(isinstance(error, PoolTimeout) and "bulk" in str(error) for error in waited)
    assert db.bulk.stats().timeouts == 4 and db.bulk.stats().waiting == 0
    release.set()
    await asyncio.gather(*readers[:2])
    assert db.bulk.stats().in_use == 0 and db.stats().in_use == 0
    await db.close()


async def test_the_bulk_lane_gives_its_place_back_on_error_and_cancellation(db_url: DatabaseURL) -> None:
    db = database_for(db_url, maxsize=3, timeout=5.0, bulk_share=0.1)  # a lane of one
    await db.open()
    with pytest.raises(RuntimeError, match="boom"):
        async with db.bulk.transaction() as cur:
            await cur.execute("SELECT 1")
            raise RuntimeError("boom")

    started = asyncio.Event()

    async def slow() -> None:
        async with db.bulk.transaction() as cur:
            started.set()
            await cur.execute("SELECT SLEEP(30)")

    running = asyncio.create_task(slow())
    await started.wait()
    waiting = asyncio.create_task(slow())
    await asyncio.sleep(0.1)
    assert db.bulk.stats().waiting == 1
    for task in (waiting, running):  # one waiting for a place, one mid-statement
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert (db.bulk.stats().in_use, db.bulk.stats().waiting) == (0, 0)
    async with asyncio.timeout(1):  # the place is free again: no wait
        assert await rows_in(db, "SELECT 7") == [(7,)]
        async with db.bulk.transaction() as cur:
            await cur.execute("SELECT 8")
            assert await cur.fetchone() == (8,)
    assert db.stats().in_use == 0
    await db.close()


async def test_a_lock_wait_in_a_transaction_not_run_again_is_unavailable_not_a_500(
    db: Database, db_url: DatabaseURL
) -> None:
    await probe_rows(db, 1)
    holder = await asyncmy.connect(**db_url.connect_kwargs(), autocommit=False)
    try:
        async with holder.cursor() as locking:
            await locking.execute("SELECT n FROM probe WHERE id = 1 FOR UPDATE")
        with pytest.raises(TransientError) as raised:
            async with db.transaction() as cur:
                await cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
                await cur.execute("UPDATE probe SET n = n + 1 WHERE id = 1")
    finally:
        await holder.rollback()
        holder.close()
    assert isinstance(raised.value, DatabaseUnavailable) and error_code(raised.value) == 1205
    assert raised.value.contention
    assert await rows_in(db, "SELECT n FROM probe") == [(0,)]


async def failing_procedure(db: Database, code: int) -> None:
    """`fails()`: a result set, then the server's error `code`, as a procedure's
    later statement meets it."""
    async with db.transaction() as cur:
        await cur.execute(
            "CREATE PROCEDURE fails() BEGIN SELECT 1;"
            f" SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = {code}, MESSAGE_TEXT = 'as the server says'; END")


async def call_fails(cur: Cursor) -> None:
    await cur.execute("CALL fails()")
    await cur.fetchall()
    await cur.nextset()


async def test_a_deadlock_met_after_a_procedures_first_result_is_run_again(db: Database) -> None:
    await failing_procedure(db, 1213)
    with pytest.raises(Contended):  # every try lost; each was run again
        await db.run(call_fails)
    assert db.stats().in_use == 0


async def test_a_node_that_cannot_serve_costs_its_connections_and_is_tried_again(db: Database) -> None:
    await failing_procedure(db, 1047)  # Galera: "WSREP has not yet prepared node for application use"
    async with db.transaction() as a, db.transaction() as b:  # two idle ones after, leading to the same node
        await a.execute("SELECT 1")
        await b.execute("SELECT 1")
    discarded = db.stats().discarded
    with pytest.raises(TransientError) as raised:  # a 503 saying so, not "contended"
        await db.run(call_fails)
    assert error_code(raised.value) == 1047 and not raised.value.contention
    # Each try's connection went, and the idle ones the first try left behind.
    assert db.stats().discarded >= discarded + RUN_TRIES + 1
    assert db.stats().in_use == 0


async def test_mariadbs_4031_is_an_error_of_the_statement_not_a_lost_connection(db: Database) -> None:
    # On MySQL 8, 4031 says the connection was closed for idling; MariaDB uses
    # the number for "referenced trigger does not exist".
    async with db.transaction() as cur:
        await cur.execute("CREATE TABLE probe (id INT PRIMARY KEY)")
    created = db.stats().created
    with pytest.raises(asyncmy.errors.MySQLError) as raised:
        async with db.transaction() as cur:
            await cur.execute("CREATE TRIGGER probe_b BEFORE INSERT ON probe FOR EACH ROW"
                              " FOLLOWS no_such_trigger SET NEW.id = NEW.id")
    assert error_code(raised.value) == 4031
    assert db.stats().created == created  # no reconnection, no statement run twice
