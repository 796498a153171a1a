"""/reports: scanned, approved, rejected, rejection rate and top defects per
production day and shift, per order, per operator and per defect, for the list's
filter (default: the last 14 production days).

Every figure is an aggregate over the filtered scans, read through the covering
index ix_scans_report (migration 0005). Day and shift come from quarter-hour
counts folded in Python, so the plant's shift starts (a setting) and its time
zone never enter the SQL. Pieces count by their latest scan (piece_verdicts):
a piece counts where its latest scan is, with that scan's verdict.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quality import charts
from quality.clock import utc_now
from quality.db import Cursor
from quality.http.render import render
from quality.lists.filters import ScanFilter, Shifts, read_filter
from quality.permissions import guard
from quality.scans import STATIONS
from quality.services import services

DEFAULT_DAYS = 14
TOP = 20  # rows in the per-order and per-operator tables
_EPOCH = datetime(2000, 1, 1)
_QUARTER = timedelta(minutes=15)

# Each scan, and whether it is its piece's latest scan (then it carries the piece's verdict).
_FROM = (" FROM scans s LEFT JOIN piece_verdicts v ON v.station = s.station"
         " AND v.piece_code = s.piece_code AND v.last_scan_id = s.id")
_FIGURES = ("COUNT(*), COALESCE(SUM(v.last_scan_id IS NOT NULL AND s.approved), 0),"
            " COALESCE(SUM(v.last_scan_id IS NOT NULL AND NOT s.approved), 0)")


@dataclass
class Figures:
    scanned: int = 0
    approved: int = 0  # pieces, by their latest scan
    rejected: int = 0
    defects: Counter[str] = field(default_factory=Counter)  # rejected scans per defect code

    def add(self, scanned: int, approved: int, rejected: int) -> None:
        self.scanned += int(scanned)
        self.approved += int(approved)
        self.rejected += int(rejected)

    @property
    def rejection_rate(self) -> float | None:
        pieces = self.approved + self.rejected
        return self.rejected / pieces if pieces else None

    def top_defects(self, count: int = 3) -> list[tuple[str, int]]:
        return self.defects.most_common(count)


@dataclass
class Report:
    filter: ScanFilter
    start: datetime  # naive UTC
    end: datetime
    days: list[date]
    shifts: Shifts
    by_day: dict[date, Figures]
    by_shift: dict[tuple[date, int], Figures]
    by_order: list[tuple[str, Figures]]
    by_operator: list[tuple[str, Figures]]
    by_defect: list[tuple[str, str, int]]  # code, name, rejected scans
    total: Figures


def report_filter(scan_filter: ScanFilter, now: datetime) -> ScanFilter:
    """The filter with a range: the last DEFAULT_DAYS production days unless given."""
    shifts = scan_filter.shifts
    assert shifts is not None
    today = shifts.of(now)[0]
    start = scan_filter.start or shifts.day_span(today - timedelta(days=DEFAULT_DAYS - 1))[0]
    end = scan_filter.end or shifts.day_span(today)[1]
    return replace(scan_filter, start=start, end=end)


async def build(cur: Cursor, scan_filter: ScanFilter, now: datetime | None = None) -> Report:
    now = now or utc_now()
    scan_filter = report_filter(scan_filter, now)
    shifts = scan_filter.shifts
    assert shifts is not None and scan_filter.start is not None and scan_filter.end is not None
    where, params = scan_filter.conditions(now)
    by_day: dict[date, Figures] = defaultdict(Figures)
    by_shift: dict[tuple[date, int], Figures] = defaultdict(Figures)
    total = Figures()
    await cur.execute(
        f"SELECT TIMESTAMPDIFF(MINUTE, %s, s.created_at) DIV 15 AS quarter, {_FIGURES}{_FROM}"
        f" WHERE {where} GROUP BY quarter", (_EPOCH, *params))
    for quarter, scanned, approved, rejected in await cur.fetchall():
        day, shift = shifts.of(_EPOCH + _QUARTER * int(quarter))
        for figures in (by_day[day], by_shift[day, shift], total):
            figures.add(scanned, approved, rejected)
    await cur.execute(
        "SELECT TIMESTAMPDIFF(MINUTE, %s, s.created_at) DIV 15 AS quarter, s.defect_code, COUNT(*)"
        f" FROM scans s WHERE {where} AND NOT s.approved GROUP BY quarter, s.defect_code",
        (_EPOCH, *params))
    for quarter, defect, count in await cur.fetchall():
        day, shift = shifts.of(_EPOCH + _QUARTER * int(quarter))
        for figures in (by_day[day], by_shift[day, shift], total):
            figures.defects[defect] += int(count)
    by_order = await _grouped(cur, "s.order_code", where, params)
    by_operator = await _grouped(cur, "s.operator_code", where, params)
    await cur.execute(
        "SELECT s.defect_code, d.name, COUNT(*) FROM scans s JOIN defect_codes d ON d.code = s.defect_code"
        f" WHERE {where} AND NOT s.approved GROUP BY s.defect_code, d.name"
        " ORDER BY COUNT(*) DESC, s.defect_code",
        params)
    by_defect = [(code, name, int(count)) for code, name, count in await cur.fetchall()]
    first, last = shifts.of(scan_filter.start)[0], shifts.of(scan_filter.end - timedelta(microseconds=1))[0]
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return Report(scan_filter, scan_filter.start, scan_filter.end, days, shifts, dict(by_day),
                  dict(by_shift), by_order, by_operator, by_defect, total)


async def _grouped(cur: Cursor, column: str, where: str, params: list) -> list[tuple[str, Figures]]:
    """The TOP groups with the most rejected pieces, then the most scans."""
    await cur.execute(
        f"SELECT {column}, {_FIGURES}{_FROM} WHERE {where} GROUP BY {column}"
        " ORDER BY 3 DESC, 2 DESC, 1 LIMIT %s", (*params, TOP))
    groups = {key: Figures(int(scanned), int(approved), int(rejected))
              for key, scanned, approved, rejected in await cur.fetchall()}
    if groups:
        await cur.execute(
            f"SELECT {column}, s.defect_code, COUNT(*) FROM scans s WHERE {where} AND NOT s.approved"
            f" AND {column} IN ({', '.join(['%s'] * len(groups))}) GROUP BY {column}, s.defect_code",
            (*params, *groups))
        for key, defect, count in await cur.fetchall():
            groups[key].defects[defect] += int(count)
    return list(groups.items())


def local_stamp(at: datetime, shifts: Shifts) -> str:
    """A UTC time as the list's from/to parameter (plant time, minutes)."""
    return at.replace(tzinfo=UTC).astimezone(shifts.timezone).strftime("%Y-%m-%dT%H:%M")


@guard("reports.view")
async def page(request: Request) -> Response:
    listing = read_filter(request.query_params, services(request).settings)
    context: dict = {"listing": listing, "values": listing.checked.values,
                     "errors": listing.checked.errors, "report": None, "stations": STATIONS,
                     "shift_labels": listing.filter.shifts.labels() if listing.filter.shifts else []}
    if listing.ok:
        async with services(request).db.transaction() as cur:
            report = await build(cur, listing.filter)
        context["report"] = report
        context["charts"] = charts.for_report(report, local_stamp)
        context["link"] = lambda **changes: "/scans?" + report.filter.query(**changes)
        context["stamp"] = lambda at: local_stamp(at, report.shifts)
    return render(request, "reports/page.html", context, status_code=200 if listing.ok else 400)


routes = [Route("/reports", page, methods=["GET"], name="reports")]
