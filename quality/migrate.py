"""Versioned SQL migrations: `quality/migrations/NNNN_name.sql`, applied in order, once.

Each applied file is recorded in `schema_migrations` with its checksum, so an
edited migration is caught instead of silently diverging. Stored procedures,
one current copy each in `quality/routines/`, are created again after the
migrations whenever a file changed (quality/procedures.py).

Migrations run in the app's own sessions (quality/db.py), so procedures are
created under the app's sql_mode and collation whatever the server's defaults.
The schema declares its own character set and collation; where the user may,
the database's default is set to match too, and the log says so.

A run cannot leave the schema stuck, on one server or a Galera cluster:

* Preflight (`preflight`). Before the first statement, the server is asked
  whether this user may do what the pending migrations do: create triggers
  (which, where the server logs changes in binary form — a binary log, or any
  Galera node — also takes SUPER or `log_bin_trust_function_creators = 1`),
  and create and drop stored procedures. Each question is a statement the
  server refuses after its privilege checks and before changing anything. A
  refusal names the right or setting on one line, and nothing has changed.
* Resumable steps (`Migration.steps`). A migration is a sequence of steps: a
  statement that commits by itself (DDL), or a run of statements that do not
  (data changes, which may share session variables and locks, as 0008's do).
  Each completed step is recorded in `schema_migration_steps` — a data step in
  its own transaction — so a run stopped part-way (a statement refused, the
  connection killed, the process gone) is resumed at the step that did not
  complete. A DDL statement commits on its own, before its step can be
  recorded, so it is marked as running first: a resumed run that finds such
  a step's object already there (or already gone) counts it as done.
  Steps rather than rewriting each statement as `IF NOT EXISTS`: migrations
  applied in plants are checksummed and stay as they are, and MySQL 8 (which
  should also work, SPEC §2) has no `ADD COLUMN IF NOT EXISTS` or
  `CREATE OR REPLACE TRIGGER`; steps make every migration, old or new,
  resumable whatever its SQL.
* A lock row (`MigrationLock`), not GET_LOCK, which holds on one server only:
  a Galera node neither shares nor replicates it. The lock is the row in
  `schema_migrations_lock`; between two takers its primary key decides on one
  server, certification between two Galera nodes. Its holder keeps it alive
  with a heartbeat from a connection of its own, also while a long statement
  runs; a lock whose heartbeat stopped `LOCK_STALE_SECONDS` ago (its holder
  died) may be taken over. A process that finds the lock held waits for it,
  then finds nothing left to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import secrets
import socket
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from asyncmy.errors import MySQLError

from quality import procedures
from quality.db import (
    CHARSET,
    COLLATION,
    CONTENTION,
    DUPLICATE_KEY,
    Cursor,
    Database,
    DatabaseError,
    describe,
    error_code,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_NOT_ALLOWED = {1044, 1142}  # access denied to the database / for this command

log = logging.getLogger(__name__)


class MigrationError(RuntimeError):
    """The migrations could not be applied; the message says why and what to do."""


class MigrationRefused(MigrationError):
    """The preflight found that this run would stop part-way; nothing was changed."""


# Statements that do not commit by themselves: a run of them is one step.
_TRANSACTIONAL = re.compile(r"^(INSERT|UPDATE|DELETE|REPLACE|SELECT|SET|WITH)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    def statements(self) -> list[str]:
        """Split on the delimiter (`;` unless a `DELIMITER x` line changes it, as
        in the mariadb client) where it ends a line; comment lines are dropped."""
        statements, current, delimiter = [], [], ";"
        for line in self.sql.splitlines():
            stripped = line.strip()
            if stripped.startswith("--") or (not stripped and not current):
                continue
            if stripped.upper().startswith("DELIMITER "):
                delimiter = stripped.split(None, 1)[1]
                continue
            if stripped.endswith(delimiter):
                current.append(line.rstrip()[: -len(delimiter)])
                statements.append("\n".join(current).strip())
                current = []
            else:
                current.append(line)
        if "\n".join(current).strip():
            statements.append("\n".join(current).strip())
        return [statement for statement in statements if statement]

    def steps(self) -> list[list[str]]:
        """The statements as steps, each recorded once done: a statement that
        commits by itself (DDL) alone, consecutive data statements together."""
        steps: list[list[str]] = []
        for statement in self.statements():
            if _TRANSACTIONAL.match(statement) and steps and _TRANSACTIONAL.match(steps[-1][0]):
                steps[-1].append(statement)
            else:
                steps.append([statement])
        return steps


def available(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file name not of the form NNNN_name.sql: {path.name}")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


async def migrate(db: Database, directory: Path = MIGRATIONS_DIR, routines: Path | None = None) -> list[str]:
    """Apply every pending migration, then the routines whose files changed;
    return the names of the migrations applied. The tree's routines are
    written for the schema its own migrations build: another `directory` (a
    part of the schema, in tests) gets the routines of `routines` only."""
    migrations = available(directory)
    if routines is None and directory == MIGRATIONS_DIR:
        routines = procedures.ROUTINES_DIR
    async with db.transaction() as cur, _quietly(cur):
        recorded = await _recorded(cur)
        waiting = [migration for migration in migrations if migration.version not in recorded]
        renewed = await procedures.to_apply(cur, routines, everything=bool(waiting)) if routines else []
        await preflight(cur, [*(statement for migration in waiting for statement in migration.statements()),
                              *procedures.statements(renewed, routines or procedures.ROUTINES_DIR)])
    async with MigrationLock(db) as lock, db.transaction() as cur:
        # Schema changes may take longer than a request's statement limit.
        await cur.execute("SET SESSION max_statement_time = 0")
        try:
            await _align_database_default(cur)
            done = await _apply_pending(cur, migrations, lock)
            if routines is not None:
                lock.check()
                # A migration may have replaced a routine: after one, all of them.
                async with _quietly(cur):
                    await procedures.apply(cur, routines, everything=bool(done))
            return done
        finally:
            # A connection that cannot take this is broken, and the pool drops it.
            with contextlib.suppress(MySQLError, DatabaseError):
                await cur.execute("SET SESSION max_statement_time = %s", (db.query_timeout,))


@contextlib.asynccontextmanager
async def _quietly(cur: Cursor) -> AsyncIterator[None]:
    """Without the server's notes (a table that already exists, a probe's
    routine that does not), which the driver would log as warnings at every run."""
    await cur.execute("SET @quality_sql_notes = @@sql_notes, SESSION sql_notes = 0")
    try:
        yield
    finally:
        await cur.execute("SET SESSION sql_notes = @quality_sql_notes")


async def _recorded(cur: Cursor) -> set[int]:
    """The versions recorded as applied (none in a database never migrated)."""
    await cur.execute(
        "SELECT COUNT(*) FROM information_schema.tables"
        " WHERE table_schema = DATABASE() AND table_name = 'schema_migrations'"
    )
    (exists,) = await cur.fetchone() or (0,)
    if not exists:
        return set()
    await cur.execute("SELECT version FROM schema_migrations")
    return {row[0] for row in await cur.fetchall()}


async def _align_database_default(cur: Cursor) -> None:
    """Give the database the schema's default collation, so that whatever a later
    migration forgets to declare still matches; say what was done."""
    await cur.execute("SELECT @@character_set_database, @@collation_database")
    charset, collation = await cur.fetchone() or (CHARSET, COLLATION)
    if (charset, collation) == (CHARSET, COLLATION):
        return
    try:
        await cur.execute(f"ALTER DATABASE CHARACTER SET {CHARSET} COLLATE {COLLATION}")
    except MySQLError as exc:
        if error_code(exc) not in _NOT_ALLOWED:
            raise
        log.warning("the database's default collation is %s and this user may not change it; "
                    "left as it is (the schema declares %s itself)", collation, COLLATION)
        return
    log.info("set the database's default collation to %s (it was %s)", COLLATION, collation)


# -- preflight ---------------------------------------------------------------------

_DEFINER = r"(DEFINER\s*=\s*\S+\s+)?"
_CREATES_TRIGGER = re.compile(
    rf"^CREATE\s+(OR\s+REPLACE\s+)?{_DEFINER}TRIGGER\s.*?\sON\s+`?(?P<table>[\w$]+)`?\s+FOR\s+EACH\s+ROW\b",
    re.IGNORECASE | re.DOTALL,
)
_CREATES_ROUTINE = re.compile(rf"^CREATE\s+(OR\s+REPLACE\s+)?{_DEFINER}(PROCEDURE|FUNCTION)\b", re.IGNORECASE)
_DROPS_ROUTINE = re.compile(
    rf"^(DROP\s+(PROCEDURE|FUNCTION)|CREATE\s+OR\s+REPLACE\s+{_DEFINER}(PROCEDURE|FUNCTION))\b", re.IGNORECASE
)
_NEEDS_SUPER_OR_TRUST = 1419  # ER_BINLOG_CREATE_ROUTINE_NEED_SUPER
_DENIED = {1044, 1142, 1370}  # to the database / for this command / for this routine
# Allowed up to the point of opening the table / of finding the column.
_NO_SUCH_TABLE = 1146
_NO_SUCH_COLUMN = 1054
# A procedure comment longer than the server keeps: refused after the privilege
# check (strict mode, which every session runs in), so nothing is created.
_TOO_LONG_COMMENT = "x" * 65536
_PROBE = "quality_preflight_probe"


async def preflight(cur: Cursor, statements: Iterable[str]) -> None:
    """Refuse, before anything runs, a run this user or server would stop part-way.

    Asks only what `statements` need (triggers, creating and dropping routines);
    an answer the server gives in no known way is no refusal: the run then says
    what went wrong, and can be resumed.
    """
    pending = list(statements)
    problems = []
    triggered = sorted({match["table"] for match in map(_CREATES_TRIGGER.match, pending) if match})
    if triggered:
        problems += await _trigger_problems(cur, triggered)
    if any(_DROPS_ROUTINE.match(statement) for statement in pending) and await _denied(
        cur, f"DROP PROCEDURE IF EXISTS {_PROBE}"
    ):
        problems.append("dropping and replacing stored procedures needs the ALTER ROUTINE privilege "
                        "on this database")
    if any(_CREATES_ROUTINE.match(statement) for statement in pending) and await _denied(
        cur, f"CREATE PROCEDURE {_PROBE}() COMMENT '{_TOO_LONG_COMMENT}' BEGIN END",
        undo=f"DROP PROCEDURE IF EXISTS {_PROBE}",
    ):
        problems.append("creating stored procedures needs the CREATE ROUTINE privilege on this database")
    if problems:
        raise MigrationRefused("; ".join(problems) + "; nothing was changed")


async def _trigger_problems(cur: Cursor, tables: list[str]) -> list[str]:
    """Whether this user may create triggers: asked first on a table that does not
    exist, which settles it without waiting for any table in use; only a user
    without TRIGGER on the database is asked per table (a DBA may grant it so)."""
    answer = await _trigger_probe(cur, f"{_PROBE}_no_such_table")
    if answer == _NEEDS_SUPER_OR_TRUST:
        return [await _trust_setting_problem(cur)]
    if answer not in _DENIED:
        return []
    # Each of these waits for the table's metadata lock: not long.
    await cur.execute("SET @quality_lock_wait = @@lock_wait_timeout, SESSION lock_wait_timeout = 5")
    try:
        denied = [table for table in tables if await _trigger_probe(cur, table) in _DENIED | {_NO_SUCH_TABLE}]
    finally:
        await cur.execute("SET SESSION lock_wait_timeout = @quality_lock_wait")
    if not denied:
        return []
    return [f"creating triggers needs the TRIGGER privilege on this database (or on its tables "
            f"{', '.join(denied)})"]


async def _trigger_probe(cur: Cursor, table: str) -> int | None:
    """The error code the server answers to a trigger on `table` that sets a
    column no table has (None if it took it, which no server does)."""
    try:
        await cur.execute(f"CREATE TRIGGER {_PROBE} BEFORE INSERT ON `{table}` FOR EACH ROW"
                          f" SET NEW.{_PROBE}_no_such_column = 1")
    except MySQLError as exc:
        code = error_code(exc)
        if code not in {_NEEDS_SUPER_OR_TRUST, _NO_SUCH_COLUMN, _NO_SUCH_TABLE} | _DENIED:
            log.debug("preflight: creating a trigger on %s answered %s; going on", table, exc)
        return code
    await cur.execute(f"DROP TRIGGER {_PROBE}")
    return None


async def _trust_setting_problem(cur: Cursor) -> str:
    await cur.execute("SHOW VARIABLES WHERE Variable_name IN ('log_bin', 'wsrep_on')")
    on = {name for name, value in await cur.fetchall() if value == "ON"}
    why = " and ".join(["this server writes a binary log"] * ("log_bin" in on)
                       + ["it is a Galera node"] * ("wsrep_on" in on)) or "binary logging is on"
    everywhere = " on every node" if "wsrep_on" in on else ""
    return (f"creating triggers needs log_bin_trust_function_creators = 1 ({why}, and this user lacks "
            f"SUPER): ask the DBA to SET GLOBAL log_bin_trust_function_creators = 1{everywhere}, and "
            "to put it in the server's configuration")


async def _denied(cur: Cursor, probe: str, undo: str | None = None) -> bool:
    """Whether the server refuses `probe` for lack of a privilege; `undo` takes
    back what a server that ran it made (one keeping long comments)."""
    try:
        await cur.execute(probe)
    except MySQLError as exc:
        return error_code(exc) in _DENIED
    if undo:
        await cur.execute(undo)
    return False


# -- the lock ----------------------------------------------------------------------

LOCK_STALE_SECONDS = 60.0
_LOCK_WAIT_SECONDS = 120.0
_LOCK_POLL_SECONDS = 0.25
# Another taker won: its row is there, or (Galera) its row certified first, or
# (one server) it holds the row uncommitted.
_TAKEN = {DUPLICATE_KEY, *CONTENTION}


class MigrationLock:
    """The migration lock: the one row of `schema_migrations_lock`, with its
    holder, when it was taken and the holder's last heartbeat.

    It uses a small pool of its own, so that its heartbeat goes on while the
    migration's connection runs a long statement. `check()` raises if the lock
    was taken over (this process gave no sign of life for LOCK_STALE_SECONDS).
    """

    def __init__(self, db: Database, *, wait: float = _LOCK_WAIT_SECONDS,
                 stale_after: float = LOCK_STALE_SECONDS) -> None:
        self._db = Database(db.connect_kwargs, minsize=0, maxsize=1, timeout=db.timeout,
                            query_timeout=db.query_timeout)
        self.wait = wait
        self.stale_after = stale_after
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.lost = False
        self._heartbeat: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MigrationLock:
        try:
            await self._take()
        except BaseException:
            await self._db.close()
            raise
        self._heartbeat = asyncio.create_task(self._beat(), name="migration-lock-heartbeat")
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        try:
            async with self._db.transaction() as cur:
                await cur.execute("DELETE FROM schema_migrations_lock WHERE id = 1 AND holder = %s",
                                  (self.holder,))
        except (MySQLError, DatabaseError) as error:
            log.warning("could not release the migration lock (%s); it expires %.0fs after its last "
                        "heartbeat", error, self.stale_after)
        finally:
            await self._db.close()

    def check(self) -> None:
        if self.lost:
            raise MigrationError(
                "another process took over the migration lock (this one gave no sign of life for "
                f"{self.stale_after:.0f}s); stopped before the next step: run 'quality migrate' again"
            )

    async def _take(self) -> None:
        async with self._db.transaction() as cur, _quietly(cur):
            await cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations_lock ("
                " id TINYINT UNSIGNED NOT NULL PRIMARY KEY,"
                " holder VARCHAR(200) NOT NULL,"
                " taken_at DATETIME(6) NOT NULL,"
                " heartbeat_at DATETIME(6) NOT NULL"
                f") ENGINE=InnoDB DEFAULT CHARSET={CHARSET} COLLATE={COLLATION}"
            )
        deadline = asyncio.get_running_loop().time() + self.wait
        told = False
        while (held_by := await self._try_take()) is not None:
            if not told:
                log.info("waiting for the migration lock, held by %s", held_by)
                told = True
            if asyncio.get_running_loop().time() > deadline:
                raise MigrationError(
                    f"the migration lock, held by {held_by}, was not released within {self.wait:.0f}s; "
                    f"if that process is gone, the lock expires {self.stale_after:.0f}s after its "
                    "last heartbeat"
                )
            await asyncio.sleep(_LOCK_POLL_SECONDS)

    async def _try_take(self) -> str | None:
        """Take the lock if it is free or stale; else say who holds it."""
        try:
            async with self._db.transaction() as cur:
                await cur.execute(
                    "INSERT INTO schema_migrations_lock (id, holder, taken_at, heartbeat_at)"
                    " VALUES (1, %s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))", (self.holder,))
            return None
        except (MySQLError, DatabaseError) as exc:  # TransientError too
            if error_code(exc) not in _TAKEN:
                raise
        try:
            async with self._db.transaction() as cur:
                await cur.execute(
                    "SELECT holder, taken_at, heartbeat_at,"
                    " heartbeat_at < UTC_TIMESTAMP(6) - INTERVAL %s MICROSECOND"
                    " FROM schema_migrations_lock WHERE id = 1 FOR UPDATE",
                    (int(self.stale_after * 1_000_000),))
                row = await cur.fetchone()
                if row is None:
                    return "nobody (released just now)"  # the next try takes it
                holder, taken_at, heartbeat_at, stale = row
                if not stale:
                    return f"{holder} since {taken_at:%Y-%m-%d %H:%M:%S} UTC"
                await cur.execute(
                    "UPDATE schema_migrations_lock SET holder = %s, taken_at = UTC_TIMESTAMP(6),"
                    " heartbeat_at = UTC_TIMESTAMP(6) WHERE id = 1", (self.holder,))
        except (MySQLError, DatabaseError) as exc:  # TransientError too
            if error_code(exc) not in _TAKEN:
                raise
            return "another process taking it at the same time"
        log.warning("took over the migration lock from %s: no heartbeat since %s UTC",
                    holder, f"{heartbeat_at:%Y-%m-%d %H:%M:%S}")
        return None

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.stale_after / 6)
            try:
                async with self._db.transaction() as cur:
                    moved = await cur.execute(
                        "UPDATE schema_migrations_lock SET heartbeat_at = UTC_TIMESTAMP(6)"
                        " WHERE id = 1 AND holder = %s", (self.holder,))
            except (MySQLError, DatabaseError) as exc:
                log.warning("migration lock heartbeat failed (%s); trying again", exc)
                continue
            if not moved:
                log.error("the migration lock was taken over by another process")
                self.lost = True
                return


# -- applying, step by step --------------------------------------------------------------

# What a DDL statement answers when its work is already done (the object is
# there, or gone): table, column, key, trigger, routine exists / does not exist.
_ALREADY_DONE = {1050, 1051, 1060, 1061, 1091, 1304, 1305, 1359, 1360}


async def _apply_pending(cur: Cursor, migrations: list[Migration], lock: MigrationLock) -> list[str]:
    async with _quietly(cur):
        await cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INT UNSIGNED NOT NULL PRIMARY KEY,"
            " name VARCHAR(100) NOT NULL,"
            " checksum CHAR(64) NOT NULL,"
            " applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"
            f") ENGINE=InnoDB DEFAULT CHARSET={CHARSET} COLLATE={COLLATION}"
        )
        await cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migration_steps ("
            " version INT UNSIGNED NOT NULL PRIMARY KEY,"
            " checksum CHAR(64) NOT NULL,"
            " steps_done SMALLINT UNSIGNED NOT NULL,"
            " running_step SMALLINT UNSIGNED NULL,"  # a DDL step sent, its outcome not yet recorded
            " updated_at DATETIME(6) NOT NULL"
            f") ENGINE=InnoDB DEFAULT CHARSET={CHARSET} COLLATE={COLLATION}"
        )
    await cur.execute("SELECT version, checksum FROM schema_migrations")
    applied = {version: checksum for version, checksum in await cur.fetchall()}
    await cur.execute("SELECT version, checksum, steps_done, running_step FROM schema_migration_steps")
    progress = {row[0]: row[1:] for row in await cur.fetchall()}
    done = []
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None:
            if recorded != migration.checksum:
                raise MigrationError(
                    f"migration {migration.label} was edited after it was applied; "
                    "add a new migration instead"
                )
            continue
        await _apply(cur, migration, progress.get(migration.version), lock)
        done.append(migration.label)
    unknown = set(applied) - {m.version for m in migrations}
    if unknown:
        raise MigrationError(
            f"the database has migrations this code does not know: {sorted(unknown)}; "
            "is this an older version of the app?"
        )
    return done


async def _apply(cur: Cursor, migration: Migration, progress: tuple[str, int, int | None] | None,
                 lock: MigrationLock) -> None:
    """Run a migration's steps from the first not done, recording each; the
    last one's record is the migration's own."""
    steps = migration.steps()
    first, unsure = 0, None
    if progress is not None:
        checksum, first, unsure = progress
        if checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.label} was edited after it was applied up to step {first} "
                f"of {len(steps)}; restore the file as it was, or finish it by hand"
            )
        log.info("resuming migration %s at step %d of %d", migration.label, first + 1, len(steps))
    for number in range(first, len(steps)):
        lock.check()
        step = steps[number]
        ddl = not _TRANSACTIONAL.match(step[0])
        if ddl:  # it commits by itself: say first that it may have run
            await _record_step(cur, migration, number, running=True)
            await cur.execute("COMMIT")
        await _run_step(cur, migration, number, len(steps), step, ddl=ddl, maybe_done=unsure == number)
        if number == len(steps) - 1:
            await cur.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                              (migration.version, migration.name, migration.checksum))
            await cur.execute("DELETE FROM schema_migration_steps WHERE version = %s", (migration.version,))
        else:
            await _record_step(cur, migration, number + 1, running=False)
        await cur.execute("COMMIT")


async def _record_step(cur: Cursor, migration: Migration, steps_done: int, *, running: bool) -> None:
    """Record `steps_done`, and whether step `steps_done` (a DDL statement) is being sent."""
    await cur.execute(
        "INSERT INTO schema_migration_steps (version, checksum, steps_done, running_step, updated_at)"
        " VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE steps_done = VALUES(steps_done),"
        " running_step = VALUES(running_step), updated_at = VALUES(updated_at)",
        (migration.version, migration.checksum, steps_done, steps_done if running else None),
    )


async def _run_step(cur: Cursor, migration: Migration, number: int, count: int, step: list[str], *,
                    ddl: bool, maybe_done: bool) -> None:
    for statement in step:
        try:
            await cur.execute(statement)
        except (MySQLError, DatabaseError) as exc:
            if maybe_done and error_code(exc) in _ALREADY_DONE:
                log.info("migration %s step %d had run before the last run stopped (%s); going on",
                         migration.label, number + 1, describe(exc))
                continue
            if ddl and isinstance(exc, MySQLError):
                # The server refused the DDL statement, which then did nothing (a
                # lost connection, whose outcome is unknown, is a DatabaseError).
                with contextlib.suppress(MySQLError, DatabaseError):
                    await _record_step(cur, migration, number, running=False)
                    await cur.execute("COMMIT")
            raise MigrationError(
                f"migration {migration.label} stopped at step {number + 1} of {count}"
                f" ({_opening(statement)}): {describe(exc)}; fix that and run 'quality migrate' again:"
                " it resumes at this step"
            ) from exc


def _opening(statement: str) -> str:
    line = statement.splitlines()[0].strip()
    return line if len(line) <= 70 else line[:69] + "…"


async def pending(db: Database) -> list[str]:
    """What `migrate` would do to this database: migrations not applied, and
    routines whose files changed."""
    async with db.transaction() as cur:
        applied = await _recorded(cur)
        routines = await procedures.stale(cur)
    return [migration.label for migration in available() if migration.version not in applied] + [
        f"routine {name}" for name in routines]

