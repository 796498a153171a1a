"""Versioned migrations: applied in order, once, and guarded against edits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from quality.db import Database
from quality.migrate import MigrationError, available, migrate
from quality.settings import DatabaseURL
from tests.conftest import database_for


async def tables(db: Database) -> set[str]:
    async with db.transaction() as cur:
        await cur.execute("SHOW TABLES")
        return {row[0] for row in await cur.fetchall()}


async def test_schema_is_complete_and_seeded(db: Database) -> None:
    assert {
        "users", "roles", "permissions", "role_permissions", "sessions", "login_attempts",
        "auth_version",
        "scans", "piece_verdicts", "order_counts", "defect_codes", "audit_log",
        "schema_migrations",
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
    assert counts == {"admin": 9, "supervisor": 5, "operator": 2}
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
