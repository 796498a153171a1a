"""The summary tables: migration 0008 fills its tables on a database with
scans exactly as the background summariser would have, and a summariser
going on from there ends where one starting from nothing does; scan_shifts
holds the raw scans counted per shift of the layout it names, kept and rebuilt
as the settings say."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from typing import Any

import pytest

from quality.db import Database
from quality.demo import fill
from quality.migrate import available
from quality.scans.store import save_scan
from quality.summary.tables import ROLLUPS, hour_of, layout_of
from quality.summary.writer import rebuild, summarise_all, summarise_once
from tests.conftest import UTC_SHIFTS
from tests.test_scan_list import PLANT_SHIFTS, all_scans
from tests.test_scans_store import scan_input

FILLED = ("scan_hourly", "scan_daily_order", "scan_daily_operator", "scan_checker_hourly")


async def contents(db: Database, tables: tuple[str, ...]) -> dict[str, set[tuple]]:
    found = {}
    async with db.transaction() as cur:
        for table in tables:
            await cur.execute(f"SELECT * FROM {table}")
            found[table] = set(await cur.fetchall())
    return found


async def fill_as_migration_0008(db: Database) -> None:
    """Run 0008's statements that empty and fill the tables (after its DDL), on
    the watermark of its day: the highest scan folded (all below it are)."""
    [migration] = [m for m in available() if m.version == 8]
    statements = migration.statements()
    filling = statements[[sql.startswith("SELECT") for sql in statements].index(True):]
    assert [sql.split()[0] for sql in filling] == ["SELECT"] + ["DELETE"] * 4 + ["INSERT"] * 4
    async with db.transaction() as cur:
        await cur.execute("SELECT COALESCE(MAX(id), 0) FROM scans"
                          " WHERE id NOT IN (SELECT scan_id FROM scan_queue)")
        (folded,) = await cur.fetchone()
        await cur.execute("SELECT COUNT(*) FROM scan_queue WHERE scan_id < %s", (folded,))
        assert await cur.fetchone() == (0,)
        await cur.execute("UPDATE scan_summary_state SET last_scan_id = %s", (folded,))
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
    await fill(db, 2000, 4, PLANT_SHIFTS, seed=8)
    make_user("worker", "operator")
    seeded = await all_scans(db)
    # Summarised re-scans (some with one checker twice), days after their pieces' first scans ...
    await rescan(db, seeded[:600:60], same_checkers=True)
    await rescan(db, seeded[-300::60], same_checkers=False)
    await summarise_all(db, PLANT_SHIFTS)
    # ... and re-scans not summarised yet, of pieces whose summarised latest scan they replace.
    await rescan(db, seeded[:600:120] + seeded[-300::90], same_checkers=False)
    by_summariser = await contents(db, FILLED)
    assert all(by_summariser.values())
    await fill_as_migration_0008(db)
    assert await contents(db, FILLED) == by_summariser

    # Going on from what the migration filled ends where starting afresh does.
    await summarise_all(db, PLANT_SHIFTS)
    tables = tuple(rollup.table for rollup in ROLLUPS)
    incremental = await contents(db, (*tables, "scan_shifts", "summary_pieces", "piece_verdicts",
                                      "order_counts"))
    assert await rebuild(db, PLANT_SHIFTS) == (0, 0, len(await all_scans(db)))
    assert await contents(db, (*tables, "scan_shifts", "summary_pieces", "piece_verdicts",
                               "order_counts")) == incremental


async def shift_state(db: Database) -> str:
    async with db.transaction() as cur:
        await cur.execute("SELECT layout FROM scan_shift_state WHERE id = 1")
        return (await cur.fetchone())[0]


async def queued(db: Database) -> int:
    async with db.transaction() as cur:
        await cur.execute("SELECT COUNT(*) FROM scan_queue")
        return (await cur.fetchone())[0]


async def age_shift_state(db: Database) -> None:
    """As if scan_shifts had been built two minutes ago (more than REBUILD_GAP)."""
    async with db.transaction() as cur:
        await cur.execute("UPDATE scan_shift_state SET built_at = built_at - INTERVAL 2 MINUTE")


async def by_shift_from_scans(db: Database, shifts: Any) -> set[tuple]:
    """scan_shifts' rows computed from the raw scans: per shift (by its first
    hour), station, defect and re-scan, the scans and the pieces whose latest
    scan is one of them, by verdict."""
    scans = await all_scans(db)
    latest = {(s.station, s.piece): s for s in scans}
    rows: dict[tuple, Counter[str]] = {}
    for scan in scans:
        begins = shifts.around(scan.created_at)[0]
        assert begins.minute == 0  # whole-hour shifts in a whole-hour zone
        counts = rows.setdefault((hour_of(begins), scan.station, scan.defect, scan.rescan), Counter())
        counts["scans"] += 1
        if latest[scan.station, scan.piece] is scan:
            counts["approved" if scan.approved else "rejected"] += 1
    return {(*key, c["scans"], c["approved"], c["rejected"]) for key, c in rows.items()}


async def test_scan_shifts_counts_the_scans_of_each_shift_kept_or_rebuilt(
        db: Database, make_user: Any) -> None:
    await fill(db, 2000, 4, PLANT_SHIFTS, seed=9)
    make_user("worker", "operator")
    seeded = await all_scans(db)
    assert await queued(db) == 0 and await shift_state(db) == layout_of(PLANT_SHIFTS)
    # Re-scans days after the first scans, summarised as they come (kept, not rebuilt).
    await rescan(db, seeded[:800:40] + seeded[-400::50], same_checkers=False)
    await summarise_all(db, PLANT_SHIFTS)
    kept = await contents(db, ("scan_shifts",))
    assert kept["scan_shifts"] == await by_shift_from_scans(db, PLANT_SHIFTS)
    # A rebuild (the layout it held was another) makes the same rows.
    async with db.transaction() as cur:
        await cur.execute("UPDATE scan_shift_state SET layout = 'Europe/Lisbon 07:00,19:00'")
    await age_shift_state(db)
    await summarise_once(db, PLANT_SHIFTS)
    assert await contents(db, ("scan_shifts",)) == kept
    assert await shift_state(db) == layout_of(PLANT_SHIFTS)


async def test_other_shift_settings_rebuild_scan_shifts_at_most_once_a_gap(
        db: Database, make_user: Any, caplog: pytest.LogCaptureFixture) -> None:
    await fill(db, 1200, 3, PLANT_SHIFTS, seed=4)
    make_user("worker", "operator")
    await summarise_all(db, PLANT_SHIFTS)  # the demo's newest scans too
    plant = await contents(db, ("scan_shifts",))
    # A process whose settings differ, right after the build: leaves the table alone ...
    await rescan(db, (await all_scans(db))[:100:10], same_checkers=False)
    await summarise_once(db, UTC_SHIFTS)
    assert await shift_state(db) == layout_of(PLANT_SHIFTS)  # the reports read hours
    assert await contents(db, ("scan_shifts",)) == plant
    # ... and rebuilds it for its own shifts once the gap has passed.
    await age_shift_state(db)
    with caplog.at_level(logging.INFO, logger="quality.summary"):
        await summarise_once(db, UTC_SHIFTS)
    assert await shift_state(db) == layout_of(UTC_SHIFTS)
    assert (await contents(db, ("scan_shifts",)))["scan_shifts"] == await by_shift_from_scans(db, UTC_SHIFTS)
    assert f"scan_shifts rebuilt for the shifts UTC 06:00,14:00,22:00 (it held {layout_of(PLANT_SHIFTS)})" \
        in caplog.text
    # The plant's own summariser takes it back the same way.
    await summarise_once(db, PLANT_SHIFTS)
    assert await shift_state(db) == layout_of(UTC_SHIFTS)
    await age_shift_state(db)
    await summarise_once(db, PLANT_SHIFTS)
    rebuilt = await contents(db, ("scan_shifts",))
    assert rebuilt["scan_shifts"] == await by_shift_from_scans(db, PLANT_SHIFTS)


async def test_migration_0014_fills_the_daily_order_defects_as_the_summariser_does(
        db: Database, make_user: Any) -> None:
    await fill(db, 1500, 4, PLANT_SHIFTS, seed=14)
    make_user("worker", "operator")
    seeded = await all_scans(db)
    await rescan(db, seeded[:500:50], same_checkers=False)
    await summarise_all(db, PLANT_SHIFTS)
    await rescan(db, seeded[-300::60], same_checkers=False)  # not summarised yet
    by_summariser = await contents(db, ("scan_daily_order_defect",))
    assert by_summariser["scan_daily_order_defect"]
    [migration] = [m for m in available() if m.version == 14]
    statements = migration.statements()
    filling = statements[[sql.startswith("SELECT") for sql in statements].index(True):]
    assert [sql.split()[0] for sql in filling] == ["SELECT", "DELETE", "INSERT"]
    async with db.transaction() as cur:
        for sql in filling:
            await cur.execute(sql)
    assert await contents(db, ("scan_daily_order_defect",)) == by_summariser
