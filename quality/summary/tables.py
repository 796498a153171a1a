"""The summary tables (each a `Rollup`), what a scan counts in them (`Fact`),
and the arithmetic of their keys: hours since 2000, UTC days, and shifts by
their first hour."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from quality.shifts import Shifts

EPOCH = datetime(2000, 1, 1)
HOUR = timedelta(hours=1)
# What a summary needs of a scan, as read from `scans s`.
SCAN_COLUMNS = ("s.id, s.station, s.created_at, s.operator_code, s.order_code, s.defect_code, s.approved,"
                " s.is_rescan, s.checker1_code, s.checker2_code")


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


def fact_of(row: Sequence[Any]) -> Fact:
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
# whole UTC days from the first daily table that does (migrations 0005, 0008, 0014).
SUMMARY = Rollup("scan_summary", ("station", "operator_code", "order_code", "defect_code", "is_rescan"))
HOURLY = Rollup("scan_hourly", ("station", "defect_code", "is_rescan"))
CHECKERS = Rollup("scan_checker_hourly", ("station", "checker_code"))
DAILY_ORDERS = Rollup("scan_daily_order", ("station", "order_code"), period="day",
                      ordered=("order_code", "ix_daily_order_order"))
DAILY_OPERATORS = Rollup("scan_daily_operator", ("station", "operator_code", "defect_code"), period="day",
                         ordered=("operator_code", "ix_daily_operator_operator"))
HOURLY_TABLES = (HOURLY, CHECKERS, SUMMARY)
DAILY_ORDER_DEFECTS = Rollup("scan_daily_order_defect", ("station", "order_code", "defect_code"),
                             period="day", ordered=("order_code", "ix_daily_order_defect_order"))
DAILY_TABLES = (DAILY_ORDERS, DAILY_OPERATORS, DAILY_ORDER_DEFECTS)
ROLLUPS = (*HOURLY_TABLES, *DAILY_TABLES)
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



# The queued scans (not in the summaries yet), each with its piece's latest
# folded scan (summary_pieces) or NULLs: `deltas` reads these rows. A scan a
# DBA deleted after it was queued comes as NULLs, and leaves the queue.
QUEUED = (f"SELECT c.scan_id, {SCAN_COLUMNS}, s.piece_code, {SCAN_COLUMNS.replace('s.', 'o.')}"
          " FROM scan_queue c LEFT JOIN scans s ON s.id = c.scan_id"
          " LEFT JOIN summary_pieces p ON p.station = s.station AND p.piece_code = s.piece_code"
          " LEFT JOIN scans o ON o.id = p.scan_id")
_WIDTH = SCAN_COLUMNS.count(",") + 1


def deltas(rows: list[tuple]) -> tuple[dict[Fact, list[int]], dict[tuple[str, str], int]]:
    """What these queued scans (`QUEUED` rows) change in the summaries, and the
    pieces whose latest folded scan they become. Each adds a scan; a piece
    counts at its scan of the highest id, so the highest of its queued scans
    takes it from its folded latest scan, unless that one is higher still
    (this scan's transaction committed late)."""
    changes: dict[Fact, list[int]] = defaultdict(lambda: [0, 0, 0])
    newest: dict[tuple[str, str], tuple[tuple, tuple | None]] = {}
    for row in rows:
        scan, piece, folded = row[1:1 + _WIDTH], row[1 + _WIDTH], row[2 + _WIDTH:]
        if scan[0] is None:
            continue
        changes[fact_of(scan)][0] += 1
        key = (scan[1], piece)
        best = newest.get(key)
        if best is None or scan[0] > best[0][0]:
            newest[key] = (scan, folded if folded[0] is not None else None)
    moved = {}
    for key, (scan, folded) in newest.items():
        if folded is not None and folded[0] > scan[0]:
            continue
        changes[fact_of(scan)][1 if scan[6] else 2] += 1
        if folded is not None:
            changes[fact_of(folded)][1 if folded[6] else 2] -= 1
        moved[key] = scan[0]
    return changes, moved


Span = tuple[datetime | None, datetime | None]
Range = tuple[int | None, int | None]  # [first, last) hour or day; None: open


def split_hours(spans: list[Span]) -> tuple[list[Range], list[Span]]:
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


def whole_days(hours: list[Range]) -> tuple[list[Range], list[Range]]:
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


def whole_shifts(shifts: Shifts, hours: list[Range]) -> tuple[list[Range], list[Range]]:
    """Ranges of whole hours as the whole shifts within them (a range of their
    first hours) and the hours left at their ends."""
    whole: list[Range] = []
    rest: list[Range] = []
    for lo, hi in hours:
        first = None if lo is None else next_shift(shifts, lo)
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


def next_shift(shifts: Shifts, hour: int) -> int:
    """The first hour of the first shift starting at or after this hour."""
    while shift_hour(shifts, hour) != hour:
        hour += 1
    return hour


def in_hours(hour: int, ranges: list[Range]) -> bool:
    return any((lo is None or hour >= lo) and (hi is None or hour < hi) for lo, hi in ranges)

