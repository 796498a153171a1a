"""Keeping the summary tables: the background task (`Summariser`) that folds
queued scans into every table, a batch per transaction, taking turns with the
other processes through a row lock; and scan_shifts, kept for one layout of
shifts and rebuilt from scan_hourly when the plant's shifts change."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

from quality.clock import utc_now
from quality.db import Cursor, Database, DatabaseUnavailable, TransientError
from quality.shifts import Shifts
from quality.summary import counters
from quality.summary.tables import QUEUED, ROLLUPS, SHIFTS, Fact, Rollup, deltas, layout_of, shift_hour

log = logging.getLogger(__name__)

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


async def summarise_once(db: Database, shifts: Shifts) -> int:
    """Fold the next batch of queued scans into every summary table, scan_shifts
    by these shifts; returns how many."""
    try:
        done = await _summarise_batch(db, shifts)
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


async def _summarise_batch(db: Database, shifts: Shifts) -> tuple[int, bool] | None:
    """One batch of queued scans folded in and taken off the queue: how many,
    and whether scan_shifts was rebuilt; None when another process is at it.
    The queue holds whatever has committed, in any order (migration 0012), so
    nothing here waits for a scan to settle."""
    async with db.transaction() as cur:
        # scan_shift_state comes along, so an idle turn stays two statements.
        await cur.execute("SELECT h.layout, h.built_at FROM scan_summary_state s"
                          " LEFT JOIN scan_shift_state h ON h.id = 1"
                          " WHERE s.id = 1 FOR UPDATE SKIP LOCKED")
        found = await cur.fetchone()
        if found is None:  # another process is at it
            return None
        await cur.execute("SELECT scan_id FROM scan_queue ORDER BY scan_id LIMIT %s", (BATCH,))
        queued = [scan_id for (scan_id,) in await cur.fetchall()]
        changes: dict[Fact, list[int]] = {}
        if queued:
            await counters.adopt(cur, queued)
            marks = ", ".join(["%s"] * len(queued))
            await cur.execute(f"{QUEUED} WHERE c.scan_id IN ({marks})", queued)
            changes, moved = deltas(list(await cur.fetchall()))
            for rollup in ROLLUPS:
                await _write(cur, rollup, changes.items())
            await _move_pieces(cur, moved)
            # One primary-key delete each: a statement over a range (or the
            # whole of a small queue) would wait for a transaction still
            # holding queued scans of its own, the case the queue is for.
            await cur.executemany("DELETE FROM scan_queue WHERE scan_id = %s", [(n,) for n in queued])
        held = ShiftState(*found) if found[0] is not None else None
        rebuilt = await _keep_shifts(cur, shifts, held, changes)
    return len(queued), rebuilt


async def _move_pieces(cur: Cursor, moved: dict[tuple[str, str], int]) -> None:
    """Record each piece's new latest folded scan."""
    rows = [(station, piece, scan_id) for (station, piece), scan_id in moved.items()]
    for first in range(0, len(rows), BATCH):
        await cur.executemany(
            "INSERT INTO summary_pieces (station, piece_code, scan_id) VALUES (%s, %s, %s)"
            " ON DUPLICATE KEY UPDATE scan_id = VALUES(scan_id)", rows[first:first + BATCH])


class ShiftState(NamedTuple):
    layout: str  # the shifts scan_shifts holds, kept with the other summary tables
    built_at: datetime


async def _keep_shifts(cur: Cursor, shifts: Shifts, held: ShiftState | None,
                       changes: dict[Fact, list[int]]) -> bool:
    """Add a batch to scan_shifts when it holds these shifts; otherwise rebuild
    it for them, unless another layout was built a moment ago; returns whether
    it rebuilt."""
    layout = layout_of(shifts)
    if held is not None and held.layout == layout:
        if changes:
            await _write(cur, SHIFTS, ((fact._replace(hour=shift_hour(shifts, fact.hour)), change)
                                       for fact, change in changes.items()))
        return False
    if held is not None and held.built_at > utc_now() - REBUILD_GAP:
        return False  # the reports read scan_hourly meanwhile
    await _rebuild_shifts(cur, shifts)
    log.info("scan_shifts rebuilt for the shifts %s (it held %s)", layout,
             "nothing" if held is None else held.layout)
    return True


async def _rebuild_shifts(cur: Cursor, shifts: Shifts) -> None:
    """scan_shifts anew from scan_hourly, a month of hours at a time."""
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
        " built_at = VALUES(built_at)", (layout_of(shifts), 0, utc_now()))


async def summarise_all(db: Database, shifts: Shifts,
                        progress: Callable[[int], None] | None = None) -> int:
    """Fold every queued scan (demo data, a rebuild, tests); `progress` is told
    each batch's count."""
    total = 0
    while done := await summarise_once(db, shifts):
        total += done
        if progress:
            progress(done)
    return total


class Summariser:
    """The process's background task keeping the summary tables current (and,
    first, the operator counters under this process's shift settings)."""

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
        followed = False
        while True:
            try:
                if not followed:
                    # The operator counters follow a change of shift settings (issue 22).
                    if await counters.follow_layout(self.db, self.shifts):
                        log.info("operator counters recount under the shifts %s", layout_of(self.shifts))
                    followed = True
                if await summarise_once(self.db, self.shifts) == BATCH:
                    continue  # catching up: go on at once
            except DatabaseUnavailable as exc:
                log.warning("scan summary: %s", exc)
            except Exception:
                log.exception("scan summary failed; retrying")
            await asyncio.sleep(self.interval)



class Rebuilt(NamedTuple):
    pieces: int  # pieces whose verdict or re-scan flags were set right
    orders: int  # orders whose counts were set right
    scans: int  # scans folded into the summaries anew


async def rebuild(db: Database, shifts: Shifts,
                  progress: Callable[[str, int, int], None] | None = None) -> Rebuilt:
    """Everything a save or the summariser keeps, derived again from `scans`
    (`quality summary rebuild`), safe while the app runs: the counters are
    compared and settled piece by piece under the locks a save takes
    (quality.summary.counters); the summary tables are emptied and every scan
    queued again in one transaction, under the summariser's row lock, then
    folded a batch at a time (the app's summarisers help). Meanwhile each
    scan is in the summaries or in the queue, so the pages stay exact: while
    the queue is long they read the scans instead. `progress` is told the
    step ("pieces" or "scans"), how far it is, and how far it goes."""
    settled = await counters.settle_all(
        db, None if progress is None else lambda done, total: progress("pieces", done, total))
    async with db.transaction() as cur:
        await cur.execute("SELECT 1 FROM scan_summary_state WHERE id = 1 FOR UPDATE")
        await cur.fetchall()
        for rollup in (*ROLLUPS, SHIFTS):
            await cur.execute(f"DELETE FROM {rollup.table}")
        await cur.execute("DELETE FROM summary_pieces")
        await cur.execute("DELETE FROM scan_shift_state")
        await cur.execute("INSERT IGNORE INTO scan_queue (scan_id) SELECT id FROM scans")
        await cur.execute("SELECT COUNT(*) FROM scan_queue")
        (queued,) = await cur.fetchone()
    while True:
        # The app's summarisers may take turns at it: progress is what left the queue.
        done = await summarise_once(db, shifts)
        async with db.transaction() as cur:
            await cur.execute("SELECT COUNT(*) FROM scan_queue")
            (left,) = await cur.fetchone()
        if progress:
            progress("scans", max(0, queued - left), queued)
        if left == 0 or 0 < done < BATCH:  # drained (new saves' scans follow as usual)
            return Rebuilt(*settled, queued)
        if done == 0:
            await asyncio.sleep(0.2)  # another process has the turn
