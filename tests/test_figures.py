"""Figures people act on (issue 22): exact under concurrent saves, scans
stored by hand, late commits, any zone and changed shift settings. The
expected figures come from bench/figures_check.py, which counts the raw scans
with its own SQL and Python."""

from __future__ import annotations

import asyncio
import random
import re
import secrets
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncmy
import pytest

from quality.db import Database
from quality.pages.scan_list.queries import totals
from quality.scan_filter import read_filter
from quality.scans.store import ScanInput, operator_scans, save_scan
from quality.settings import DatabaseURL, Settings
from quality.shifts import Shifts
from quality.summary.counters import follow_layout
from quality.summary.writer import rebuild, summarise_all, summarise_once
from tests.conftest import database_for, execute
from tests.test_cli import quality

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from figures_check import (  # noqa: E402 - after the path it is found on
    _INSERT,
    Result,
    compare_all,
    compare_counters,
    compare_export,
    compare_report,
    compare_totals,
    latest_ids,
    piece_codes,
    raw_row,
    raw_scans,
    saves,
)

BUCHAREST = Shifts((6 * 60, 14 * 60, 22 * 60), ZoneInfo("Europe/Bucharest"))


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def plant(settings: Settings, zone: str = "Europe/Bucharest", starts: tuple[int, ...] = (360, 840, 1320)
          ) -> Settings:
    return replace(settings, timezone=ZoneInfo(zone), shifts=starts)


async def insert_by_hand(db: Database, rows: list[tuple]) -> None:
    async with db.transaction() as cur:
        await cur.executemany(_INSERT, rows)


def assert_exact(result: Result) -> None:
    assert result.compared > 0
    assert result.mismatches == [], "\n".join(result.mismatches)


def test_the_differential_check_finds_every_figure_exact(db_url: DatabaseURL) -> None:
    """bench/figures_check.py as anyone runs it, at a small size."""
    done = subprocess.run(
        [sys.executable, str(BENCH / "figures_check.py"), "--scans", "240", "--filters", "120",
         "--reports", "16", "--exports", "12", "--seed", "3", "--database-url", db_url.as_url()],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"figures compared: ([\d,]+); mismatches: 0;", done.stdout)
    assert found and int(found[1].replace(",", "")) > 500, done.stdout


async def test_simultaneous_saves_of_the_same_pieces_agree_in_every_view(
        db: Database, db_url: DatabaseURL, settings: Settings, make_user: Any) -> None:
    make_user("worker", "operator")
    other = database_for(db_url, maxsize=8, timeout=30)
    try:
        pieces = piece_codes(60)
        await saves([db, other], random.Random(5), pieces, 4 * len(pieces), BUCHAREST)
    finally:
        await other.close()
    (rows,) = await execute(db_url, "SELECT v.piece_code, v.last_scan_id, v.approved, MAX(s.id),"
                            " (SELECT approved FROM scans WHERE id = MAX(s.id)) FROM piece_verdicts v"
                            " JOIN scans s ON s.station = v.station AND s.piece_code = v.piece_code"
                            " GROUP BY v.station, v.piece_code")
    assert len(rows) == 60
    assert all(last == highest and approved == newest for _, last, approved, highest, newest in rows)
    scans = await raw_scans(db)
    by_piece: dict[str, list] = {}
    for scan in scans:
        by_piece.setdefault(scan.piece, []).append(scan.at)
    assert all(times == sorted(times) for times in by_piece.values())  # id order is time order
    assert sum(scan.rescan for scan in scans) == len(scans) - 60
    result = Result()
    latest = latest_ids(scans)
    for summarised in (False, True):
        if summarised:
            await summarise_all(db, BUCHAREST)
        for order in sorted({scan.order for scan in scans}):
            await compare_totals(db, plant(settings), {"order": order}, scans, latest, result)
            await compare_report(db, plant(settings), {"order": order}, scans, latest, result)
            await compare_export(db, plant(settings), {"order": order}, scans, result)
        for piece in pieces[::7]:
            await compare_totals(db, plant(settings), {"piece": piece}, scans, latest, result)
        await compare_counters(db, plant(settings), scans, latest, result)
    assert_exact(result)


async def test_a_transaction_committing_late_is_summarised_after_it_commits(
        db: Database, db_url: DatabaseURL, settings: Settings, make_user: Any) -> None:
    """Scans inserted in a transaction that stays open while later saves are
    summarised (long after the old 30-second assumption, by any clock) are in
    the summaries once it commits."""
    make_user("worker", "operator")
    rng = random.Random(7)
    pieces = piece_codes(40)
    late = await asyncmy.connect(**db_url.connect_kwargs())
    try:
        async with late.cursor() as cur:
            await cur.execute("BEGIN")
            await cur.executemany(_INSERT, [raw_row(rng, pieces[n], now() - timedelta(hours=3), 1)
                                            for n in range(30)])
        await saves([db], rng, pieces, 40, BUCHAREST)
        assert await summarise_all(db, BUCHAREST) == 40
        await late.commit()
    finally:
        late.close()
    assert await summarise_all(db, BUCHAREST) == 30
    (summed,) = await execute(db_url, "SELECT SUM(scans) FROM scan_hourly")
    assert summed == [(70,)]
    scans = await raw_scans(db)
    result = Result()
    for params in ({}, {"station": "quality"}, {"rescans": "1"}, {"operator": "OP02", "rejected": "1"}):
        await compare_totals(db, plant(settings), params, scans, latest_ids(scans), result)
    await compare_report(db, plant(settings), {}, scans, latest_ids(scans), result)
    assert_exact(result)


async def test_a_scan_dated_in_the_future_does_not_stall_the_summaries(
        db: Database, db_url: DatabaseURL, make_user: Any) -> None:
    make_user("worker", "operator")
    rng = random.Random(9)
    await insert_by_hand(db, [raw_row(rng, "CP00000001-0001", now() + timedelta(days=3), 1)])
    await saves([db], rng, piece_codes(10), 10, BUCHAREST)
    assert await summarise_all(db, BUCHAREST) == 11
    (left,) = await execute(db_url, "SELECT COUNT(*) FROM scan_queue")
    assert left == [(0,)]


async def test_scans_stored_by_hand_count_each_piece_once_at_its_latest_scan(
        db: Database, db_url: DatabaseURL, settings: Settings, make_user: Any) -> None:
    """Re-scans inserted as first scans (is_rescan 0), for pieces saved
    before and for new ones: the summaries, the station's counts, the piece's
    verdict and the re-scan flags all follow the one definition."""
    make_user("worker", "operator")
    rng = random.Random(11)
    pieces = piece_codes(40)
    await saves([db], rng, pieces[:20], 20, BUCHAREST)
    await summarise_all(db, BUCHAREST)
    await insert_by_hand(db, [raw_row(rng, pieces[n % 40], now() - timedelta(minutes=5), 1)
                              for n in range(80)])
    await summarise_all(db, BUCHAREST)
    scans = await raw_scans(db)
    (flags,) = await execute(db_url, "SELECT COUNT(*) FROM scans s WHERE is_rescan <> EXISTS (SELECT 1"
                             " FROM scans p WHERE p.piece_code = s.piece_code AND p.station = s.station"
                             " AND p.id < s.id)")
    assert flags == [(0,)]
    (verdicts,) = await execute(db_url, "SELECT COUNT(*) FROM piece_verdicts v WHERE v.last_scan_id <>"
                                " (SELECT MAX(id) FROM scans s WHERE s.piece_code = v.piece_code"
                                " AND s.station = v.station)")
    assert verdicts == [(0,)]
    result = Result()
    latest = latest_ids(scans)
    for params in ({}, {"rescans": "1"}, {"order": pieces[0][:10]}, {"piece": pieces[3]}, {"defect": "000"}):
        await compare_totals(db, plant(settings), params, scans, latest, result)
    await compare_report(db, plant(settings), {}, scans, latest, result)
    await compare_counters(db, plant(settings), scans, latest, result)
    assert_exact(result)


async def test_a_rebuild_while_the_app_saves_loses_and_doubles_nothing(
        db: Database, db_url: DatabaseURL, settings: Settings, make_user: Any) -> None:
    make_user("worker", "operator")
    rng = random.Random(13)
    pieces = piece_codes(80)
    await insert_by_hand(db, [raw_row(rng, rng.choice(pieces), now() - timedelta(days=2) * rng.random(), 1)
                              for _ in range(300)])
    # Counters and summaries broken by hand, as a DBA's fix might leave them.
    async with db.transaction() as cur:
        await cur.execute("UPDATE order_counts SET approved = approved + 3")
        await cur.execute("UPDATE scan_hourly SET scans = scans + 5")
        await cur.execute("UPDATE scans SET is_rescan = NOT is_rescan WHERE id % 7 = 0")
    other = database_for(db_url, maxsize=8, timeout=30)
    try:
        rebuilding = asyncio.create_task(rebuild(db, BUCHAREST))
        await saves([db, other], rng, pieces, 160, BUCHAREST)
        rebuilt = await rebuilding
        await saves([other], rng, pieces, 16, BUCHAREST)
    finally:
        await other.close()
    assert rebuilt.orders > 0 and rebuilt.scans >= 300
    await summarise_all(db, BUCHAREST)
    result = Result()
    await compare_all(db, plant(settings), random.Random(2), 40, 3, 3, result)
    assert_exact(result)


@pytest.mark.parametrize(("zone", "first", "days"), [
    ("UTC", datetime(2026, 5, 4), 3),
    ("Europe/Bucharest", datetime(2026, 3, 27), 4),  # across the spring change
    ("Europe/Bucharest", datetime(2026, 10, 23), 4),  # and the autumn one
    ("Asia/Kolkata", datetime(2026, 5, 4), 3),  # +5:30
    ("Australia/Eucla", datetime(2026, 5, 4), 3),  # +8:45
])
async def test_report_days_and_shifts_are_exact_in_any_zone(
        db: Database, settings: Settings, make_user: Any, zone: str, first: datetime, days: int) -> None:
    """Shifts at whole local hours: in a zone whose offset is not whole hours
    they start inside UTC hours, which the summaries count whole."""
    make_user("worker", "operator")
    rng = random.Random(17)
    pieces = piece_codes(120)
    rows = [raw_row(rng, pieces[n % 120], first + timedelta(minutes=7 * n), 1)
            for n in range(days * 24 * 60 // 7)]
    here = plant(settings, zone, (6 * 60, 14 * 60, 22 * 60))
    await insert_by_hand(db, rows[: len(rows) // 2])
    await summarise_all(db, Shifts.of_plant(here))
    await insert_by_hand(db, rows[len(rows) // 2:])  # queued when the reports are read
    scans = await raw_scans(db)
    latest = latest_ids(scans)
    start, end = first.date(), (first + timedelta(days=days)).date()
    result = Result()
    for params in ({"from": str(start), "to": str(end)}, {"from": f"{start}T05:10", "to": f"{end}T13:50"},
                   {"from": str(start), "to": str(end), "station": "quality", "shift": "3"}):
        await compare_report(db, here, params, scans, latest, result)
        await compare_totals(db, here, params, scans, latest, result)
    await summarise_all(db, Shifts.of_plant(here))
    await compare_report(db, here, {"from": str(start), "to": str(end)}, scans, latest, result)
    assert_exact(result)


async def test_the_operator_counter_follows_changed_shift_settings(
        db: Database, settings: Settings, make_user: Any) -> None:
    """Shifts and zone changed between restarts, and changed back: the
    counter counts this shift's scans under the settings in force."""
    make_user("worker", "operator")
    layouts = [plant(settings, "UTC", (0, 12 * 60)), plant(settings, "Asia/Kolkata", (6 * 60, 18 * 60)),
               plant(settings, "UTC", (0, 12 * 60))]
    for n, layout in enumerate(layouts):
        shifts = Shifts.of_plant(layout)
        await follow_layout(db, shifts)  # as the app's start does
        for k in range(3 + n):
            scan = ScanInput(secrets.token_bytes(16), "OP07", f"CP00000007-{10 * n + k:04d}", "CP00000007",
                             "OC01", "OC02", "000")
            saved = await save_scan(db, "quality", scan, 1, shifts)
        scans = await raw_scans(db)
        start, end = shifts.around(now())
        stored = sum(1 for s in scans if start <= s.at < end)
        assert saved.operator_scans == stored
        assert await operator_scans(db, "quality", "OP07", (start, end)) == stored


async def test_a_total_never_counts_a_piece_twice_while_re_scans_arrive(
        db: Database, db_url: DatabaseURL, settings: Settings, make_user: Any) -> None:
    """A writer re-scans the same pieces with other verdicts and folds them into
    the summaries while totals are read: every reading's pieces equal the
    pieces' verdicts counted in piece_verdicts at the same moment."""
    make_user("worker", "operator")
    rng = random.Random(19)
    pieces = piece_codes(50)
    await saves([db], rng, pieces, 50, BUCHAREST)
    await summarise_all(db, BUCHAREST)
    writer_db = database_for(db_url, maxsize=4, timeout=30)
    everything = read_filter({}, plant(settings)).filter
    rejected = read_filter({"rejected": "1"}, plant(settings)).filter
    readings: list[tuple[int, int, int, int]] = []

    async def write() -> None:
        for _ in range(150):  # a few re-scans, folded at once: the reads meet the summariser often
            await saves([writer_db], rng, pieces, 4, BUCHAREST)
            await summarise_once(writer_db, BUCHAREST)

    async def read() -> None:
        while not writing.done():
            async with db.bulk.transaction(snapshot=True) as cur:
                pieces_shown = (await totals(cur, everything)).pieces
                rejected_shown = (await totals(cur, rejected)).rejected
                await cur.execute("SELECT COUNT(*), COALESCE(SUM(NOT approved), 0) FROM piece_verdicts")
                counted, rejected_counted = await cur.fetchone()
            readings.append((pieces_shown, rejected_shown, counted, int(rejected_counted)))

    try:
        writing = asyncio.create_task(write())
        await asyncio.gather(writing, read(), read(), read())
    finally:
        await writer_db.close()
    assert len(readings) > 50
    assert [reading for reading in readings if reading[:2] != reading[2:]] == []


def test_summary_rebuild_command_says_what_it_set_right(db_url: DatabaseURL, make_user: Any) -> None:
    make_user("worker", "operator")  # user 1, who stored the scans
    async def break_counts() -> None:
        rng = random.Random(23)
        db = database_for(db_url)
        try:
            await insert_by_hand(db, [raw_row(rng, f"CP00000002-{n % 9:04d}", now(), 1) for n in range(20)])
            async with db.transaction() as cur:
                await cur.execute("DELETE FROM order_counts")
        finally:
            await db.close()

    asyncio.run(break_counts())
    done = quality(db_url, "summary", "rebuild")
    assert done.returncode == 0, done.stderr
    assert "summaries rebuilt from 20 scans; set right the verdicts of 9 pieces and the counts of" \
        in done.stderr
    (rows,) = asyncio.run(execute(db_url, "SELECT SUM(approved + rejected) FROM order_counts"))
    assert rows == [(9,)]
