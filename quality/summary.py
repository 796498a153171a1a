"""Scan counts kept in summary tables (migrations 0005, 0008) and the one way
the totals and reports aggregate scans.

A background task in each process (`Summariser`) folds new scans into every
summary table in id order, a batch per transaction, up to one watermark; the
processes take turns through a row lock they skip when it is taken. It reads a
scan only once it is `LAG` old: a scan's transaction is over by then (pool wait
and statement time are bounded far below it), so no lower id can still appear.

Each table (a `Rollup`) holds scans, approved and rejected pieces per hour,
shift or UTC day and a few columns, shaped for some questions: the widest is
scan_summary (hour, station, operator, order, defect, re-scan); the report's
days and shifts read scan_shifts (whole shifts) and scan_hourly, its orders and
operators the daily tables, checker totals scan_checker_hourly. Shifts are a
setting, so scan_shifts holds one layout of them (`layout_of`), named in the
database: the summariser keeps it for its own settings and rebuilds it from
scan_hourly when it holds another; a report reads it only when it holds the
report's layout up to the watermark, and scan_hourly otherwise.

`aggregate` answers for a filter from the narrowest hourly table holding the
columns it needs, and the whole UTC days inside its range from a daily one,
plus the scans not summarised yet (the last `LAG` seconds) and the partial
hours at the ends of each range read from the scans themselves. Filters no
table can answer (a piece; a checker with anything but a station) read the
scans. Either way the figures are the same: scans, and pieces by their latest scan.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from operator import itemgetter
from typing import Any, NamedTuple

from quality.clock import utc_now
from quality.db import Cursor, Database, DatabaseUnavailable, TransientError
from quality.lists.filters import ScanFilter, Shifts

log = logging.getLogger(__name__)

EPOCH = datetime(2000, 1, 1)
HOUR = timedelta(hours=1)
LAG = timedelta(seconds=30)
BATCH = 5000
TAIL_LIMIT = 20_000  # more unsummarised scans than this (catching up): read the scans instead
# Processes whose shift settings differ (a rolling change of them, or a
# misconfigured host) take turns at rebuilding scan_shifts, at most this often.
REBUILD_GAP = timedelta(seconds=60)
APPROVED = "000"

_GROUP_COLUMN = {None: None, "hour": "hour", "operator": "operator_code", "order": "order_code",
                 "defect": "defect_code"}
_SCANS_GROUP = {None: "NULL", "hour": "TIMESTAMPDIFF(HOUR, '2000-01-01 00:00:00', s.created_at)",
                "operator": "s.operator_code", "order": "s.order_code", "defect": "s.defect_code"}
_COLUMNS = ("s.id, s.station, s.created_at, s.operator_code, s.order_code, s.defect_code, s.approved,"
            " s.is_rescan, s.checker1_code, s.checker2_code")


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
        # What most_common(count) gives (its heap keeps ties in the same order),
        # in a third of the time for a handful of codes; a report asks ~400 rows.
        return sorted(self.defects.items(), key=itemgetter(1), reverse=True)[:count]

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


# -- the summary tables ----------------------------------------------------------


class Fact(NamedTuple):
    """What the summary tables know of a scan."""

    hour: int
    station: str
    operator_code: str
    order_code: str
    defect_code: str
    is_rescan: bool
    checkers: tuple[str, ...]  # its distinct checker codes (one or two)


def _fact(row: Sequence[Any]) -> Fact:
    _, station, created_at, operator, order, defect, _, rescan, checker1, checker2 = row
    checkers = (checker1,) if checker1 == checker2 else (checker1, checker2)
    return Fact(hour_of(created_at), station, operator, order, defect, bool(rescan), checkers)


@dataclass(frozen=True)
class Rollup:
    """One summary table: scans, approved and rejected pieces per `period` (an
    hour, a UTC day, or a shift by its first hour) and these columns.
    `checker_code` is either checker of a scan: the scan counts once under each
    distinct one."""

    table: str
    columns: tuple[str, ...]
    period: str = "hour"
    ordered: tuple[str, str] | None = None  # a group column, and a covering index it leads

    def keys(self, fact: Fact) -> list[tuple]:
        """Its rows a scan counts in; a shift's facts come with their shift's first hour as `hour`."""
        period = fact.hour // 24 if self.period == "day" else fact.hour
        if "checker_code" not in self.columns:
            return [(period, *(getattr(fact, column) for column in self.columns))]
        return [(period, *(checker if column == "checker_code" else getattr(fact, column)
                           for column in self.columns)) for checker in fact.checkers]

    def holds(self, columns: set[str]) -> bool:
        return columns <= set(self.columns)


# Each shaped for the questions it answers, narrower ones first: a question is
# answered from the first hourly table holding every column it needs, and its
# whole UTC days from the first daily table that does (migrations 0005, 0008).
SUMMARY = Rollup("scan_summary", ("station", "operator_code", "order_code", "defect_code", "is_rescan"))
HOURLY = Rollup("scan_hourly", ("station", "defect_code", "is_rescan"))
CHECKERS = Rollup("scan_checker_hourly", ("station", "checker_code"))
DAILY_ORDERS = Rollup("scan_daily_order", ("station", "order_code"), period="day",
                      ordered=("order_code", "ix_daily_order_order"))
DAILY_OPERATORS = Rollup("scan_daily_operator", ("station", "operator_code", "defect_code"), period="day",
                         ordered=("operator_code", "ix_daily_operator_operator"))
# Grouping through a temporary table costs some five times reading a row in
# index order: from this share of a table's days on, read its covering index.
ORDERED_SHARE = 0.25
_HOURLY_CHOICE = (HOURLY, CHECKERS, SUMMARY)
_DAILY_CHOICE = (DAILY_ORDERS, DAILY_OPERATORS)
ROLLUPS = (*_HOURLY_CHOICE, *_DAILY_CHOICE)
# Kept apart from ROLLUPS: it holds one layout of shifts (migration 0010).
SHIFTS = Rollup("scan_shifts", HOURLY.columns, period="shift_hour")


def layout_of(shifts: Shifts) -> str:
    """Shifts as scan_shift_state names the layout it holds."""
    starts = ",".join(f"{start // 60:02d}:{start % 60:02d}" for start in shifts.starts)
    return f"{shifts.timezone.key} {starts}"


@lru_cache(maxsize=65536)
def shift_hour(shifts: Shifts, hour: int) -> int:
    """The first whole hour of the shift an hour starts in: the key of scan_shifts,
    and the hour that stands for its shift wherever hours are folded into shifts."""
    begins = shifts.around(hour_start(hour))[0]
    return hour_of(begins) + (hour_start(hour_of(begins)) < begins)


# -- keeping them ------------------------------------------------------------------


async def _deltas(cur: Cursor, rows: list[tuple]) -> dict[Fact, list[int]]:
    """What these scans change in the summaries: each adds a scan and makes its
    piece's latest scan its own; a re-scan takes the piece from the scan before."""
    deltas: dict[Fact, list[int]] = defaultdict(lambda: [0, 0, 0])
    rescans = [row[0] for row in rows if row[7]]
    previous: dict[int, tuple] = {}
    if rescans:
        await cur.execute(
            f"SELECT s.id, {_COLUMNS.replace('s.', 'p.')} FROM scans s JOIN scans p ON p.id = ("
            " SELECT MAX(q.id) FROM scans q WHERE q.station = s.station AND q.piece_code = s.piece_code"
            f" AND q.id < s.id) WHERE s.id IN ({', '.join(['%s'] * len(rescans))})", rescans)
        previous = {scan_id: tuple(rest) for scan_id, *rest in await cur.fetchall()}
    for row in rows:
        change = deltas[_fact(row)]
        change[0] += 1
        change[1 if row[6] else 2] += 1
        before = previous.get(row[0])
        if before is not None:
            deltas[_fact(before)][1 if before[6] else 2] -= 1
    return deltas


async def _write(cur: Cursor, rollup: Rollup, deltas: Iterable[tuple[Fact, list[int]]]) -> None:
    changes: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for fact, change in deltas:
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
        await cur.execute(f"SELECT {_COLUMNS} FROM scans s WHERE s.id > %s ORDER BY s.id LIMIT %s",
                          (found[0], BATCH))
        rows = []
        for row in await cur.fetchall():
            if row[2] >= cutoff:
                break
            rows.append(row)
        deltas = await _deltas(cur, rows) if rows else {}
        for rollup in ROLLUPS if rows else ():
            await _write(cur, rollup, deltas.items())
        summarised = rows[-1][0] if rows else found[0]
        if rows:
            await cur.execute("UPDATE scan_summary_state SET last_scan_id = %s WHERE id = 1", (summarised,))
        held = ShiftState(*found[1:]) if found[1] is not None else None
        rebuilt = await _keep_shifts(cur, shifts, held, deltas, found[0], summarised)
    return len(rows), rebuilt


class ShiftState(NamedTuple):
    layout: str  # the shifts scan_shifts holds
    last_scan_id: int  # up to this scan
    built_at: datetime


async def _keep_shifts(cur: Cursor, shifts: Shifts, held: ShiftState | None, deltas: dict[Fact, list[int]],
                       before: int, summarised: int) -> bool:
    """Add a batch to scan_shifts when it holds these shifts up to `before`;
    otherwise rebuild it for them, unless another layout was built a moment
    ago; returns whether it rebuilt."""
    layout = layout_of(shifts)
    if held is not None and held.layout == layout and held.last_scan_id == before:
        if deltas:
            await _write(cur, SHIFTS, ((fact._replace(hour=shift_hour(shifts, fact.hour)), change)
                                       for fact, change in deltas.items()))
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


# -- reading them ------------------------------------------------------------------

Span = tuple[datetime | None, datetime | None]
Range = tuple[int | None, int | None]  # [first, last) hour or day; None: open


def _split(spans: list[Span]) -> tuple[list[Range], list[Span]]:
    """Each time range as whole hours (for the summaries) and the partial hours at its ends."""
    hours: list[Range] = []
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


def _days(hours: list[Range]) -> tuple[list[Range], list[Range]]:
    """Ranges of whole hours as the whole UTC days within them and the hours left at their ends."""
    days: list[Range] = []
    rest: list[Range] = []
    for first, last in hours:
        first_day = None if first is None else -(-first // 24)
        last_day = None if last is None else last // 24
        if first_day is not None and last_day is not None and first_day >= last_day:
            rest.append((first, last))
            continue
        days.append((first_day, last_day))
        if first is not None and first_day is not None and first_day * 24 > first:
            rest.append((first, first_day * 24))
        if last is not None and last_day is not None and last_day * 24 < last:
            rest.append((last_day * 24, last))
    return days, rest


def _whole_shifts(shifts: Shifts, hours: list[Range]) -> tuple[list[Range], list[Range]]:
    """Ranges of whole hours as the whole shifts within them (a range of their
    first hours) and the hours left at their ends."""
    whole: list[Range] = []
    rest: list[Range] = []
    for lo, hi in hours:
        first = None if lo is None else _next_shift(shifts, lo)
        end = None if hi is None else shift_hour(shifts, hi)
        if first is not None and end is not None and first >= end:
            rest.append((lo, hi))
            continue
        whole.append((first, end))
        if lo is not None and first is not None and lo < first:
            rest.append((lo, first))
        if hi is not None and end is not None and end < hi:
            rest.append((end, hi))
    return whole, rest


def _next_shift(shifts: Shifts, hour: int) -> int:
    """The first hour of the first shift starting at or after this hour."""
    while shift_hour(shifts, hour) != hour:
        hour += 1
    return hour


def _in_hours(hour: int, ranges: list[Range]) -> bool:
    return any((lo is None or hour >= lo) and (hi is None or hour < hi) for lo, hi in ranges)


Term = tuple[str, str, Any]  # summary column, comparison, value


def _plan(scan_filter: ScanFilter, terms: list[Term], group: str | None,
          defects: bool) -> tuple[Rollup, Rollup | None] | None:
    """The hourly table, and the daily one for whole days, that can answer; None: read the scans."""
    if scan_filter.piece is not None:
        return None
    needed = {column for column, _, _ in terms}
    if group not in (None, "hour"):
        needed.add(_GROUP_COLUMN[group])
    if defects:
        needed.add("defect_code")
    hourly = next((rollup for rollup in _HOURLY_CHOICE if rollup.holds(needed)), None)
    if hourly is None:
        return None
    daily = None if group == "hour" else next(
        (rollup for rollup in _DAILY_CHOICE if rollup.holds(needed)), None)
    return hourly, daily


def _matches(terms: list[Term], fact: Fact) -> bool:
    """The terms' condition, for one scan not summarised yet."""
    for column, comparison, value in terms:
        found = value in fact.checkers if column == "checker_code" else getattr(fact, column) == value
        if found != (comparison == "="):
            return False
    return True


async def aggregate(cur: Cursor, scan_filter: ScanFilter, group: str | None = None,
                    now: datetime | None = None, *, defects: bool = True,
                    within: Sequence[str] | None = None, top: int | None = None,
                    fold: Callable[[Any], Any] | None = None,
                    shifts: Shifts | None = None) -> dict[Any, Figures]:
    """Figures for the filtered scans, per `group` (None, hour, operator, order,
    defect); without `defects`, the rejected scans per defect are left out
    (cheaper: no grouping by defect); `within` keeps only these groups; `top`
    keeps only that many, ranked by `rank` (in that order; without defects);
    `fold` maps each group to the one it counts in (hours to shifts, say).
    With the plant's `shifts`, whole shifts are read from scan_shifts when it
    holds them and the question needs no other columns (the fewest rows over
    a long range); per hour, each shift then comes as its first hour, so
    `fold` must map hours to their shifts."""
    assert top is None or (not defects and fold is None)
    assert shifts is None or group != "hour" or fold is not None
    now = now or utc_now()
    spans = scan_filter.time_spans(now)
    only = Within(group, tuple(within)) if within is not None else None
    terms = scan_filter.summary_terms()
    plan = _plan(scan_filter, terms, group, defects)
    if plan is None:
        return _ranked(_folded(await _from_scans(cur, scan_filter, group, spans, defects, only), fold), top)
    hourly, daily = plan
    column = _GROUP_COLUMN[group]
    for _ in range(3):
        watermark = await _watermark(cur)
        await cur.execute(f"SELECT {_COLUMNS} FROM scans s WHERE s.id > %s ORDER BY s.id LIMIT %s",
                          (watermark.scan_id, TAIL_LIMIT + 1))
        tail = await cur.fetchall()
        if len(tail) > TAIL_LIMIT:
            break
        hours, edges = _split(spans if spans is not None else [(None, None)])
        days: list[Range] = []
        whole: list[Range] = []
        if shifts is not None and hourly is HOURLY and watermark.shifts == layout_of(shifts):
            whole, rest = _whole_shifts(shifts, hours)  # fewer rows than any daily table
        elif daily is not None:
            days, rest = _days(hours)
        else:
            rest = hours
        # What the summaries do not hold yet: the newest scans, and the partial hours.
        newest: dict[Any, Figures] = {}
        for fact, change in (await _deltas(cur, list(tail))).items():
            name = None if column is None else getattr(fact, column)
            if (_in_hours(fact.hour, hours) and _matches(terms, fact)
                    and (only is None or name in only.values)):
                _figures(newest, name if fold is None else fold(name)).add(
                    fact.defect_code if defects else APPROVED, *change)
        if edges:
            for name, figures in _folded(await _from_scans(cur, scan_filter, group, edges, defects, only),
                                         fold).items():
                _figures(newest, name).merge(figures)
        index = await _ordered_index(cur, daily, group, days) if daily is not None and days else None
        layers = [(hourly, rest, None), *([(daily, days, index)] if daily is not None else []),
                  (SHIFTS, whole, None)]
        if top is None:
            result = await _from_rollups(cur, layers, terms, group, defects, only, fold=fold)
        else:
            result = await _top_groups(cur, layers, terms, group, only, top, newest)
        if await _watermark(cur) != watermark:
            continue  # the summaries moved on while we read them: read again
        for name, figures in newest.items():
            _figures(result, name).merge(figures)
        return _ranked(result, top)
    return _ranked(_folded(await _from_scans(cur, scan_filter, group, spans, defects, only), fold), top)


async def _top_groups(cur: Cursor, layers: list[tuple[Rollup, list[Range], str | None]], terms: list[Term],
                      group: str | None, only: Within | None, top: int, newest: dict[Any, Figures]
                      ) -> dict[Any, Figures]:
    """At least the top groups, exact, of these layers plus the newest scans.

    The widest layer (whole days, if any) ranks in SQL; the others (partial
    days: few groups) are read whole, then the first's figures of each group
    they or the newest scans name. That holds the exact top: a group in none of
    them has only its ranked figures, and each group ranked above it adds
    figures of its own elsewhere (never fewer scans or pieces), except that the
    newest scans can take pieces from as many groups as they touch; so reading
    that many more than the top suffices."""
    layers = sorted((layer for layer in layers if layer[1]), key=lambda layer: layer[0].period != "day")
    if not layers:
        return {}
    widest, others = layers[0], layers[1:]
    result = await _from_rollups(cur, [widest], terms, group, False, only, top + len(newest))
    elsewhere: dict[Any, Figures] = {}
    for layer in others:
        for name, figures in (await _from_rollups(cur, [layer], terms, group, False, only)).items():
            _figures(elsewhere, name).merge(figures)
    missing = [name for name in {**newest, **elsewhere} if name not in result]
    if missing:
        result.update(await _from_rollups(cur, [widest], terms, group, False, Within(group, tuple(missing))))
    for name, figures in elsewhere.items():
        _figures(result, name).merge(figures)
    return result


def rank(groups: dict[Any, Figures]) -> list[tuple[Any, Figures]]:
    """Groups with the most rejected pieces first, then the most scans, then by name."""
    return sorted(groups.items(), key=lambda item: (-item[1].rejected, -item[1].scans, item[0]))


def _ranked(groups: dict[Any, Figures], top: int | None) -> dict[Any, Figures]:
    return groups if top is None else dict(rank(groups)[:top])


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


class Watermark(NamedTuple):
    scan_id: int  # the summary tables hold every scan up to this one
    shifts: str | None  # the layout scan_shifts holds up to the same scan, if any


async def _watermark(cur: Cursor) -> Watermark:
    await cur.execute("SELECT s.last_scan_id, h.layout FROM scan_summary_state s LEFT JOIN scan_shift_state h"
                      " ON h.id = 1 AND h.last_scan_id = s.last_scan_id WHERE s.id = 1")
    found = await cur.fetchone()
    return Watermark(int(found[0]), found[1]) if found else Watermark(0, None)


async def _ordered_index(cur: Cursor, rollup: Rollup, group: str | None, days: list[Range]) -> str | None:
    """The covering index to group by, when these days are a large share of the table's."""
    if rollup.ordered is None or rollup.ordered[0] != _GROUP_COLUMN[group]:
        return None
    await cur.execute(f"SELECT MIN(day), MAX(day) FROM {rollup.table}")
    first, last = await cur.fetchone() or (None, None)
    if first is None:
        return None
    held = last - first + 1
    covered = sum(max(0, min(last + 1, hi if hi is not None else last + 1)
                      - max(first, lo if lo is not None else first)) for lo, hi in days)
    return rollup.ordered[1] if covered >= held * ORDERED_SHARE else None


async def _from_rollups(cur: Cursor, layers: list[tuple[Rollup, list[Range], str | None]], terms: list[Term],
                        group: str | None, defects: bool, only: Within | None,
                        limit: int | None = None, fold: Callable[[Any], Any] | None = None
                        ) -> dict[Any, Figures]:
    """The summary tables' figures, each for its ranges of hours or days, in one
    statement; with `limit`, only that many groups, ranked as `rank` does, when
    one table is read (all groups when several are: `aggregate` ranks them)."""
    parts, params = [], []
    for rollup, ranges, index in layers:
        if ranges:
            sql, values = _rollup_select(rollup, ranges, terms, group, defects, only, index)
            parts.append(sql)
            params += values
    if not parts:
        return {}
    if len(parts) == 1:
        # Groups in any order (ORDER BY NULL: MariaDB would sort them otherwise),
        # or ranked; binary collation: codes ordered as Python orders them.
        sql = parts[0] + (" ORDER BY NULL" if limit is None else " ORDER BY g_rejected DESC, g_scans DESC,"
                          f" g_name COLLATE utf8mb4_bin LIMIT {limit:d}")
    else:
        # Each table's groups, added up here: grouping their union again (to
        # rank it) costs the server a temporary table and a sort, some 10 ms
        # for a fortnight's orders, more than reading them all.
        sql = " UNION ALL ".join(f"({part} ORDER BY NULL)" for part in parts)
    await cur.execute(sql, params)
    return _collect(await cur.fetchall(), fold)


def _rollup_select(rollup: Rollup, ranges: list[Range], terms: list[Term], group: str | None,
                   defects: bool, only: Within | None, index: str | None) -> tuple[str, list[Any]]:
    """One summary table's figures for these ranges of its hours or days."""
    conditions = [f"{column} {comparison} %s" for column, comparison, _ in terms]
    params: list[Any] = [value for _, _, value in terms]
    column = rollup.period if group == "hour" else _GROUP_COLUMN[group] or "NULL"
    where = " AND ".join(conditions) or "TRUE"
    if only is not None:
        condition, values = only.condition(column)
        where += condition
        params += values
    bounds = []
    for lo, hi in ranges:
        parts = [*([f"{rollup.period} >= %s"] if lo is not None else []),
                 *([f"{rollup.period} < %s"] if hi is not None else [])]
        bounds.append("(" + (" AND ".join(parts) or "TRUE") + ")")
        params += [bound for bound in (lo, hi) if bound is not None]
    column, defect, grouping = _grouping(column, "defect_code", defects)
    return (f"SELECT {column} AS g_name, {defect} AS g_defect, CAST(SUM(scans) AS SIGNED) AS g_scans,"
            " CAST(SUM(approved_pieces) AS SIGNED) AS g_approved,"
            " CAST(SUM(rejected_pieces) AS SIGNED) AS g_rejected"
            f" FROM {rollup.table}{f' FORCE INDEX ({index})' if index else ''}"
            f" WHERE {where} AND ({' OR '.join(bounds)}){grouping}"), params


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
        " CAST(COALESCE(SUM(v.last_scan_id IS NOT NULL AND s.approved), 0) AS SIGNED),"
        " CAST(COALESCE(SUM(v.last_scan_id IS NOT NULL AND NOT s.approved), 0) AS SIGNED)"
        " FROM scans s LEFT JOIN piece_verdicts v ON v.station = s.station"
        " AND v.piece_code = s.piece_code AND v.last_scan_id = s.id"
        f" WHERE {where}{grouping}", params)
    return _collect(await cur.fetchall())


def _collect(rows: Iterable[tuple], fold: Callable[[Any], Any] | None = None) -> dict[Any, Figures]:
    """Figures per group from (group, defect, scans, approved, rejected) rows of
    integers; a report reads thousands of rows, so this is written for speed:
    rows come grouped (per table), each group is looked up (and folded) once a
    table, and the statements cast their sums so no value needs converting here."""
    result: dict[Any, Figures] = {}
    last: Any = object()
    figures = Figures()
    defects = figures.defects
    for name, defect, scans, approved, rejected in rows:
        if not scans:  # an aggregate with no GROUP BY answers one row even for no scans
            continue
        if name != last:
            last = name
            figures = _figures(result, name if fold is None else fold(name))
            defects = figures.defects
        figures.scans += scans
        figures.approved += approved
        figures.rejected += rejected
        if defect != APPROVED:
            defects[defect] += scans
    return result


def _folded(groups: dict[Any, Figures], fold: Callable[[Any], Any] | None) -> dict[Any, Figures]:
    if fold is None:
        return groups
    result: dict[Any, Figures] = {}
    for name, figures in groups.items():
        _figures(result, fold(name)).merge(figures)
    return result
