"""Versioned migrations: applied in order, once, guarded against edits, never left
stuck part-way (refused up front, resumed after a failure, one run at a time)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from quality.db import Database
from quality.localdb import LocalMariaDB
from quality.migrate import (
    LOCK_STALE_SECONDS,
    MIGRATIONS_DIR,
    Migration,
    MigrationError,
    MigrationLock,
    available,
    migrate,
)
from quality.settings import DatabaseURL
from tests.conftest import database_for, execute, run_async
from tests.test_cli import quality

SECRET = "migrate-test-secret-0123456789"


async def tables(db: Database) -> set[str]:
    async with db.transaction() as cur:
        await cur.execute("SHOW TABLES")
        return {row[0] for row in await cur.fetchall()}


async def test_schema_is_complete_and_seeded(db: Database) -> None:
    assert {
        "users", "roles", "permissions", "role_permissions", "sessions", "login_attempts",
        "auth_version",
        "scans", "piece_verdicts", "order_counts", "defect_codes", "audit_log",
        "schema_migrations", "alert_rules", "alerts", "alert_outbox",
    } <= await tables(db)
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT r.name, COUNT(*) FROM roles r JOIN role_permissions rp ON rp.role_id = r.id"
            " GROUP BY r.name"
        )
        counts = dict(await cur.fetchall())
        await cur.execute("SELECT name FROM defect_codes WHERE code = '000'")
        approved = await cur.fetchone()
        await cur.execute("SHOW INDEX FROM scans")
        indexed = {row[2] for row in await cur.fetchall()}
    # 0015 gives admins alerts.view and admin.alerts, supervisors alerts.view.
    assert counts == {"admin": 11, "supervisor": 6, "operator": 2}
    assert approved == ("Approved",)
    assert {"uq_scans_submission", "ix_scans_station_time", "ix_scans_order",
            "ix_scans_operator"} <= indexed


async def test_second_run_applies_nothing_and_concurrent_runs_apply_once(db: Database) -> None:
    assert await migrate(db) == []
    other = Database(db.connect_kwargs, maxsize=1)
    try:
        assert await asyncio.gather(migrate(db), migrate(other)) == [[], []]
    finally:
        await other.close()


async def test_fresh_database_migrates_concurrently_once(
    db_url: DatabaseURL, tmp_path: Path
) -> None:
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE extra_one (id INT PRIMARY KEY);\n")
    (tmp_path / "0002_second.sql").write_text(
        "-- adds a row\nINSERT INTO extra_one VALUES (1);\nINSERT INTO extra_one VALUES (2);\n"
    )
    first, second = database_for(db_url, maxsize=1), database_for(db_url, maxsize=1)
    try:
        async with first.transaction() as cur:  # a database that knows only these files
            await cur.execute("DROP TABLE schema_migrations")
        results = await asyncio.gather(migrate(first, tmp_path), migrate(second, tmp_path))
        assert sorted(results) == [[], ["0001_first", "0002_second"]]
        async with first.transaction() as cur:
            await cur.execute("SELECT COUNT(*) FROM extra_one")
            assert await cur.fetchone() == (2,)
    finally:
        await first.close()
        await second.close()


async def test_edited_migration_is_refused(db: Database, tmp_path: Path) -> None:
    original = available()[0]
    (tmp_path / f"{original.version:04d}_{original.name}.sql").write_text(original.sql + "\n-- edit\n")
    with pytest.raises(MigrationError, match="was edited after it was applied"):
        await migrate(db, tmp_path)


def test_statements_split_on_line_end_semicolons() -> None:
    migration = available()[0]
    statements = migration.statements()
    assert statements[0].startswith("CREATE TABLE roles")
    assert all(not s.endswith(";") for s in statements)
    assert sum(s.startswith("CREATE TABLE") for s in statements) == 11


# -- runs that cannot leave the schema stuck ---------------------------------------
# Each scenario takes the app user's URL (rights on its database only, as a DBA
# grants them) and the DBA's (every right) to the same database; the suite's
# server and the Galera cluster (tests/test_migrate_cluster.py) run the same ones.

# What two schemas must agree on: structure, routines, triggers, the seeded rows
# and what is recorded as applied.
SCHEMA = (
    "SELECT table_name, column_name, ordinal_position, column_type, is_nullable, column_default,"
    " collation_name, extra FROM information_schema.columns WHERE table_schema = DATABASE()"
    " ORDER BY table_name, ordinal_position",
    "SELECT table_name, index_name, seq_in_index, column_name, non_unique FROM information_schema.statistics"
    " WHERE table_schema = DATABASE() ORDER BY table_name, index_name, seq_in_index",
    "SELECT constraint_name, table_name, constraint_type FROM information_schema.table_constraints"
    " WHERE constraint_schema = DATABASE() ORDER BY table_name, constraint_name",
    "SELECT trigger_name, event_object_table, action_timing, event_manipulation, action_statement, sql_mode"
    " FROM information_schema.triggers WHERE trigger_schema = DATABASE() ORDER BY trigger_name",
    "SELECT routine_name, routine_type, routine_definition, sql_mode FROM information_schema.routines"
    " WHERE routine_schema = DATABASE() ORDER BY routine_name",
    "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
    "SELECT r.name, rp.permission FROM roles r JOIN role_permissions rp ON rp.role_id = r.id ORDER BY 1, 2",
    "SELECT code, name, category, active FROM defect_codes ORDER BY code",
    "SELECT * FROM auth_version",
    "SELECT * FROM scan_summary_state",
    "SELECT COUNT(*) FROM schema_migrations_lock",
    "SELECT COUNT(*) FROM schema_migration_steps",
)
# A scan the migration after 0003 updates, and a trigger that refuses the update:
# 0004 stops at its seventh step of eight, after six that committed by themselves.
BLOCK_0004 = (
    "INSERT INTO users (username, password_hash, role_id) SELECT 'resume', 'x', id FROM roles"
    " WHERE name = 'operator'",
    "INSERT INTO scans (station, submission_id, operator_code, piece_code, order_code, checker1_code,"
    " checker2_code, defect_code, approved, created_at, created_by) SELECT 'quality', UNHEX(MD5('resume')),"
    " 'OP00001', 'CP00000001-0001', 'CP00000001', 'CK00001', 'CK00002', '101', FALSE, UTC_TIMESTAMP(6), id"
    " FROM users WHERE username = 'resume'",
    "CREATE TRIGGER scans_blocked_by_the_test BEFORE UPDATE ON scans FOR EACH ROW"
    " SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'blocked by the test'",
)


def schema_of(admin: DatabaseURL, *prelude: str) -> list[list[tuple[Any, ...]]]:
    return run_async(execute(admin, *prelude, *SCHEMA))[len(prelude):]


def applied_line(migrations: list[Migration]) -> str:
    return "quality: applied " + ", ".join(f"{m.version:04d}_{m.name}" for m in migrations)


def failure_line(result: subprocess.CompletedProcess[str]) -> str:
    """What a failed `quality` command said: one line, the last, and no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("quality: ")] == lines[-1:], result.stderr
    return lines[-1]


def quality_process(url: DatabaseURL, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "QUALITY_DATABASE_URL": url.as_url(), "QUALITY_SECRET_KEY": SECRET}
    return subprocess.Popen([sys.executable, "-m", "quality", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parent)


def migrate_up_to(url: DatabaseURL, directory: Path, count: int) -> None:
    """Apply the first `count` migrations of the tree, as an older version of the app would."""
    for migration in available()[:count]:
        (directory / f"{migration.version:04d}_{migration.name}.sql").write_text(migration.sql)
    run_async(migrate_once(url, directory))


async def migrate_once(url: DatabaseURL, directory: Path = MIGRATIONS_DIR) -> list[str]:
    db = database_for(url, maxsize=1)
    try:
        return await migrate(db, directory)
    finally:
        await db.close()


def refused_then_applied(app: DatabaseURL, admin: DatabaseURL, trust: Callable[[bool], None]) -> None:
    """Where creating triggers needs log_bin_trust_function_creators: refused on one
    line naming it, with nothing changed; with the setting on, everything applied."""
    refused = quality(app, "migrate")
    assert refused.returncode == 2, refused.stderr
    line = failure_line(refused)
    assert "log_bin_trust_function_creators = 1" in line and "nothing was changed" in line
    assert run_async(execute(admin, "SHOW TABLES")) == [[]]
    trust(True)
    applied = quality(app, "migrate")
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == applied_line(available())


def stopped_then_resumed(app: DatabaseURL, admin: DatabaseURL, directory: Path) -> None:
    """A migration stopped part-way by a statement the server refuses, after
    others committed by themselves, resumes at that statement once its cause is gone."""
    migrate_up_to(app, directory, 3)
    run_async(execute(admin, *BLOCK_0004))
    stopped = quality(app, "migrate")
    assert stopped.returncode == 2, stopped.stderr
    line = failure_line(stopped)
    assert "0004_admin stopped at step 7 of 8 (UPDATE scans" in line and "blocked by the test" in line
    (address, versions) = run_async(execute(admin, "SHOW COLUMNS FROM audit_log LIKE 'address'",
                                            "SELECT MAX(version) FROM schema_migrations"))
    assert len(address) == 1 and versions == [(3,)]  # part of 0004 is in, and not recorded
    run_async(execute(admin, "DROP TRIGGER scans_blocked_by_the_test"))
    resumed = quality(app, "migrate")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming migration 0004_admin at step 7 of 8" in resumed.stderr
    assert resumed.stdout.strip() == applied_line(available()[3:])
    (defect_names,) = run_async(execute(admin, "SELECT defect_name FROM scans"))
    assert defect_names == [("Scratch",)]


def two_at_once(first: DatabaseURL, second: DatabaseURL, admin: DatabaseURL, *prelude: str) -> None:
    """Two `quality migrate` started together: both succeed, one applies everything
    once, the other waits for the lock and finds nothing to do."""
    processes = [quality_process(url, "migrate") for url in (first, second)]
    try:
        results = [(*process.communicate(timeout=240), process.returncode) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert [code for _, _, code in results] == [0, 0], results
    assert sorted(out.strip() for out, _, _ in results) == [applied_line(available()),
                                                            "quality: schema is current"]
    (versions, locks, steps) = run_async(execute(
        admin, *prelude, "SELECT version FROM schema_migrations ORDER BY version",
        "SELECT COUNT(*) FROM schema_migrations_lock", "SELECT COUNT(*) FROM schema_migration_steps",
    ))[len(prelude):]
    assert versions == [(m.version,) for m in available()] and locks == [(0,)] and steps == [(0,)]


@contextlib.contextmanager
def dba_database(mariadb: LocalMariaDB, grants: str = "ALL PRIVILEGES") -> Iterator[
        tuple[DatabaseURL, DatabaseURL]]:
    """A database and its user with `grants` on it and nothing else, as a DBA makes
    them: (the user's URL, the DBA's), dropped after."""
    name, password = f"t_{uuid.uuid4().hex[:12]}", secrets.token_urlsafe(16)
    server = mariadb.url(maintenance=True, database="mysql")
    run_async(execute(server, f"CREATE DATABASE `{name}`",
                      f"CREATE USER `{name}`@'localhost' IDENTIFIED BY '{password}'",
                      f"GRANT {grants} ON `{name}`.* TO `{name}`@'localhost'"))
    try:
        yield (DatabaseURL(user=name, password=password, database=name, unix_socket=str(mariadb.socket)),
               dataclasses.replace(server, database=name))
    finally:
        run_async(execute(server, f"DROP DATABASE `{name}`", f"DROP USER `{name}`@'localhost'"))


def test_preflight_names_the_missing_rights_and_changes_nothing(mariadb: LocalMariaDB) -> None:
    without = "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, REFERENCES"
    with dba_database(mariadb, without) as (app, admin):
        refused = quality(app, "migrate")
        assert refused.returncode == 2
        line = failure_line(refused)
        for right in ("TRIGGER", "CREATE ROUTINE", "ALTER ROUTINE"):
            assert f"the {right} privilege" in line
        assert run_async(execute(admin, "SHOW TABLES")) == [[]]
        run_async(execute(admin, f"GRANT TRIGGER, CREATE ROUTINE, ALTER ROUTINE ON `{app.database}`.*"
                                 f" TO `{app.user}`@'localhost'"))
        applied = quality(app, "migrate")
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.strip() == applied_line(available())


def test_a_migration_stopped_by_a_failing_statement_resumes_there(
    mariadb: LocalMariaDB, db_url: DatabaseURL, tmp_path: Path
) -> None:
    with dba_database(mariadb) as (app, admin):
        stopped_then_resumed(app, admin, tmp_path)
        assert schema_of(admin) == schema_of(db_url)


async def test_a_migration_whose_connection_is_killed_resumes_there(
    mariadb: LocalMariaDB, db_url: DatabaseURL, tmp_path: Path
) -> None:
    with dba_database(mariadb) as (app, admin):
        await asyncio.to_thread(migrate_up_to, app, tmp_path, 3)
        blocker = database_for(admin, maxsize=1)
        process: subprocess.Popen[str] | None = None
        try:
            async with blocker.transaction() as cur:
                # Until this transaction ends, ALTER TABLE scans waits for its metadata lock.
                await cur.execute("SELECT COUNT(*) FROM scans")
                process = quality_process(app, "migrate")
                victim = await waiting_for_metadata_lock(admin, "ALTER TABLE scans")
                await execute(admin, f"KILL CONNECTION {victim}")
                stdout, stderr = await asyncio.to_thread(process.communicate, timeout=60)
        finally:
            await blocker.close()
            if process is not None and process.poll() is None:  # the test failed before the kill
                process.kill()
                process.communicate()
        killed = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        assert killed.returncode == 2, stderr
        assert "0004_admin stopped at step 6 of 8 (ALTER TABLE scans" in failure_line(killed)
        resumed = await asyncio.to_thread(quality, app, "migrate")
        assert resumed.returncode == 0, resumed.stderr
        assert "resuming migration 0004_admin at step 6 of 8" in resumed.stderr
        assert schema_of(admin) == schema_of(db_url)


async def waiting_for_metadata_lock(admin: DatabaseURL, statement: str) -> int:
    """The id of the connection whose `statement` waits for a table's metadata lock."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        (rows,) = await execute(admin, "SELECT id FROM information_schema.processlist"
                                       " WHERE state = 'Waiting for table metadata lock'"
                                       f" AND info LIKE '{statement}%'")
        if rows:
            return rows[0][0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {statement!r} waited for a metadata lock")


def test_a_ddl_step_interrupted_before_its_record_counts_as_done(
    mariadb: LocalMariaDB, db_url: DatabaseURL, tmp_path: Path
) -> None:
    """As a run leaves it when its process dies after 0004's first statement (an
    ALTER, which commits by itself) and before that step's record."""
    with dba_database(mariadb) as (app, admin):
        migrate_up_to(app, tmp_path, 3)
        first_step = available()[3].steps()[0][0]
        run_async(execute(admin, first_step,
                          "INSERT INTO schema_migration_steps (version, checksum, steps_done, running_step,"
                          f" updated_at) VALUES (4, '{available()[3].checksum}', 0, 0, UTC_TIMESTAMP(6))"))
        resumed = quality(app, "migrate")
        assert resumed.returncode == 0, resumed.stderr
        assert "migration 0004_admin step 1 had run before the last run stopped" in resumed.stderr
        assert schema_of(admin) == schema_of(db_url)


def test_two_migrations_at_once_apply_each_migration_once(mariadb: LocalMariaDB) -> None:
    with dba_database(mariadb) as (app, admin):
        two_at_once(app, app, admin)


def test_a_stale_migration_lock_is_taken_over(mariadb: LocalMariaDB, tmp_path: Path) -> None:
    """A process that died holding the lock does not block migrations for ever."""
    with dba_database(mariadb) as (app, admin):
        migrate_up_to(app, tmp_path, 3)
        run_async(execute(admin, "INSERT INTO schema_migrations_lock (id, holder, taken_at, heartbeat_at)"
                                 " VALUES (1, 'gone-host:4242:dead', UTC_TIMESTAMP(6) - INTERVAL 10 MINUTE,"
                                 f" UTC_TIMESTAMP(6) - INTERVAL {LOCK_STALE_SECONDS + 1:.0f} SECOND)"))
        result = quality(app, "migrate")
        assert result.returncode == 0, result.stderr
        assert "took over the migration lock from gone-host:4242:dead" in result.stderr
        assert result.stdout.strip() == applied_line(available()[3:])
        assert run_async(execute(admin, "SELECT COUNT(*) FROM schema_migrations_lock")) == [[(0,)]]


async def test_a_live_migration_lock_is_waited_for_and_its_loss_noticed(db: Database) -> None:
    async with MigrationLock(db, stale_after=0.6) as held:
        refused = f"held by {held.holder} since .* was not released within 1s"
        with pytest.raises(MigrationError, match=refused):
            async with MigrationLock(db, wait=1.0):
                pass
        held.check()  # its heartbeat kept it: not stale
        async with db.transaction() as cur:  # as a process that took it over would
            await cur.execute("UPDATE schema_migrations_lock SET holder = 'another:1:x'")
        await asyncio.sleep(1.0)  # ten heartbeats: the first notices
        with pytest.raises(MigrationError, match="another process took over the migration lock"):
            held.check()

