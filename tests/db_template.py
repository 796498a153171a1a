"""A migrated database per test, copied from one migrated once per test session.

Migrating runs every migration's statements (table rebuilds included) for each
test; a copy is one CREATE per table, one INSERT ... SELECT per table the
migrations seeded, and the triggers and routines, each re-created under the
session settings (sql_mode, character sets) it was first made under.

The copy is made as the migration would be: into a database created with the
server's defaults, whose default collation is then changed as `migrate` changes
it. Once per session the copy is compared with a database really migrated
(schema, routines, triggers, rows), so a migration that adds something this
module cannot copy stops the run instead of giving tests a different database.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from quality.db import Cursor, Database


@dataclasses.dataclass(frozen=True)
class Stored:
    """A trigger or a routine as SHOW CREATE gives it, with the settings it was made under."""

    statement: str
    sql_mode: str
    character_set_client: str
    collation_connection: str
    database_collation: str
    action_order: int = 0  # a trigger's place among those on the same table and event


@dataclasses.dataclass(frozen=True)
class Recipe:
    """All a migrated database holds, as statements that make it again."""

    charset: str
    collation: str
    tables: tuple[str, ...]  # SHOW CREATE TABLE, auto-increment counters included
    seeded: tuple[tuple[str, str], ...]  # (table, its insertable columns) for tables with rows
    triggers: tuple[Stored, ...]
    routines: tuple[Stored, ...]


async def recipe_of(db: Database) -> Recipe:
    """The recipe for `db`'s database; refuses kinds of object it would not copy."""
    async with db.transaction() as cur:
        await cur.execute("SELECT DATABASE()")
        (database,) = await cur.fetchone()
        return await _read_recipe(cur, database)


async def _read_recipe(cur: Cursor, database: str) -> Recipe:
    await cur.execute(
        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA"
        " WHERE SCHEMA_NAME = %s", (database,))
    charset, collation = await cur.fetchone()
    await cur.execute("SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", (database,))
    (events,) = await cur.fetchone()
    await cur.execute(
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
        " ORDER BY TABLE_NAME", (database,))
    listed = await cur.fetchall()
    others = [f"{name} ({kind})" for name, kind in listed if kind != "BASE TABLE"]
    others += [f"{events} event(s)"] if events else []
    if others:
        raise NotImplementedError(
            "tests/db_template.py copies tables, triggers and routines only; the migrations "
            f"also made {', '.join(others)}: teach it those")
    tables, seeded = [], []
    for (name, _) in listed:
        await cur.execute(f"SHOW CREATE TABLE `{database}`.`{name}`")
        tables.append((await cur.fetchone())[1])
        await cur.execute(f"SELECT EXISTS (SELECT 1 FROM `{database}`.`{name}`)")
        if (await cur.fetchone())[0]:
            seeded.append((name, await _insertable_columns(cur, database, name)))
    return Recipe(charset, collation, tuple(tables), tuple(seeded),
                  await _triggers(cur, database), await _routines(cur, database))


async def _insertable_columns(cur: Cursor, database: str, table: str) -> str:
    await cur.execute(
        "SELECT GROUP_CONCAT(CONCAT('`', COLUMN_NAME, '`') ORDER BY ORDINAL_POSITION)"
        " FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND IS_GENERATED = 'NEVER'", (database, table))
    return (await cur.fetchone())[0]


async def _triggers(cur: Cursor, database: str) -> tuple[Stored, ...]:
    # Made again in this order, each trigger gets its place back.
    await cur.execute(
        "SELECT TRIGGER_NAME, ACTION_ORDER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s"
        " ORDER BY EVENT_OBJECT_TABLE, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER", (database,))
    found = []
    for name, order in await cur.fetchall():
        await cur.execute(f"SHOW CREATE TRIGGER `{database}`.`{name}`")
        _, sql_mode, statement, client, connection, collation, _created = await cur.fetchone()
        found.append(Stored(statement, sql_mode, client, connection, collation, order))
    return tuple(found)


async def _routines(cur: Cursor, database: str) -> tuple[Stored, ...]:
    await cur.execute(
        "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s"
        " ORDER BY ROUTINE_TYPE, ROUTINE_NAME", (database,))
    found = []
    for kind, name in await cur.fetchall():
        await cur.execute(f"SHOW CREATE {kind} `{database}`.`{name}`")
        _, sql_mode, statement, client, connection, collation = await cur.fetchone()
        found.append(Stored(statement, sql_mode, client, connection, collation))
    return tuple(found)


async def copy_database(db: Database, recipe: Recipe, source: str) -> None:
    """Make `db`'s (empty) database what `source` is, by `recipe` (read from `source`)."""
    async with db.transaction() as cur:
        await cur.execute(f"ALTER DATABASE CHARACTER SET {recipe.charset} COLLATE {recipe.collation}")
        await cur.execute("SET SESSION foreign_key_checks = 0")
        for statement in recipe.tables:
            await cur.execute(statement)
        # The rows before the triggers, which would react to them.
        for table, columns in recipe.seeded:
            await cur.execute(f"INSERT INTO `{table}` ({columns}) SELECT {columns} FROM `{source}`.`{table}`")
        await cur.execute("COMMIT")
        await cur.execute("SET SESSION foreign_key_checks = 1")
        for stored in recipe.triggers + recipe.routines:
            await cur.execute(
                "SET SESSION sql_mode = %s, character_set_client = %s, collation_connection = %s",
                (stored.sql_mode, stored.character_set_client, stored.collation_connection))
            await cur.execute(stored.statement)


async def differences(migrated: Database, copied: Database) -> list[str]:
    """What a copy lacks or has unlike a database really migrated (empty: none)."""
    recipe, copy_recipe = await recipe_of(migrated), await recipe_of(copied)
    rows, copy_rows = await _rows(migrated), await _rows(copied)
    found = [f"{field.name}: migrated {getattr(recipe, field.name)!r}\n"
             f"  copied {getattr(copy_recipe, field.name)!r}"
             for field in dataclasses.fields(Recipe)
             if getattr(recipe, field.name) != getattr(copy_recipe, field.name)]
    if rows != copy_rows:
        found.append(f"rows: migrated {rows!r}\n  copied {copy_rows!r}")
    return found


async def _rows(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows but for their times (when a migration ran, not what it made)."""
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT TABLE_NAME, GROUP_CONCAT(CONCAT('`', COLUMN_NAME, '`') ORDER BY ORDINAL_POSITION)"
            " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
            " AND DATA_TYPE NOT IN ('date', 'time', 'datetime', 'timestamp')"
            " GROUP BY TABLE_NAME ORDER BY TABLE_NAME")
        rows = {}
        for table, columns in await cur.fetchall():
            await cur.execute(f"SELECT {columns} FROM `{table}`")
            rows[table] = sorted(await cur.fetchall(), key=repr)
    return rows
