"""/reports: scanned, approved, rejected, rejection rate and top defects per
production day and shift, per order, per operator and per defect, for the list's
filter (default: the last 14 production days).

Every figure comes from `quality.summary.aggregate` (the hourly summary, plus
the newest scans): day and shift are hourly figures folded in Python, so the
plant's shift starts (a setting) and its time zone never enter the SQL. Pieces
count by their latest scan: a piece counts where its latest scan is, with that
scan's verdict.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quality import charts
from quality.clock import utc_now
from quality.db import Cursor
from quality.http.render import render
from quality.i18n import request_language, translator
from quality.lists.filters import ScanFilter, Shifts, read_filter
from quality.permissions import guard
from quality.scans import STATIONS
from quality.services import services
from quality.summary import Figures, aggregate, hour_start

DEFAULT_DAYS = 14
TOP = 20  # rows in the per-order and per-operator tables


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
    by_day: dict[date, Figures] = defaultdict(Figures)
    by_shift: dict[tuple[date, int], Figures] = defaultdict(Figures)
    total = Figures()
    for hour, figures in (await aggregate(cur, scan_filter, "hour", now)).items():
        day, shift = shifts.of(hour_start(int(hour)))
        for into in (by_day[day], by_shift[day, shift], total):
            into.merge(figures)
    # Orders are many: rank them without defects, then read the defects of the top ones.
    by_order = _top(await aggregate(cur, scan_filter, "order", now, defects=False))
    top = await aggregate(cur, scan_filter, "order", now, within=[order for order, _ in by_order])
    for order, figures in by_order:
        figures.defects = top[order].defects
    by_operator = _top(await aggregate(cur, scan_filter, "operator", now))
    names = await _defect_names(cur)
    by_defect = sorted(((code, names.get(code, ""), count) for code, count in total.defects.items()),
                       key=lambda item: (-item[2], item[0]))
    first, last = shifts.of(scan_filter.start)[0], shifts.of(scan_filter.end - timedelta(microseconds=1))[0]
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return Report(scan_filter, scan_filter.start, scan_filter.end, days, shifts, dict(by_day),
                  dict(by_shift), by_order, by_operator, by_defect, total)


def _top(groups: dict[str, Figures]) -> list[tuple[str, Figures]]:
    """The TOP groups with the most rejected pieces, then the most scans."""
    ranked = sorted(groups.items(), key=lambda item: (-item[1].rejected, -item[1].scans, item[0]))
    return ranked[:TOP]


async def _defect_names(cur: Cursor) -> dict[str, str]:
    await cur.execute("SELECT code, name FROM defect_codes")
    return dict(await cur.fetchall())


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
        language = request_language(request, services(request).settings.language)
        context["charts"] = charts.for_report(report, local_stamp, translator(language))
        context["link"] = lambda **changes: "/scans?" + report.filter.query(**changes)
        context["stamp"] = lambda at: local_stamp(at, report.shifts)
    return render(request, "reports/page.html", context, status_code=200 if listing.ok else 400)


routes = [Route("/reports", page, methods=["GET"], name="reports")]
