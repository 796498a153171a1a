"""Stored procedures: the tree's copy is the database's, re-applied when it
changes, and called by parameter name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from quality.db import SQL_MODE, Database
from quality.migrate import MIGRATIONS_DIR, migrate, pending
from quality.procedures import ROUTINES_DIR, RoutineError, call, routines, stale


async def database_routines(db: Database) -> dict[str, tuple[str, str]]:
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT routine_name, routine_definition, sql_mode FROM information_schema.routines"
            " WHERE routine_schema = DATABASE()")
        return {name: (definition, mode) for name, definition, mode in await cur.fetchall()}


async def test_a_database_migrated_from_scratch_holds_exactly_the_routines_in_the_tree(db: Database) -> None:
    """Migrations 0002-0009 pasted older versions; the database ends with the files' own."""
    tree = routines()
    assert set(tree) == {"record_scan", "session_user"}
    held = await database_routines(db)
    assert held == {name: (routine.body, SQL_MODE) for name, routine in tree.items()}
    async with db.transaction() as cur:
        await cur.execute("SELECT name, checksum FROM schema_routines")
        assert dict(await cur.fetchall()) == {name: routine.checksum for name, routine in tree.items()}
        assert await stale(cur) == []
    assert await pending(db) == []


async def test_a_changed_routine_file_is_applied_again_by_migrate(db: Database, tmp_path: Path) -> None:
    changed = tmp_path / "routines"
    shutil.copytree(ROUTINES_DIR, changed)
    path = changed / "session_user.sql"
    path.write_text(path.read_text().replace("    COMMIT;\nEND", "    -- changed\n    COMMIT;\nEND"))
    async with db.transaction() as cur:
        assert await stale(cur, changed) == ["session_user"]
        await cur.execute("SELECT name, applied_at FROM schema_routines")
        before = dict(await cur.fetchall())

    assert await migrate(db, MIGRATIONS_DIR, changed) == []  # no migration, one routine

    held = await database_routines(db)
    assert "-- changed" in held["session_user"][0]
    assert held["session_user"] == (routines(changed)["session_user"].body, SQL_MODE)
    async with db.transaction() as cur:
        assert await stale(cur, changed) == []
        await cur.execute("SELECT name, applied_at FROM schema_routines")
        after = dict(await cur.fetchall())
    assert after["record_scan"] == before["record_scan"]  # unchanged: left alone
    assert after["session_user"] > before["session_user"]
    # The tree's own copy is now the stale one, and `quality migrate` puts it back.
    assert await pending(db) == ["routine session_user"]
    await migrate(db)
    assert (await database_routines(db))["session_user"][0] == routines()["session_user"].body


async def test_a_call_names_every_parameter(db: Database) -> None:
    assert routines()["session_user"].parameters == (
        "session", "now", "renewed", "extend_below", "started_after")
    async with db.transaction() as cur:
        with pytest.raises(RoutineError, match=r"missing \['started_after'\], unknown \['start'\]"):
            await call(cur, "session_user", session=b"", now=None, renewed=None, extend_below=None,
                       start=None)
        with pytest.raises(RoutineError, match="no routine"):
            await call(cur, "no_such_routine")


def test_a_routine_file_must_create_the_procedure_it_is_named_after(tmp_path: Path) -> None:
    (tmp_path / "record_scan.sql").write_text("-- another name\nCREATE PROCEDURE other()\nBEGIN\nEND\n")
    with pytest.raises(RoutineError, match=r"record_scan\.sql must hold one CREATE PROCEDURE"):
        routines(tmp_path)
