"""Hourly scan counts (table scan_summary, migration 0005) and the one way the
totals and reports aggregate scans.

A background task in each process (`Summariser`) folds new scans into
scan_summary in id order, a batch per transaction; the processes take turns
through a row lock they skip when it is taken. It reads a scan only once it is
`LAG` old: a scan's transaction is over by then (pool wait and statement time
are bounded far below it), so no lower id can still appear.

scan_hourly holds the same figures without operator and order: a few rows an
hour, read when neither is filtered or grouped by.

`aggregate` answers for a filter: the summary's rows for the whole hours it
covers, plus the scans not summarised yet (the last `LAG` seconds) and the
partial hours at the ends of each range read from the scans themselves.
Filters the summary cannot answer (piece, checker, re-scans) read the scans.
Either way the figures are the same: scans, and pieces by their latest scan.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from quality.clock import utc_now
from quality.db import Cursor, Database, DatabaseUnavailable
from quality.lists.filters import ScanFilter

log = logging.getLogger(__name__)

EPOCH = datetime(2000, 1, 1)
HOUR = timedelta(hours=1)
LAG = timedelta(seconds=30)
BATCH = 5000
TAIL_LIMIT = 20_000  # more unsummarised scans than this (catching up): read the scans instead
APPROVED = "000"

Key = tuple[int, str, str, str, str, bool]  # hour, station, operator, order, defect, re-scan
_KEY_INDEX = {None: None, "hour": 0, "operator": 2, "order": 3, "defect": 4}
_SUMMARY_GROUP = {None: "NULL", "hour": "hour", "operator": "operator_code", "order": "order_code",
                  "defect": "defect_code"}
_SCANS_GROUP = {None: "NULL", "hour": "TIMESTAMPDIFF(HOUR, '2000-01-01 00:00:00', s.created_at)",
                "operator": "s.operator_code", "order": "s.order_code", "defect": "s.defect_code"}
_COLUMNS = ("s.id, s.station, s.created_at, s.operator_code, s.order_code, s.defect_code, s.approved,"
            " s.is_rescan")


@dataclass
class Figures:
    scans: int = 0
    approved: int = 0  # pieces whose latest scan is here, by its verdict
    rejected: int = 0
    defects: Counter[str] = field(default_factory=Counter)  # rejected scans per defect code

    @property
    def pieces(self) -> int:
        return self.approved + self.rejected

    @property
    def rejection_rate(self) -> float | None:
        return self.rejected / self.pieces if self.pieces else None

    def top_defects(self, count: int = 3) -> list[tuple[str, int]]:
        return self.defects.most_common(count)

    def add(self, defect: str, scans: int, approved: int, rejected: int) -> None:
        self.scans += int(scans)
        self.approved += int(approved)
        self.rejected += int(rejected)
        if defect != APPROVED and scans:
            self.defects[defect] += int(scans)

    def merge(self, other: Figures) -> None:
        self.scans += other.scans
        self.approved += other.approved
        self.rejected += other.rejected
        self.defects.update(other.defects)


def hour_of(at: datetime) -> int:
    return int((at - EPOCH) // HOUR)


def hour_start(hour: int) -> datetime:
    return EPOCH + HOUR * hour


# -- keeping the summary ---------------------------------------------------------


async def _deltas(cur: Cursor, rows: list[tuple]) -> dict[Key, list[int]]:
    """What these scans change in the summary: each adds a scan and makes its
    piece's latest scan its own; a re-scan takes the piece from the scan before."""
    deltas: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0])
    rescans = [row[0] for row in rows if row[7]]
    previous: dict[int, tuple] = {}
    if rescans:
        await cur.execute(
            f"SELECT s.id, {_COLUMNS.replace('s.', 'p.')} FROM scans s JOIN scans p ON p.id = ("
            " SELECT MAX(q.id) FROM scans q WHERE q.station = s.station AND q.piece_code = s.piece_code"
            f" AND q.id < s.id) WHERE s.id IN ({', '.join(['%s'] * len(rescans))})", rescans)
        previous = {scan_id: tuple(rest) for scan_id, *rest in await cur.fetchall()}
    for row in rows:
        change = deltas[_key(row)]
        change[0] += 1
        change[1 if row[6] else 2] += 1
        before = previous.get(row[0])
        if before is not None:
            deltas[_key(before)][1 if before[6] else 2] -= 1
    return deltas


def _key(row: tuple) -> Key:
    _, station, created_at, operator, order, defect, _, rescan = row
    return hour_of(created_at), station, operator, order, defect, bool(rescan)


async def summarise_once(db: Database, now: datetime | None = None) -> int:
    """Fold the next batch of settled scans into the summary; returns how many."""
    cutoff = (now or utc_now()) - LAG
    async with db.transaction() as cur:
        await cur.execute("SELECT last_scan_id FROM scan_summary_state WHERE id = 1 FOR UPDATE SKIP LOCKED")
        found = await cur.fetchone()
        if found is None:  # another process is at it
            return 0
        await cur.execute(f"SELECT {_COLUMNS} FROM scans s WHERE s.id > %s ORDER BY s.id LIMIT %s",
                          (found[0], BATCH))
        rows = []
        for row in await cur.fetchall():
            if row[2] >= cutoff:
                break
            rows.append(row)
        if not rows:
            return 0
        deltas = await _deltas(cur, rows)
        hourly: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
        for (hour, station, _, _, defect, rescan), change in deltas.items():
            total = hourly[hour, station, defect, rescan]
            for i, value in enumerate(change):
                total[i] += value
        for table, columns, changes in (
                ("scan_summary", "hour, station, operator_code, order_code, defect_code, is_rescan", deltas),
                ("scan_hourly", "hour, station, defect_code, is_rescan", hourly)):
            await cur.executemany(
                f"INSERT INTO {table} ({columns}, scans, approved_pieces, rejected_pieces)"
                f" VALUES ({', '.join(['%s'] * (columns.count(',') + 4))})"
                " ON DUPLICATE KEY UPDATE scans = scans + VALUES(scans),"
                " approved_pieces = approved_pieces + VALUES(approved_pieces),"
                " rejected_pieces = rejected_pieces + VALUES(rejected_pieces)",
                [(*key, *change) for key, change in changes.items()])
        await cur.execute("UPDATE scan_summary_state SET last_scan_id = %s WHERE id = 1", (rows[-1][0],))
    return len(rows)


async def summarise_all(db: Database, now: datetime | None = None) -> int:
    """Catch up completely (demo data, tests)."""
    total = 0
    while done := await summarise_once(db, now):
        total += done
    return total


class Summariser:
    """The process's background task keeping scan_summary current."""

    def __init__(self, db: Database, interval: float = 1.0) -> None:
        self.db = db
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
                if await summarise_once(self.db) == BATCH:
                    continue  # catching up: go on at once
            except DatabaseUnavailable as exc:
                log.warning("scan summary: %s", exc)
            except Exception:
                log.exception("scan summary failed; retrying")
            await asyncio.sleep(self.interval)


# -- reading it --------------------------------------------------------------------

Span = tuple[datetime | None, datetime | None]


def _split(spans: list[Span]) -> tuple[list[tuple[int | None, int | None]], list[Span]]:
    """Each time range as whole hours (for the summary) and the partial hours at its ends."""
    hours: list[tuple[int | None, int | None]] = []
    edges: list[Span] = []
    for start, end in spans:
        first = None if start is None else hour_of(start) + (hour_start(hour_of(start)) < start)
        last = None if end is None else hour_of(end)
        if first is not None and last is not None and first >= last:
            edges.append((start, end))
            continue
        hours.append((first, last))
        if start is not None and first is not None and hour_start(first) > start:
            edges.append((start, hour_start(first)))
        if end is not None and last is not None and hour_start(last) < end:
            edges.append((hour_start(last), end))
    return hours, edges


def _in_hours(hour: int, ranges: list[tuple[int | None, int | None]]) -> bool:
    return any((lo is None or hour >= lo) and (hi is None or hour < hi) for lo, hi in ranges)


async def aggregate(cur: Cursor, scan_filter: ScanFilter, group: str | None = None,
                    now: datetime | None = None, *, defects: bool = True,
                    within: Sequence[str] | None = None) -> dict[Any, Figures]:
    """Figures for the filtered scans, per `group` (None, hour, operator, order,
    defect); without `defects`, the rejected scans per defect are left out
    (cheaper: no grouping by defect); `within` keeps only these groups."""
    now = now or utc_now()
    spans = scan_filter.time_spans(now)
    only = Within(group, tuple(within)) if within is not None else None
    if not scan_filter.summarisable:
        return await _from_scans(cur, scan_filter, group, spans, defects, only)
    for _ in range(3):
        watermark = await _watermark(cur)
        await cur.execute(f"SELECT {_COLUMNS} FROM scans s WHERE s.id > %s ORDER BY s.id LIMIT %s",
                          (watermark, TAIL_LIMIT + 1))
        tail = await cur.fetchall()
        if len(tail) > TAIL_LIMIT:
            break
        hours, edges = _split(spans if spans is not None else [(None, None)])
        result = await _from_summary(cur, scan_filter, group, hours, defects, only)
        if await _watermark(cur) != watermark:
            continue  # the summary moved on while we read it: read again
        for key, change in (await _deltas(cur, list(tail))).items():
            index = _KEY_INDEX[group]
            name = None if index is None else key[index]
            if (_in_hours(key[0], hours) and scan_filter.matches_summary(key)
                    and (only is None or name in only.values)):
                _figures(result, name).add(key[4] if defects else APPROVED, *change)
        if edges:
            for name, figures in (await _from_scans(cur, scan_filter, group, edges, defects, only)).items():
                _figures(result, name).merge(figures)
        return result
    return await _from_scans(cur, scan_filter, group, spans, defects, only)


@dataclass(frozen=True)
class Within:
    """Only these values of the group column."""

    group: str | None
    values: tuple[str, ...]

    def condition(self, column: str) -> tuple[str, list[Any]]:
        if not self.values:
            return " AND FALSE", []
        return f" AND {column} IN ({', '.join(['%s'] * len(self.values))})", list(self.values)


def _figures(result: dict[Any, Figures], name: Any) -> Figures:
    if name not in result:
        result[name] = Figures()
    return result[name]


async def _watermark(cur: Cursor) -> int:
    await cur.execute("SELECT last_scan_id FROM scan_summary_state WHERE id = 1")
    found = await cur.fetchone()
    return int(found[0]) if found else 0


async def _from_summary(cur: Cursor, scan_filter: ScanFilter, group: str | None,
                        hours: list[tuple[int | None, int | None]], defects: bool,
                        only: Within | None) -> dict[Any, Figures]:
    where, params = scan_filter.summary_conditions()
    if only is not None:
        condition, values = only.condition(_SUMMARY_GROUP[group])
        where += condition
        params += values
    ranges = []
    for lo, hi in hours:
        parts = [*(["hour >= %s"] if lo is not None else []), *(["hour < %s"] if hi is not None else [])]
        ranges.append("(" + (" AND ".join(parts) or "TRUE") + ")")
        params += [bound for bound in (lo, hi) if bound is not None]
    column, defect, grouping = _grouping(_SUMMARY_GROUP[group], "defect_code", defects)
    # Without operators and orders, the few rows of scan_hourly hold the same figures.
    detailed = scan_filter.operator or scan_filter.order or group in ("operator", "order")
    table = "scan_summary" if detailed else "scan_hourly"
    await cur.execute(
        f"SELECT {column}, {defect}, SUM(scans), SUM(approved_pieces), SUM(rejected_pieces)"
        f" FROM {table} WHERE {where} AND ({' OR '.join(ranges) or 'FALSE'}){grouping}", params)
    return _collect(await cur.fetchall())


def _grouping(column: str, defect: str, defects: bool) -> tuple[str, str, str]:
    """The group and defect columns to select, and the GROUP BY clause."""
    if not defects:
        defect = f"'{APPROVED}'"
    keys = [key for key in (column, defect) if key not in ("NULL", f"'{APPROVED}'")]
    return column, defect, (" GROUP BY " + ", ".join(keys)) if keys else ""


async def _from_scans(cur: Cursor, scan_filter: ScanFilter, group: str | None,
                      spans: list[Span] | None, defects: bool, only: Within | None) -> dict[Any, Figures]:
    where, params = scan_filter.conditions(spans)
    if only is not None:
        condition, values = only.condition(_SCANS_GROUP[group])
        where += condition
        params += values
    column, defect, grouping = _grouping(_SCANS_GROUP[group], "s.defect_code", defects)
    await cur.execute(
        f"SELECT {column}, {defect}, COUNT(*),"
        " COALESCE(SUM(v.last_scan_id IS NOT NULL AND s.approved), 0),"
        " COALESCE(SUM(v.last_scan_id IS NOT NULL AND NOT s.approved), 0)"
        " FROM scans s LEFT JOIN piece_verdicts v ON v.station = s.station"
        " AND v.piece_code = s.piece_code AND v.last_scan_id = s.id"
        f" WHERE {where}{grouping}", params)
    return _collect(await cur.fetchall())


def _collect(rows: Iterable[tuple]) -> dict[Any, Figures]:
    result: dict[Any, Figures] = {}
    for name, defect, scans, approved, rejected in rows:
        if scans:  # an aggregate with no GROUP BY answers one row even for no scans
            _figures(result, name).add(defect, scans, approved or 0, rejected or 0)
    return result
