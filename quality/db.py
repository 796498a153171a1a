"""One bounded pool of asyncmy connections and the one way to use it.

All database access goes through `Database.transaction()`:

    async with db.transaction() as cur:
        await cur.execute("INSERT ...", params)

It commits when the block ends, rolls back on any exception (cancellation
included) and always gives the connection back. asyncmy's own pool has no
acquire timeout, no liveness handling and no figures, so this module keeps its
own small pool of asyncmy connections:

* bounded: a semaphore of `maxsize` slots; a caller waits at most `timeout`
  for one and then gets `PoolTimeout`, never a hang;
* healthy: a connection found dead on the first statement of a transaction
  (server restart, KILL, wait_timeout) is discarded and the statement re-run on
  a fresh connection, which is safe because nothing was written yet; later
  failures surface as `ConnectionLost`. Connections live at most `recycle`
  seconds (staggered so they don't all expire at once) and are retired only
  when they come back, never while in use;
* bounded statements: every session runs with MariaDB's `max_statement_time`;
* server-independent: every session sets the app's sql_mode and collation,
  whatever a DBA configured, and says (`encrypted`) whether it uses TLS;
* observable: `stats()` gives size, in use, idle, waiting, timeouts and
  discarded connections; `observe_wait`, when set, is told each acquire's wait;
* shared fairly: work that comes in crowds and can wait (exports, reports,
  list totals) goes through `db.bulk.transaction()`, a lane that holds at most
  a share of the connections, so scans, sign-ins and /healthz always find the
  rest free;
* one choice of server for reads: what may be a moment old (list pages past
  the first, totals, reports, exports) goes through `db.read(body, ...)`,
  which runs it on the read replica while that keeps up (quality/replica.py)
  and otherwise, or when the replica fails it, here.

Transient errors: a transaction can fail through no fault of its own: it lost
to concurrent ones (a deadlock, 1213, which on Galera is also a certification
failure, at any statement or at COMMIT; a lock wait timeout, 1205), or its
server cannot serve now (Galera's 1047 "WSREP has not yet prepared node for
application use" from a node without quorum or still joining; 1053 from a
server shutting down). Nothing of it was saved (`transaction()` rolls back
what the server left open), and running it again usually goes through. These
errors leave the cursor as `TransientError`, a `DatabaseUnavailable` (a 503,
never a 500); for the last two the connection and its idle siblings are
dropped, as they lead to the same node, so that the next one is opened anew
(behind a proxy, perhaps on another node). `transaction()` cannot run its body
again: the body of a `with` block runs once. A transaction that is safe to run
again goes through `Database.run`, as a function of the cursor:

    async def bump(cur: Cursor, key: str) -> int:
        await cur.execute("UPDATE counters SET n = n + 1 WHERE k = %s", (key,))
        await cur.execute("SELECT n FROM counters WHERE k = %s", (key,))
        (n,) = await cur.fetchone()
        return n

    n = await db.run(bump, "scans")

`run` calls it in a transaction of its own, up to `RUN_TRIES` times, after a
short random pause that doubles each time (contenders don't meet again in
step); when every try lost to concurrent ones it raises `Contended`, when the
server stayed unable to serve the last `TransientError`, both a 503 like a
pool timeout. Any other error is raised at once. The
body must be safe to run again: database work only, no side effect outside it
(set cookies, caches or counters once `run` has returned).

Longer than 600 lines because the pool is one object: its slots, idle
connections, healing, recycling, draining and transient-error runs all keep
the same few counters and one semaphore honest, and each promise has its test
in tests/test_db.py.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import ssl
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import asyncmy
from asyncmy.constants import SERVER_STATUS
from asyncmy.errors import MySQLError

from quality.asyncmy_internals import last_server_status, stream_broken

log = logging.getLogger(__name__)

# Client- and server-side codes that mean "this connection is gone".
_CONNECTION_LOST = {
    2006,  # CR_SERVER_GONE_ERROR
    2013,  # CR_SERVER_LOST
    2055,  # CR_SERVER_LOST_EXTENDED
    1053,  # ER_SERVER_SHUTDOWN
    1927,  # ER_CONNECTION_KILLED (MariaDB)
    0,  # asyncmy's InterfaceError "Not connected"
}
# MySQL 8 says why it closes an idle connection (wait_timeout) before closing
# it; MariaDB just closes it, and uses the same number for "referenced trigger
# does not exist" (ER_REFERENCED_TRG_DOES_NOT_EXIST).
_MYSQL_IDLE_TIMEOUT = 4031  # ER_CLIENT_INTERACTION_TIMEOUT
_STATEMENT_TIMEOUT = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time
DUPLICATE_KEY = 1062  # ER_DUP_ENTRY: a unique key already holds the value
# Its own generator: the pool never moves the process's shared random state.
_STAGGER = random.Random()
_ACCESS_DENIED = 1045  # also MariaDB's answer to a plain connection it requires to be TLS
_INSECURE_TRANSPORT = 3159  # MySQL: ER_SECURE_TRANSPORT_REQUIRED

# What every session runs under, whatever the server's defaults or a DBA's
# global settings: the sql_mode the app's SQL is written for (stored routines
# keep the mode they were created under, so migrations run under it too), and
# the character set and collation the schema declares.
SQL_MODE = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
CHARSET = "utf8mb4"
COLLATION = "utf8mb4_unicode_ci"



class ReadReplica(Protocol):
    """What `Database.read` needs of a read replica (quality/replica.py has the
    one kind; a protocol here because that module builds on this one)."""

    pool: Database
    served: int
    fallbacks: Counter[str]
    caught_up_to: float | None

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def why_not(self, written_at: float | None) -> str | None: ...

    def failed(self, exc: BaseException) -> str: ...

class DatabaseError(Exception):
    """Base of the errors this module raises instead of driver errors."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot serve this request now; trying again later may work."""


class PoolTimeout(DatabaseUnavailable):
    """Every connection stayed busy for the whole acquire timeout."""


class ConnectionLost(DatabaseUnavailable):
    """The connection died in the middle of a transaction; nothing was committed
    unless the loss happened during COMMIT itself (then the outcome is unknown)."""


class QueryTimeout(DatabaseUnavailable):
    """A statement ran longer than the query timeout and was stopped by the server."""


class TLSRequired(DatabaseUnavailable):
    """The server refuses unencrypted connections and the URL asks for none."""

    def __init__(self) -> None:
        super().__init__(
            "the database server accepts only encrypted connections: add "
            "?ssl=required|verify-ca|verify-full to QUALITY_DATABASE_URL"
        )


# -- transient errors: run the transaction again ---------------------------------

# The transaction lost to concurrent ones.
CONTENTION = {
    1213,  # ER_LOCK_DEADLOCK; also Galera's certification failure
    1205,  # ER_LOCK_WAIT_TIMEOUT
}
# The connection's server cannot serve now; another connection may reach one that can.
NODE_UNAVAILABLE = {
    1047,  # ER_UNKNOWN_COM_ERROR: Galera's node without quorum, or not synced yet
    1053,  # ER_SERVER_SHUTDOWN
}
# Errors after which the same transaction, run again, will likely go through.
TRANSIENT = CONTENTION | NODE_UNAVAILABLE
RUN_TRIES = 4
_FIRST_PAUSE = 0.02  # seconds before the second try; doubles, each drawn between half and all of it
_PAUSES = random.Random()  # its own generator, like _STAGGER
P = ParamSpec("P")
T = TypeVar("T")


class TransientError(DatabaseUnavailable):
    """The server rolled the transaction back for a reason outside it (one of
    `TRANSIENT`); nothing of it was saved, and run again it may go through.
    Its args are the server's (code, message), as the driver's error had them."""

    @property
    def contention(self) -> bool:
        """It lost to concurrent transactions (rather than meeting a server that cannot serve)."""
        return error_code(self) in CONTENTION


class Contended(DatabaseUnavailable):
    """A transaction lost to concurrent ones (deadlock, lock wait timeout) each
    of the `RUN_TRIES` times it ran; nothing of it was saved."""


def _name(body: Callable[..., Any]) -> str:
    return getattr(body, "__qualname__", repr(body))


# ---------------------------------------------------------------------------------


def error_code(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def describe(exc: BaseException) -> str:
    """An error on one line: the server's code and message, or the error's own text."""
    code = error_code(exc)
    if code is not None and len(exc.args) > 1:
        return f"error {code}: {exc.args[1]}"
    return str(exc)


def is_connection_lost(exc: BaseException, conn: Any = None) -> bool:
    """Whether the error means the connection is gone; `conn`, the connection it
    came from, tells MySQL's idle timeout from MariaDB's code of the same number."""
    if isinstance(exc, ConnectionError):
        return True
    if not isinstance(exc, MySQLError):
        return False
    code = error_code(exc)
    return code in _CONNECTION_LOST or (
        code == _MYSQL_IDLE_TIMEOUT and conn is not None and not _is_mariadb(conn))


def _is_mariadb(conn: Any) -> bool:
    return "mariadb" in conn.get_server_info().lower()


def transaction_open(conn: Any) -> bool:
    """Whether the server reported a transaction still open after the last statement."""
    return bool(last_server_status(conn) & SERVER_STATUS.SERVER_STATUS_IN_TRANS)


@dataclass
class PoolStats:
    maxsize: int
    minsize: int
    size: int
    in_use: int
    idle: int
    waiting: int
    acquired: int
    timeouts: int
    discarded: int
    created: int
    reruns: int  # transactions run again after a transient error (`run`)


class _Pooled:
    """A live connection with the bookkeeping the pool needs."""

    __slots__ = (
        "acquired_at", "closed", "conn", "expires_at", "galera", "last_used", "leak_reported",
    )

    def __init__(self, conn: Any, lifetime: float, *, galera: bool = False) -> None:
        now = time.monotonic()
        self.conn = conn
        self.galera = galera  # the server is a Galera node
        self.expires_at = now + lifetime
        self.last_used = now
        self.acquired_at = now
        self.leak_reported = False
        self.closed = False

    @property
    def broken(self) -> bool:
        return not self.conn.connected or stream_broken(self.conn)

    def close(self) -> None:
        self.closed = True
        self.conn.close()


class Cursor:
    """What a transaction hands out: execute/fetch, with typed errors and the
    transparent retry of a first statement that met a dead connection."""

    def __init__(self, db: Database, pooled: _Pooled) -> None:
        self._db = db
        self.pooled = pooled
        self._cursor = pooled.conn.cursor()
        self.sent = 0  # statements sent, failed ones included
        self.in_flight = False
        self.snapshot = False  # a read-only transaction reading one consistent snapshot

    @property
    def lastrowid(self) -> int:
        return self._cursor.lastrowid

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> int:
        return await self._run(self._cursor_execute, sql, params)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        return await self._run(self._cursor_executemany, sql, rows)

    async def fetchone(self) -> tuple[Any, ...] | None:
        return await self._cursor.fetchone()

    async def fetchall(self) -> list[tuple[Any, ...]]:
        return list(await self._cursor.fetchall())

    async def catch_up(self) -> bool:
        """On a Galera node, wait until it has applied every transaction the
        cluster committed before now, so that this transaction's next reads
        see them (a write just made through another node included). A node
        applies other nodes' writes a moment after they commit there. False
        on a server that is not a Galera node: there is nothing to wait for."""
        if not self.pooled.galera:
            return False
        # For this statement only: the session's reads stay as fast as before.
        await self.execute("SET STATEMENT wsrep_sync_wait = 1 FOR SELECT 1")
        return True

    async def nextset(self) -> bool | None:
        """Move past the current result set (e.g. the status after a CALL): it
        reads from the server, so a procedure's later statement may fail here."""
        self.in_flight = True
        try:
            return await self._cursor.nextset()
        except (MySQLError, OSError) as exc:
            raise self._db.translate(exc, self.pooled.conn) from exc
        finally:
            self.in_flight = False

    async def _cursor_execute(self, sql: str, params: Any) -> int:
        return await self._cursor.execute(sql, params)

    async def _cursor_executemany(self, sql: str, rows: Any) -> int:
        return await self._cursor.executemany(sql, rows)

    async def _run(self, call: Any, sql: str, params: Any) -> int:
        first = self.sent == 0
        self.sent += 1
        retried = False
        while True:
            self.in_flight = True
            try:
                return await call(sql, params)
            except (MySQLError, OSError) as exc:
                if is_connection_lost(exc, self.pooled.conn) and first and not retried:
                    # Nothing was written in this transaction yet: move to a new
                    # connection and run the statement again.
                    retried = True
                    await self._switch_connection(exc)
                    continue
                raise self._db.translate(exc, self.pooled.conn) from exc
            finally:
                self.in_flight = False

    async def _switch_connection(self, exc: BaseException) -> None:
        log.info("database connection found dead (%s); reconnecting", exc)
        self._db.discard_idle()
        self.pooled = await self._db.replace(self.pooled)
        self._cursor = self.pooled.conn.cursor()


@dataclass
class LaneStats:
    maxsize: int
    in_use: int  # transactions in the lane (holding a connection or about to)
    waiting: int  # callers waiting for a place in the lane
    timeouts: int


class Lane:
    """A share of the pool for work that comes in crowds and can wait: exports,
    reports, list totals. At most `maxsize` of its transactions hold connections
    at once, however many are asked for, so the rest of the pool stays free for
    scans, sign-ins and /healthz. A caller waits for a place in the lane and
    then for a connection within the pool's one timeout, and after it gets
    `PoolTimeout` (a 503), as any request does."""

    def __init__(self, db: Database, maxsize: int) -> None:
        self._db = db
        self.maxsize = maxsize
        self._places = asyncio.Semaphore(maxsize)
        self._in_use = self._waiting = self._timeouts = 0

    @asynccontextmanager
    async def transaction(self, *, snapshot: bool = False) -> AsyncIterator[Cursor]:
        """`Database.transaction()` for the lane's work."""
        started = time.monotonic()
        await self._enter()
        try:
            left = max(0.0, self._db.timeout - (time.monotonic() - started))
            async with self._db.transaction(acquire_timeout=left, snapshot=snapshot) as cursor:
                yield cursor
        finally:
            self._in_use -= 1
            self._places.release()

    async def _enter(self) -> None:
        if not self._places.locked():  # a place is free: taken at once, no timer
            await self._places.acquire()
        else:
            self._waiting += 1
            try:
                async with asyncio.timeout(self._db.timeout):
                    await self._places.acquire()
            except TimeoutError:
                self._timeouts += 1
                raise PoolTimeout(
                    f"no database connection free for bulk reads after {self._db.timeout:g}s (all "
                    f"{self.maxsize} of their share in use, {self._waiting - 1} other request(s) waiting)"
                ) from None
            finally:
                self._waiting -= 1
        self._in_use += 1

    def stats(self) -> LaneStats:
        return LaneStats(self.maxsize, self._in_use, self._waiting, self._timeouts)


class Database:
    """The process's connection pool (create in the app's lifespan, one per process)."""

    def __init__(
        self,
        connect_kwargs: dict[str, Any],
        *,
        minsize: int = 3,
        maxsize: int = 20,
        timeout: float = 5.0,
        recycle: float = 3600.0,
        query_timeout: float = 10.0,
        leak_after: float | None = None,
        bulk_share: float = 0.25,
    ) -> None:
        self.connect_kwargs = connect_kwargs
        self.minsize = minsize
        self.maxsize = maxsize
        self.timeout = timeout
        self.recycle = recycle
        self.query_timeout = query_timeout
        self.leak_after = leak_after or max(30.0, 3 * query_timeout)
        self._slots = asyncio.Semaphore(maxsize)
        self._idle: deque[_Pooled] = deque()
        self._in_use: set[_Pooled] = set()
        self._connecting = 0
        self._waiting = 0
        self._closing = False
        self._drained = asyncio.Event()
        self._housekeeper: asyncio.Task[None] | None = None
        self._server_idle_limit: float | None = None
        self._cipher: str | None = None  # TLS cipher of the connections; "" when plain
        self._acquired = self._timeouts = self._discarded = self._created = self._reruns = 0
        # Told every acquire's wait in seconds (the metrics' histogram).
        self.observe_wait: Callable[[float], None] | None = None
        # Exports, reports and list totals: at most this share of the connections.
        self.bulk = Lane(self, max(1, math.ceil(bulk_share * maxsize)))
        # A read replica of this database, if the plant has one (`read`).
        self.replica: ReadReplica | None = None

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        """Warm the pool to `minsize` and start housekeeping.

        An unreachable database does not stop the app: requests get 503s and
        /healthz says so until it is back.
        """
        try:
            await self._top_up()
        except DatabaseUnavailable as exc:
            log.error("database not reachable at start-up: %s", exc)
        self._log_encryption()
        self._housekeeper = asyncio.create_task(self._housekeep(), name="db-housekeeper")
        if self.replica is not None:
            await self.replica.open()

    async def close(self, drain_timeout: float = 10.0) -> None:
        """Refuse new work, wait for borrowed connections to return, close all."""
        if self.replica is not None:
            await self.replica.close()
        self._closing = True
        if self._housekeeper:
            self._housekeeper.cancel()
            await asyncio.gather(self._housekeeper, return_exceptions=True)
        if self._in_use:
            self._drained.clear()
            try:
                async with asyncio.timeout(drain_timeout):
                    await self._drained.wait()
            except TimeoutError:
                log.warning("%d connection(s) still in use after %.0fs; closing them",
                            len(self._in_use), drain_timeout)
                for pooled in list(self._in_use):
                    pooled.close()
        while self._idle:
            await self._idle.pop().conn.ensure_closed()

    # -- the one way in --------------------------------------------------------

    @asynccontextmanager
    async def transaction(self, acquire_timeout: float | None = None, *,
                          snapshot: bool = False) -> AsyncIterator[Cursor]:
        """Borrow a connection for one transaction: commit on success, roll back
        on any exception (cancellation included), always give it back.

        `acquire_timeout` shortens the wait for a free connection (the health check's).
        With `snapshot`, the transaction is read-only and every statement in it
        reads the one moment it began at (REPEATABLE READ, consistent snapshot):
        a figure computed from several statements (quality.summary.aggregate)
        sees no scan twice and none half-folded. The session's own READ
        COMMITTED applies again to the connection's next transaction.
        """
        pooled = await self._acquire(self.timeout if acquire_timeout is None else acquire_timeout)
        cursor = Cursor(self, pooled)
        discard = False
        try:
            if snapshot:
                await cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                await cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                cursor.snapshot = True
            yield cursor
            if cursor.sent:
                await self._commit(cursor)
        except BaseException as exc:
            discard = await self._abandon(cursor) or self._node_unavailable(exc)
            raise
        finally:
            self._release(cursor.pooled, discard)

    # -- reads that may be a moment old: the replica or this database -----------

    async def read(self, body: Callable[..., Awaitable[T]], *args: Any, bulk: bool = False,
                   snapshot: bool = False, written_at: float | None = None, **kwargs: Any) -> T:
        """`body(cursor, *args, **kwargs)`, which only reads, on the read replica
        while it keeps up (quality/replica.py), else here: the one choice
        between the two. For what may lag a moment behind the scans: list
        pages past the first, totals, reports, exports; never for what a
        station shows or a write. `written_at` is when the client last wrote
        (the `quality_wrote` cookie): its own writes are read from here until
        the replica has them. A replica that fails the read (down, killed,
        refusing) is left for this database, which runs `body` again: the
        answer comes slower, never wrong, never an error of the replica's.
        `bulk` reads go through each server's bulk lane; `snapshot` reads
        one consistent snapshot (`transaction`) on whichever server answers."""
        replica = self.replica
        if replica is not None:
            why = replica.why_not(written_at)
            if why is None:
                try:
                    async with replica.pool.lane(bulk).transaction(snapshot=snapshot) as cur:
                        answer = await body(cur, *args, **kwargs)
                except (DatabaseError, MySQLError, OSError) as exc:
                    why = replica.failed(exc)
                else:
                    replica.served += 1
                    return answer
            replica.fallbacks[why] += 1
        async with self.lane(bulk).transaction(snapshot=snapshot) as cur:
            return await body(cur, *args, **kwargs)

    def read_holds(self) -> float:
        """A time (epoch seconds) before which everything committed is in what a
        `read` begun now answers, whichever server answers it: now here, the
        replica's `caught_up_to` there (0 while unknown); the earlier of the
        two, as the replica may start or stop answering meanwhile. An answer
        kept for others (quality/answers.py) carries it, so that it is served
        only to clients whose last write it holds, as `read` would choose."""
        now = time.time()
        if self.replica is None:
            return now
        return min(now, self.replica.caught_up_to or 0.0)

    def lane(self, bulk: bool) -> Database | Lane:
        """The bulk lane for bulk work, else the whole pool."""
        return self.bulk if bulk else self

    # -- running a transaction again (transient errors) -----------------------

    async def run(self, body: Callable[Concatenate[Cursor, P], Awaitable[T]],
                  *args: P.args, **kwargs: P.kwargs) -> T:
        """`body(cursor, *args, **kwargs)` in a transaction, run again after a
        transient error (see the module's docstring); `Contended` when every
        try lost. The body must be safe to run more than once."""
        for tried in range(1, RUN_TRIES + 1):
            try:
                async with self.transaction() as cur:
                    return await body(cur, *args, **kwargs)
            except TransientError as exc:
                if tried == RUN_TRIES:
                    if not exc.contention:
                        raise  # the server stayed unable to serve: a 503 saying so
                    log.warning("%s lost to concurrent transactions %d times (%s); giving up",
                                _name(body), tried, exc)
                    raise Contended(f"the transaction kept losing to concurrent ones: {exc}") from exc
                log.info("%s met a transient error (%s); running it again", _name(body), exc)
                self._reruns += 1
                pause = _FIRST_PAUSE * 2 ** (tried - 1)
                await asyncio.sleep(_PAUSES.uniform(pause / 2, pause))
        raise AssertionError("unreachable")

    def _node_unavailable(self, exc: BaseException) -> bool:
        """Whether the transaction's server said it cannot serve: then its
        connection goes, and the idle ones too (they reach the same node)."""
        if isinstance(exc, TransientError) and not exc.contention:
            self.discard_idle()
            return True
        return False

    async def _commit(self, cursor: Cursor) -> None:
        if not transaction_open(cursor.pooled.conn):
            return  # the server says nothing is open (e.g. a procedure committed)
        cursor.in_flight = True
        try:
            await cursor.pooled.conn.commit()
        except (MySQLError, OSError) as exc:
            if is_connection_lost(exc, cursor.pooled.conn):
                raise ConnectionLost(
                    "connection lost during COMMIT: the transaction may or may not be saved"
                ) from exc
            raise self.translate(exc, cursor.pooled.conn) from exc
        finally:
            cursor.in_flight = False

    async def _abandon(self, cursor: Cursor) -> bool:
        """Undo an unfinished transaction; True when the connection must go.

        A connection interrupted mid-statement is out of step with the server, so
        it is closed (the server then rolls back by itself) instead of reused.
        """
        if cursor.in_flight or cursor.pooled.broken:
            return True
        # Even a failed statement may have left changes behind (a procedure's
        # earlier steps), so anything sent is rolled back.
        if not cursor.sent:
            return False
        rollback = asyncio.ensure_future(cursor.pooled.conn.rollback())
        # If we stop waiting, the connection is closed under it; its error is expected.
        rollback.add_done_callback(lambda task: task.cancelled() or task.exception())
        try:
            async with asyncio.timeout(min(self.timeout, 2.0)):
                await asyncio.shield(rollback)
        except (asyncio.CancelledError, TimeoutError, MySQLError, OSError) as exc:
            log.warning("rollback failed (%s); discarding the connection", exc)
            return True
        return False

    def translate(self, exc: BaseException, conn: Any = None) -> BaseException:
        """The typed error a driver error stands for (the one place they are
        turned into 503s); other errors as they are."""
        code = error_code(exc)
        if code in _STATEMENT_TIMEOUT:
            return QueryTimeout(f"statement stopped after the {self.query_timeout:g}s query timeout")
        if code in TRANSIENT and isinstance(exc, MySQLError):
            # Before the connection-lost test: a server shutting down (1053)
            # rolled the transaction back, so it is safe to run again.
            return TransientError(*exc.args)
        if is_connection_lost(exc, conn):
            return ConnectionLost(f"database connection lost mid-transaction: {exc}")
        return exc

    # -- acquire / release -----------------------------------------------------

    async def _acquire(self, wait_at_most: float) -> _Pooled:
        if self._closing:
            raise DatabaseUnavailable("the database pool is shutting down")
        started = time.monotonic()
        if self._slots.locked():
            await self._wait_for_slot(wait_at_most)
        else:  # a slot is free: taken at once, with no timer to set and cancel
            await self._slots.acquire()
        if self.observe_wait is not None:
            self.observe_wait(time.monotonic() - started)
        try:
            pooled = await self._checkout()
        except BaseException:
            self._slots.release()
            raise
        pooled.acquired_at = time.monotonic()
        pooled.leak_reported = False
        self._in_use.add(pooled)
        self._acquired += 1
        return pooled

    async def _wait_for_slot(self, wait_at_most: float) -> None:
        self._waiting += 1
        try:
            async with asyncio.timeout(wait_at_most):
                await self._slots.acquire()
        except TimeoutError:
            self._timeouts += 1
            raise PoolTimeout(
                f"no database connection free after {wait_at_most:g}s "
                f"(all {self.maxsize} in use, {self._waiting - 1} other request(s) waiting)"
            ) from None
        finally:
            self._waiting -= 1

    async def _checkout(self) -> _Pooled:
        now = time.monotonic()
        while self._idle:
            pooled = self._idle.pop()
            if self._reusable(pooled, now):
                return pooled
            self._discard(pooled)
        return await self._connect()

    def _release(self, pooled: _Pooled, discard: bool) -> None:
        self._in_use.discard(pooled)
        if discard or self._closing or not self._reusable(pooled, time.monotonic()):
            self._discard(pooled)
        else:
            pooled.last_used = time.monotonic()
            self._idle.append(pooled)
        self._slots.release()
        if not self._in_use:
            self._drained.set()

    async def replace(self, pooled: _Pooled) -> _Pooled:
        """Swap a borrowed connection that proved dead for a brand-new one."""
        self._in_use.discard(pooled)
        self._discard(pooled)
        fresh = await self._connect()
        fresh.acquired_at = time.monotonic()
        self._in_use.add(fresh)
        return fresh

    def discard_idle(self) -> None:
        """Drop every idle connection: when one is found dead (server restart,
        mass KILL) its siblings usually are too, and reconnecting is cheap."""
        while self._idle:
            self._discard(self._idle.pop())

    def _reusable(self, pooled: _Pooled, now: float) -> bool:
        if pooled.broken or now >= pooled.expires_at:
            return False
        limit = self._server_idle_limit
        return limit is None or now - pooled.last_used < limit

    def _discard(self, pooled: _Pooled) -> None:
        if not pooled.closed:
            self._discarded += 1
            pooled.close()

    # -- connecting ------------------------------------------------------------

    async def _connect(self) -> _Pooled:
        self._connecting += 1
        try:
            conn = await self._open_connection(self.connect_kwargs)
        except (MySQLError, OSError, TimeoutError) as exc:
            if await self._refused_for_lack_of_tls(exc):
                raise TLSRequired() from exc
            raise DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc
        finally:
            self._connecting -= 1
        try:
            async with asyncio.timeout(self.timeout):
                galera = await self._configure(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, (MySQLError, OSError, TimeoutError)):
                raise DatabaseUnavailable(f"cannot set up a database session: {exc}") from exc
            raise
        self._created += 1
        # Stagger lifetimes over the last 10% so connections don't all expire together.
        return _Pooled(conn, self.recycle * _STAGGER.uniform(0.9, 1.0), galera=galera)

    async def _open_connection(self, connect_kwargs: dict[str, Any]) -> Any:
        # asyncmy's connect_timeout covers only opening the socket: a server that
        # accepts and never greets would hold this slot forever.
        async with asyncio.timeout(self.timeout):
            return await asyncmy.connect(
                **connect_kwargs,
                autocommit=False,
                charset=CHARSET,
                connect_timeout=self.timeout,
            )

    async def _refused_for_lack_of_tls(self, exc: BaseException) -> bool:
        """Whether a failed plain TCP connection was refused only for not using TLS.

        MySQL says so (3159); MariaDB answers "access denied" as for a wrong
        password, so one encrypted attempt (no verification: it only asks the
        question, and sends the same password hash the plain attempt did) tells
        the two apart.
        """
        code = error_code(exc)
        if code == _INSECURE_TRANSPORT:
            return True
        kwargs = self.connect_kwargs
        if code != _ACCESS_DENIED or "ssl" in kwargs or "unix_socket" in kwargs:
            return False
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        probe.check_hostname = False
        probe.verify_mode = ssl.CERT_NONE
        try:
            conn = await self._open_connection({**kwargs, "ssl": probe})
        except (MySQLError, OSError, TimeoutError):
            return False
        await conn.ensure_closed()
        return True

    async def _configure(self, conn: Any) -> bool:
        """Set the session up; whether the server is a Galera node."""
        is_mariadb = _is_mariadb(conn)
        async with conn.cursor() as cur:
            # READ COMMITTED: no gap locks, so concurrent scans of different new
            # pieces never wait for each other; every transaction here is short
            # and reads only what it is about to change or show.
            await cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            limit = "max_statement_time" if is_mariadb else "max_execution_time"
            await cur.execute(
                f"SET NAMES {CHARSET} COLLATE {COLLATION}, SESSION sql_mode = %s,"
                f" SESSION {limit} = %s, SESSION time_zone = '+00:00'",
                (SQL_MODE, self.query_timeout if is_mariadb else int(self.query_timeout * 1000)),
            )
            # wsrep_on is ON on a Galera node only; MySQL has no such variable.
            await cur.execute("SHOW VARIABLES WHERE Variable_name IN ('wait_timeout', 'wsrep_on')")
            variables = dict(await cur.fetchall())
            wait_timeout = variables["wait_timeout"]
            await cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            cipher = (await cur.fetchone() or ("", ""))[1] or ""
        await conn.commit()
        # Retire idle connections well before the server would cut them (a
        # DBA's short wait_timeout included): housekeeping runs at a fifth of
        # this, so an idle connection goes by 90% of wait_timeout at the latest.
        self._server_idle_limit = max(1.0, min(float(wait_timeout) - 5.0, 0.75 * float(wait_timeout)))
        self._cipher = cipher
        return variables.get("wsrep_on") == "ON"

    def _log_encryption(self) -> None:
        if self._cipher is None:
            return  # no connection yet: /healthz tells once there is one
        if self._cipher:
            log.info("database connections are encrypted (TLS, %s)", self._cipher)
        elif "unix_socket" in self.connect_kwargs:
            log.info("database connections are not encrypted (local unix socket)")
        else:
            log.warning("database connections are NOT encrypted; add ?ssl=verify-full to "
                        "QUALITY_DATABASE_URL if the server supports TLS")

    @property
    def encrypted(self) -> bool | None:
        """Whether connections to the server use TLS (None until one was opened)."""
        return None if self._cipher is None else bool(self._cipher)

    # -- housekeeping ------------------------------------------------------------

    async def _housekeep(self) -> None:
        while True:
            idle_limit = self._server_idle_limit or float("inf")
            await asyncio.sleep(
                max(0.5, min(30.0, self.recycle / 4, self.leak_after / 2, idle_limit / 5))
            )
            try:
                self._retire_idle()
                self._report_leaks()
                await self._top_up()
            except DatabaseUnavailable as exc:
                log.warning("pool housekeeping: %s", exc)
            except Exception:
                log.exception("pool housekeeping failed")

    def _retire_idle(self) -> None:
        now = time.monotonic()
        for pooled in list(self._idle):
            if not self._reusable(pooled, now):
                self._idle.remove(pooled)
                self._discard(pooled)

    def _report_leaks(self) -> None:
        now = time.monotonic()
        for pooled in self._in_use:
            held = now - pooled.acquired_at
            if held > self.leak_after and not pooled.leak_reported:
                pooled.leak_reported = True
                log.warning("a database connection has been held for %.0fs (leak?)", held)

    async def _top_up(self) -> None:
        """Open connections until `minsize` exist, never taking a slot a request waits for."""
        while (
            not self._closing
            and len(self._idle) + len(self._in_use) + self._connecting < self.minsize
            and not self._slots.locked()
            and not self._waiting
        ):
            await self._slots.acquire()
            try:
                self._idle.append(await self._connect())
            finally:
                self._slots.release()

    # -- figures -----------------------------------------------------------------

    def stats(self) -> PoolStats:
        in_use = len(self._in_use)
        idle = len(self._idle)
        return PoolStats(
            maxsize=self.maxsize,
            minsize=self.minsize,
            size=in_use + idle + self._connecting,
            in_use=in_use,
            idle=idle,
            waiting=self._waiting,
            acquired=self._acquired,
            timeouts=self._timeouts,
            discarded=self._discarded,
            created=self._created,
            reruns=self._reruns,
        )
