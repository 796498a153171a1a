"""The summary tables: migration 0008 fills its tables on a database with
scans exactly as the background summariser would have, and a summariser
going on from there ends where one starting from nothing does."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from quality.db import Database
from quality.demo import fill
from quality.migrate import available
from quality.scans.store import save_scan
from quality.summary import ROLLUPS, summarise_all
from tests.conftest import UTC_SHIFTS
from tests.test_lists import ZONE, all_scans
from tests.test_scans_store import scan_input

FILLED = ("scan_hourly", "scan_daily_order", "scan_daily_operator", "scan_checker_hourly")


def later() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)


async def contents(db: Database, tables: tuple[str, ...]) -> dict[str, set[tuple]]:
    found = {}
    async with db.transaction() as cur:
        for table in tables:
            await cur.execute(f"SELECT * FROM {table}")
            found[table] = set(await cur.fetchall())
    return found


async def fill_as_migration_0008(db: Database) -> None:
    """Run 0008's statements that empty and fill the tables (after its DDL)."""
    [migration] = [m for m in available() if m.version == 8]
    statements = migration.statements()
    filling = statements[[sql.startswith("SELECT") for sql in statements].index(True):]
    assert [sql.split()[0] for sql in filling] == ["SELECT"] + ["DELETE"] * 4 + ["INSERT"] * 4
    async with db.transaction() as cur:
        for sql in filling:
            await cur.execute(sql)


async def rescan(db: Database, scans: list[Any], same_checkers: bool) -> None:
    for scan in scans:
        scanned = scan_input(scan.piece, "000" if not scan.approved else "104")
        if same_checkers:
            scanned = dataclasses.replace(scanned, checker2_code=scanned.checker1_code)
        await save_scan(db, scan.station, scanned, 1, UTC_SHIFTS)


async def test_migration_0008_fills_the_new_tables_as_the_summariser_does(
        db: Database, make_user: Any) -> None:
    await fill(db, 2000, 4, ZONE, seed=8)
    make_user("worker", "operator")
    seeded = await all_scans(db)
    # Summarised re-scans (some with one checker twice), days after their pieces' first scans ...
    await rescan(db, seeded[:600:60], same_checkers=True)
    await rescan(db, seeded[-300::60], same_checkers=False)
    await summarise_all(db, later())
    # ... and re-scans not summarised yet, of pieces whose summarised latest scan they replace.
    await rescan(db, seeded[:600:120] + seeded[-300::90], same_checkers=False)
    by_summariser = await contents(db, FILLED)
    assert all(by_summariser.values())
    await fill_as_migration_0008(db)
    assert await contents(db, FILLED) == by_summariser

    # Going on from what the migration filled ends where starting afresh does.
    await summarise_all(db, later())
    tables = tuple(rollup.table for rollup in ROLLUPS)
    incremental = await contents(db, tables)
    async with db.transaction() as cur:
        for table in tables:
            await cur.execute(f"DELETE FROM {table}")
        await cur.execute("UPDATE scan_summary_state SET last_scan_id = 0")
    await summarise_all(db, later())
    assert await contents(db, tables) == incremental
