"""Keeping the summary tables: the background task (`Summariser`) that folds
settled scans into every table, a batch per transaction, taking turns with the
other processes through a row lock; and scan_shifts, kept for one layout of
shifts and rebuilt from scan_hourly when the plant's shifts change."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

from quality.clock import utc_now
from quality.db import Cursor, Database, DatabaseUnavailable, TransientError
from quality.shifts import Shifts
from quality.summary.tables import ROLLUPS, SCAN_COLUMNS, SHIFTS, Fact, Rollup, deltas, layout_of, shift_hour

log = logging.getLogger(__name__)

LAG = timedelta(seconds=30)
BATCH = 5000
# Processes whose shift settings differ (a rolling change of them, or a
# misconfigured host) take turns at rebuilding scan_shifts, at most this often.
REBUILD_GAP = timedelta(seconds=60)


async def _write(cur: Cursor, rollup: Rollup, facts: Iterable[tuple[Fact, list[int]]]) -> None:
    changes: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for fact, change in facts:
        for key in rollup.keys(fact):
            total = changes[key]
            for i, value in enumerate(change):
                total[i] += value
    await _add(cur, rollup, [(*key, *change) for key, change in changes.items()])


async def _add(cur: Cursor, rollup: Rollup, rows: list[tuple]) -> None:
    """Add (period, columns..., scans, approved, rejected) rows to a summary table."""
    columns = ", ".join((rollup.period, *rollup.columns))
    for first in range(0, len(rows), BATCH):
        await cur.executemany(
            f"INSERT INTO {rollup.table} ({columns}, scans, approved_pieces, rejected_pieces)"
            f" VALUES ({', '.join(['%s'] * (len(rollup.columns) + 4))})"
            " ON DUPLICATE KEY UPDATE scans = scans + VALUES(scans),"
            " approved_pieces = approved_pieces + VALUES(approved_pieces),"
            " rejected_pieces = rejected_pieces + VALUES(rejected_pieces)",
            rows[first:first + BATCH])


async def summarise_once(db: Database, shifts: Shifts, now: datetime | None = None) -> int:
    """Fold the next batch of settled scans into every summary table, scan_shifts
    by these shifts; returns how many."""
    try:
        done = await _summarise_batch(db, shifts, (now or utc_now()) - LAG)
    except TransientError as exc:
        if not exc.contention:
            raise
        # SKIP LOCKED keeps processes apart on one server only: on Galera each
        # node locks its own copy of the row, and the loser learns at COMMIT
        # (a certification failure) that another process had it.
        log.debug("scan summary: another process had the batch (%s)", exc)
        return 0
    if done is None:
        return 0
    count, rebuilt = done
    if rebuilt:
        # Filled in one transaction, the table can keep the row count the server
        # estimated while it was nearly empty, and a report's many shifts are
        # then read by a full scan; ANALYZE ends a transaction, so after it.
        async with db.transaction() as cur:
            await cur.execute("ANALYZE TABLE scan_shifts")
            await cur.fetchall()
    return count


async def _summarise_batch(db: Database, shifts: Shifts, cutoff: datetime) -> tuple[int, bool] | None:
    """One batch of scans older than `cutoff` folded in: how many, and whether
    scan_shifts was rebuilt; None when another process is at it."""
    async with db.transaction() as cur:
        # scan_shift_state comes along, so an idle turn stays two statements.
        await cur.execute("SELECT s.last_scan_id, h.layout, h.last_scan_id, h.built_at"
                          " FROM scan_summary_state s LEFT JOIN scan_shift_state h ON h.id = 1"
                          " WHERE s.id = 1 FOR UPDATE SKIP LOCKED")
        found = await cur.fetchone()
        if found is None:  # another process is at it
            return None
        await cur.execute(f"SELECT {SCAN_COLUMNS} FROM scans s WHERE s.id > %s ORDER BY s.id LIMIT %s",
                          (found[0], BATCH))
        rows = []
        for row in await cur.fetchall():
            if row[2] >= cutoff:
                break
            rows.append(row)
        changes = await deltas(cur, rows) if rows else {}
        for rollup in ROLLUPS if rows else ():
            await _write(cur, rollup, changes.items())
        summarised = rows[-1][0] if rows else found[0]
        if rows:
            await cur.execute("UPDATE scan_summary_state SET last_scan_id = %s WHERE id = 1", (summarised,))
        held = ShiftState(*found[1:]) if found[1] is not None else None
        rebuilt = await _keep_shifts(cur, shifts, held, changes, found[0], summarised)
    return len(rows), rebuilt


class ShiftState(NamedTuple):
    layout: str  # the shifts scan_shifts holds
    last_scan_id: int  # up to this scan
    built_at: datetime


async def _keep_shifts(cur: Cursor, shifts: Shifts, held: ShiftState | None, changes: dict[Fact, list[int]],
                       before: int, summarised: int) -> bool:
    """Add a batch to scan_shifts when it holds these shifts up to `before`;
    otherwise rebuild it for them, unless another layout was built a moment
    ago; returns whether it rebuilt."""
    layout = layout_of(shifts)
    if held is not None and held.layout == layout and held.last_scan_id == before:
        if changes:
            await _write(cur, SHIFTS, ((fact._replace(hour=shift_hour(shifts, fact.hour)), change)
                                       for fact, change in changes.items()))
            await cur.execute("UPDATE scan_shift_state SET last_scan_id = %s WHERE id = 1", (summarised,))
        return False
    if held is not None and held.built_at > utc_now() - REBUILD_GAP:
        return False  # the reports read scan_hourly meanwhile
    await _rebuild_shifts(cur, shifts, summarised)
    log.info("scan_shifts rebuilt for the shifts %s (it held %s)", layout,
             "nothing" if held is None else f"{held.layout} up to scan {held.last_scan_id}")
    return True


async def _rebuild_shifts(cur: Cursor, shifts: Shifts, summarised: int) -> None:
    """scan_shifts anew from scan_hourly (summarised up to `summarised`), a month of hours at a time."""
    await cur.execute("DELETE FROM scan_shifts")
    await cur.execute("SELECT MIN(hour), MAX(hour) FROM scan_hourly")
    first, last = await cur.fetchone() or (None, None)
    step = 24 * 31
    for start in range(first, last + 1, step) if first is not None else ():
        # A shift split between two reads is added up by the upsert.
        await cur.execute(
            "SELECT hour, station, defect_code, is_rescan, scans, approved_pieces, rejected_pieces"
            " FROM scan_hourly WHERE hour >= %s AND hour < %s", (start, start + step))
        totals: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
        for hour, station, defect, rescan, *change in await cur.fetchall():
            total = totals[shift_hour(shifts, hour), station, defect, rescan]
            for i, value in enumerate(change):
                total[i] += value
        await _add(cur, SHIFTS, [(*key, *total) for key, total in totals.items()])
    await cur.execute(
        "INSERT INTO scan_shift_state (id, layout, last_scan_id, built_at) VALUES (1, %s, %s, %s)"
        " ON DUPLICATE KEY UPDATE layout = VALUES(layout), last_scan_id = VALUES(last_scan_id),"
        " built_at = VALUES(built_at)", (layout_of(shifts), summarised, utc_now()))


async def summarise_all(db: Database, shifts: Shifts, now: datetime | None = None) -> int:
    """Catch up completely (demo data, tests)."""
    total = 0
    while done := await summarise_once(db, shifts, now):
        total += done
    return total


class Summariser:
    """The process's background task keeping the summary tables current."""

    def __init__(self, db: Database, shifts: Shifts, interval: float = 1.0) -> None:
        self.db = db
        self.shifts = shifts
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scan-summariser")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                if await summarise_once(self.db, self.shifts) == BATCH:
                    continue  # catching up: go on at once
            except DatabaseUnavailable as exc:
                log.warning("scan summary: %s", exc)
            except Exception:
                log.exception("scan summary failed; retrying")
            await asyncio.sleep(self.interval)

