"""Versioned SQL migrations: `quality/migrations/NNNN_name.sql`, applied in order, once.

Each applied file is recorded in `schema_migrations` with its checksum, so an
edited migration is caught instead of silently diverging. A named lock keeps
two processes starting at once from applying the same file twice.

Stored procedures have one current copy each in `quality/routines/`, created
again after the migrations whenever a file changed (quality/procedures.py).

Migrations run in the app's own sessions (quality/db.py), so procedures are
created under the app's sql_mode and collation whatever the server's defaults.
The schema declares its own character set and collation; where the user may,
the database's default is set to match too, and the log says so.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from asyncmy.errors import MySQLError

from quality import procedures
from quality.db import CHARSET, COLLATION, Cursor, Database, error_code

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_SECONDS = 120
_NOT_ALLOWED = {1044, 1142}  # access denied to the database / for this command

log = logging.getLogger(__name__)


class MigrationError(RuntimeError):
    """The migrations on disk and those recorded in the database disagree."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

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
    async with db.transaction() as cur:
        # Schema changes may take longer than a request's statement limit.
        await cur.execute("SET SESSION max_statement_time = 0")
        try:
            await cur.execute("SELECT GET_LOCK('quality.migrate', %s)", (_LOCK_SECONDS,))
            (locked,) = await cur.fetchone() or (0,)
            if locked != 1:
                raise MigrationError("another process held the migration lock for too long")
            try:
                await _align_database_default(cur)
                done = await _apply_pending(cur, migrations)
                if routines is not None:
                    # A migration may have replaced a routine: after one, all of them.
                    await procedures.apply(cur, routines, everything=bool(done))
                return done
            finally:
                await cur.execute("SELECT RELEASE_LOCK('quality.migrate')")
        finally:
            await cur.execute("SET SESSION max_statement_time = %s", (db.query_timeout,))


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


async def _apply_pending(cur: Cursor, migrations: list[Migration]) -> list[str]:
    await cur.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INT UNSIGNED NOT NULL PRIMARY KEY,"
        " name VARCHAR(100) NOT NULL,"
        " checksum CHAR(64) NOT NULL,"
        " applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"
        f") ENGINE=InnoDB DEFAULT CHARSET={CHARSET} COLLATE={COLLATION}"
    )
    await cur.execute("SELECT version, checksum FROM schema_migrations")
    applied = {version: checksum for version, checksum in await cur.fetchall()}
    done = []
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None:
            if recorded != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} was edited after it "
                    "was applied; add a new migration instead"
                )
            continue
        for statement in migration.statements():
            await cur.execute(statement)
        await cur.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
            (migration.version, migration.name, migration.checksum),
        )
        await cur.execute("COMMIT")
        done.append(f"{migration.version:04d}_{migration.name}")
    unknown = set(applied) - {m.version for m in migrations}
    if unknown:
        raise MigrationError(
            f"the database has migrations this code does not know: {sorted(unknown)}; "
            "is this an older version of the app?"
        )
    return done


async def pending(db: Database) -> list[str]:
    """What `migrate` would do to this database: migrations not applied, and
    routines whose files changed."""
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT COUNT(*) FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_name = 'schema_migrations'"
        )
        (exists,) = await cur.fetchone() or (0,)
        applied: set[int] = set()
        if exists:
            await cur.execute("SELECT version FROM schema_migrations")
            applied = {row[0] for row in await cur.fetchall()}
        routines = await procedures.stale(cur)
    return [f"{m.version:04d}_{m.name}" for m in available() if m.version not in applied] + [
        f"routine {name}" for name in routines]
