"""Demo data: realistic scans, counters that agree with them, and a refusal to
mix itself into a database of real scans."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from quality.db import Database
from quality.demo import DemoDataRefused, fill
from quality.scans.store import save_scan
from quality.settings import Settings
from quality.shifts import Shifts
from tests.conftest import UTC_SHIFTS
from tests.test_scans_store import scan_input

ZONE = ZoneInfo("Europe/Bucharest")
PLANT_SHIFTS = Shifts(Settings.shifts, ZONE)


async def rows(db: Database, sql: str) -> list[tuple]:
    async with db.transaction() as cur:
        await cur.execute(sql)
        return await cur.fetchall()


async def test_demo_scans_and_counters_agree_with_what_record_scan_would_keep(db: Database) -> None:
    progress: list[int] = []
    await fill(db, 6000, 10, PLANT_SHIFTS, progress=lambda done, total: progress.append(done), seed=7)
    assert progress[-1] == 6000
    [(count, orders, operators, rescans, rejected, stations)] = await rows(
        db, "SELECT COUNT(*), COUNT(DISTINCT order_code), COUNT(DISTINCT operator_code),"
            " SUM(is_rescan), SUM(NOT approved), COUNT(DISTINCT station) FROM scans")
    assert count == 6000 and orders >= 12 and operators >= 8 and stations == 2
    assert rescans > 0 and 0.01 < rejected / count < 0.3
    # A scan is a re-scan exactly when an earlier scan of its piece exists at its station.
    seen: set[tuple[str, str]] = set()
    for station, piece, rescan in await rows(
            db, "SELECT station, piece_code, is_rescan FROM scans ORDER BY id"):
        assert bool(rescan) == ((station, piece) in seen)
        seen.add((station, piece))
    # Counters: each piece's latest scan, and per order its pieces by that verdict.
    latest = {(station, piece): (scan_id, approved) for scan_id, station, piece, approved in await rows(
        db, "SELECT id, station, piece_code, approved FROM scans ORDER BY id")}
    verdicts = await rows(db, "SELECT station, piece_code, last_scan_id, approved FROM piece_verdicts")
    assert {(station, piece): (scan_id, approved) for station, piece, scan_id, approved in verdicts} == latest
    [(pieces,)] = await rows(db, "SELECT COUNT(DISTINCT station, piece_code) FROM scans")
    [(counted,)] = await rows(db, "SELECT SUM(approved + rejected) FROM order_counts")
    assert counted == pieces
    assert await rows(db, """
        SELECT COUNT(*) FROM order_counts c WHERE c.rejected <> (
            SELECT COUNT(*) FROM piece_verdicts v WHERE v.station = c.station
            AND v.order_code = c.order_code AND NOT v.approved)""") == [(0,)]


async def test_refuses_a_database_with_real_scans_unless_forced(db: Database, make_user: Any) -> None:
    make_user("worker", "operator")
    await save_scan(db, "quality", scan_input("CP00000001-0001"), 1, UTC_SHIFTS)
    with pytest.raises(DemoDataRefused):
        await fill(db, 100, 1, PLANT_SHIFTS)
    assert await rows(db, "SELECT COUNT(*) FROM scans") == [(1,)]
    await fill(db, 100, 1, PLANT_SHIFTS, force=True)
    assert await rows(db, "SELECT COUNT(*) FROM scans") == [(101,)]
    # The real scan's piece is still counted after the rebuild.
    assert await rows(db, "SELECT approved FROM order_counts WHERE order_code = 'CP00000001'") == [(1,)]


async def test_a_second_run_adds_to_its_own_demo_data(db: Database) -> None:
    await fill(db, 300, 1, PLANT_SHIFTS)
    await fill(db, 300, 1, PLANT_SHIFTS)
    [(count,)] = await rows(db, "SELECT COUNT(*) FROM scans")
    assert count == 600
    [(pieces,)] = await rows(db, "SELECT COUNT(*) FROM piece_verdicts")
    [(counted,)] = await rows(db, "SELECT SUM(approved + rejected) FROM order_counts")
    assert counted == pieces


async def test_the_demo_has_a_bad_hour_at_one_station_and_a_recurring_defect_on_one_order(
        db: Database) -> None:
    went_wrong = await fill(db, 6000, 10, PLANT_SHIFTS, seed=5)
    # The bad hour: at its station, far more rejected than the rest of the run.
    [(scans, rejected)] = await rows(db, (
        f"SELECT COUNT(*), SUM(NOT approved) FROM scans WHERE station = '{went_wrong.bad_station}'"
        " AND NOT is_rescan"
        f" AND created_at >= '{went_wrong.bad_hour}'"
        f" AND created_at < '{went_wrong.bad_hour}' + INTERVAL 1 HOUR"))
    [(all_scans, all_rejected)] = await rows(db, "SELECT COUNT(*), SUM(NOT approved) FROM scans")
    assert scans >= 10
    assert rejected / scans > 0.25 > 2 * all_rejected / all_scans
    # The order: every rejection the same defect, again and again.
    defects = await rows(db, "SELECT defect_code, COUNT(*) FROM scans WHERE NOT approved AND NOT is_rescan"
                             f" AND order_code = '{went_wrong.recurring_order}' GROUP BY defect_code")
    assert [code for code, _ in defects] == [went_wrong.recurring_defect] == ["104"]
    assert defects[0][1] >= 10
    # Two rules that catch them, and the alerts they fired, on a fresh install.
    fired = await rows(db, "SELECT r.kind, a.fired_at FROM alerts a JOIN alert_rules r ON r.id = a.rule_id"
                           " ORDER BY a.id")
    bad_hour = went_wrong.bad_hour
    assert any(kind == "rejection_rate" and bad_hour <= at < bad_hour + timedelta(hours=1)
               for kind, at in fired)
    assert "repeated_defect" in {kind for kind, _ in fired}
    assert await rows(db, "SELECT actor, action FROM audit_log WHERE action LIKE 'alert%'") == [
        ("demo-data", "alert_rule.create"), ("demo-data", "alert_rule.create")]
    # A second run adds no rules.
    await fill(db, 100, 1, PLANT_SHIFTS, seed=6)
    assert await rows(db, "SELECT COUNT(*) FROM alert_rules") == [(2,)]
