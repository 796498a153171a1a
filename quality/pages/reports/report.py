"""A report: scanned, approved, rejected, rejection rate and top defects per
production day and shift, per order, per operator and per defect, for the list's
filter (default: the last 14 production days).

Every figure comes from `quality.summary.aggregate` (the summary tables, plus
the newest scans): days and shifts are read per whole shift from scan_shifts
when it holds the plant's shifts, and per hour for the rest, all folded into
shifts in Python, so the shift starts and time zone never enter the SQL; all
orders are read without defects, sorted and paged, and only the page's read
with their defects; operators (fewer) are read with theirs. Pieces
count by their latest scan: a piece counts where its latest scan is, with that
scan's verdict.

The page gets its table rows ready-made (`Row`: figures, rate and the list
behind each figure, `Links`), so the template writes them in plain loops; the
tables and the charts link to the same lists, each address built once.
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import NamedTuple
from urllib.parse import urlencode

from quality.clock import to_plant, utc_now
from quality.db import Cursor, Database, DatabaseUnavailable
from quality.defects import names as defect_names
from quality.i18n import DEFAULT_LANGUAGE, count, percent
from quality.scan_filter import ScanFilter
from quality.shifts import Shifts
from quality.summary.figures import Figures, TablePage, order_by
from quality.summary.query import Question, aggregate

DEFAULT_DAYS = 14
TOP = 20  # rows a page of the per-order and per-operator tables


@dataclass(frozen=True)
class Tables:
    """How the per-order and per-operator tables are asked for: sorted by one
    of quality.scan_filter.SORTS, each at its page (from 1)."""

    sort: str = "rejected"
    order_page: int | None = 1  # None: all rows
    operator_page: int | None = 1


@dataclass
class Report:
    filter: ScanFilter
    start: datetime  # naive UTC
    end: datetime
    days: list[date]
    shifts: Shifts
    by_day: dict[date, Figures]
    by_shift: dict[tuple[date, int], Figures]
    by_order: list[tuple[str, Figures]]  # a page of the orders
    by_operator: list[tuple[str, Figures]]  # a page of the operators
    order_page: TablePage
    operator_page: TablePage
    by_defect: list[tuple[str, str, int]]  # code, name, rejected scans
    total: Figures


def report_filter(scan_filter: ScanFilter, now: datetime) -> ScanFilter:
    """The filter with a range: up to `to` (else the end of today), from `from`
    (else DEFAULT_DAYS production days before that end)."""
    shifts = scan_filter.shifts
    assert shifts is not None
    end = scan_filter.end or shifts.day_span(shifts.of(now)[0])[1]
    last_day = shifts.of(end - timedelta(microseconds=1))[0]
    start = scan_filter.start or shifts.day_span(last_day - timedelta(days=DEFAULT_DAYS - 1))[0]
    return replace(scan_filter, start=start, end=end)


async def build(db: Database, scan_filter: ScanFilter, now: datetime | None = None,
                tables: Tables = Tables(), *, written_at: float | None = None,
                language: str = DEFAULT_LANGUAGE) -> Report:
    """The report's figures, read on two connections at once, in the pool's
    bulk lane (of the read replica while it keeps up: `Database.read`, with
    `written_at` as there): days and shifts (hour rows folded into shifts in Python), then
    operators and the defect names on one; orders (all, then the page's
    defects) on the other. Each connection reads one snapshot, so the figures
    on it (days, shifts and their total; operators; orders) are of one moment;
    the two moments are a few milliseconds apart. Defects are named in `language`."""
    now = now or utc_now()
    scan_filter = report_filter(scan_filter, now)
    shifts = scan_filter.shifts
    assert shifts is not None and scan_filter.start is not None and scan_filter.end is not None
    try:
        async with asyncio.TaskGroup() as tasks:
            shifts_and_operators = tasks.create_task(db.read(
                _by_shift_and_operator, scan_filter, now, tables, language, bulk=True, snapshot=True,
                written_at=written_at))
            orders = tasks.create_task(db.read(_by_order, scan_filter, now, tables, bulk=True, snapshot=True,
                                               written_at=written_at))
    except* DatabaseUnavailable as unavailable:
        # The task group wraps it; unwrapped, it is the 503 any busy page gives.
        raise unavailable.exceptions[0] from None
    by_shift, (by_operator, operator_page), names = shifts_and_operators.result()
    by_order, order_page = orders.result()
    by_day: dict[date, Figures] = defaultdict(Figures)
    total = Figures()
    for (day, _), figures in by_shift.items():
        by_day[day].merge(figures)
    for figures in by_day.values():
        total.merge(figures)
    by_defect = sorted(((code, names.get(code, ""), count) for code, count in total.defects.items()),
                       key=lambda item: (-item[2], item[0]))
    first, last = shifts.of(scan_filter.start)[0], shifts.of(scan_filter.end - timedelta(microseconds=1))[0]
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return Report(scan_filter, scan_filter.start, scan_filter.end, days, shifts, dict(by_day),
                  by_shift, by_order, by_operator, order_page, operator_page, by_defect, total)


Page = tuple[list[tuple[str, Figures]], TablePage]


async def _by_shift_and_operator(
        cur: Cursor, scan_filter: ScanFilter, now: datetime, tables: Tables, language: str,
) -> tuple[dict[tuple[date, int], Figures], Page, dict[str, str]]:
    """Figures per production day and shift, a page of the operators, the defect codes' names."""
    by_shift = await aggregate(cur, Question.per_shift(scan_filter), now)
    operators = order_by(await aggregate(cur, Question.per(scan_filter, "operator"), now), tables.sort)
    page = TablePage.asked(tables.operator_page, TOP, len(operators))
    return by_shift, (page.of(operators), page), await defect_names(cur, language)


async def _by_order(cur: Cursor, scan_filter: ScanFilter, now: datetime, tables: Tables) -> Page:
    """A page of the orders. Orders are many: all are read without defects,
    then the defects of the page's."""
    orders = order_by(await aggregate(cur, Question.groups(scan_filter, "order"), now), tables.sort)
    page = TablePage.asked(tables.order_page, TOP, len(orders))
    by_order = page.of(orders)
    names = [order for order, _ in by_order]
    shown = await aggregate(cur, Question.per(scan_filter, "order", names), now)
    for order, figures in by_order:
        figures.defects = shown[order].defects
    return by_order, page


@functools.lru_cache(maxsize=4096)
def local_stamp(at: datetime, shifts: Shifts) -> str:
    """A UTC time as the list's from/to parameter (plant time, minutes); a report
    page writes the same few hundreds of times."""
    return to_plant(at, shifts.timezone).strftime("%Y-%m-%dT%H:%M")


class Links:
    """The scan list behind each figure of a report: the report's filter over a
    span clipped to the report's range, with some parameters changed. The tables
    and the charts link to the same spans, so each address is built once a page."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self._built: dict[tuple, str] = {}
        # Parameters the filter leaves empty: a link that leaves them out is the
        # same whether or not it names them, so it is built once either way.
        self._unset = {name: None for name in ("defect", "rejected") if not report.filter.values.get(name)}

    def scans(self, start: datetime | None = None, end: datetime | None = None,
              **changes: str | None) -> str:
        # Looked up as asked first: most calls repeat an earlier one word for word.
        asked = (start, end, *changes.items())
        href = self._built.get(asked)
        if href is None:
            changes = {**self._unset, **changes}
            key = (start, end, *changes.items())
            href = self._built.get(key)
            if href is None:
                report = self.report
                lo = report.start if start is None else max(start, report.start)
                hi = report.end if end is None else min(end, report.end)
                href = "/scans?" + report.filter.query(
                    from_=local_stamp(lo, report.shifts), to=local_stamp(hi, report.shifts), **changes)
                self._built[key] = href
            self._built[asked] = href
        return href

    def rejected_with(self, codes: list[str], start: datetime | None = None, end: datetime | None = None,
                      **changes: str | None) -> list[str]:
        """For each defect code, the rejected scans with it (the scans a defect
        figure counts): the span's list without a defect and verdict, and those
        two appended (a row links to three defects of one span)."""
        base = self.scans(start, end, defect=None, rejected=None, **changes)
        return [f"{base}&{_rejected_with(code)}" for code in codes]


@functools.lru_cache(maxsize=1024)
def _rejected_with(code: str) -> str:
    return urlencode({"defect": code, "rejected": "1"})


class Row(NamedTuple):
    """A table row as the page writes it, in a plain loop: its figures written
    as the page's language writes them (`count`, `percent`: the page's filters
    write the same), the list behind them, and its top defects each with the
    list behind it."""

    head: str  # the day, order or operator; "" on a shift's row
    label: str  # the shift, on the per-shift table; "" on a day's row (the page writes "whole day")
    href: str
    scans: str
    approved: str
    rejected: str
    rate: str  # rejection rate
    defects: list[tuple[str, str, str]]  # code, rejected scans, their list


def _row(head: str, label: str, figures: Figures, links: Links, language: str, start: datetime | None = None,
         end: datetime | None = None, **changes: str) -> Row:
    top = figures.top_defects()
    hrefs = links.rejected_with([code for code, _ in top], start, end, **changes)
    defects = [(code, count(scans, language), href) for (code, scans), href in zip(top, hrefs, strict=True)]
    return Row(head, label, links.scans(start, end, **changes), count(figures.scans, language),
               count(figures.approved, language), count(figures.rejected, language),
               percent(figures.rejection_rate, language), defects)


def shift_rows(report: Report, links: Links, language: str) -> list[Row]:
    """Newest day first: each day's row (label "") and then its shifts' rows."""
    rows = []
    labels = report.shifts.labels()
    for day in reversed(report.days):
        if day not in report.by_day:
            continue
        day_span = report.shifts.day_span(day)
        rows.append(_row(day.isoformat(), "", report.by_day[day], links, language, *day_span))
        for index, label in enumerate(labels):
            figures = report.by_shift.get((day, index))
            if figures:
                span = report.shifts.span(day, index)
                rows.append(_row("", f"{index + 1} · {label}", figures, links, language, *span))
    return rows


def group_rows(groups: list[tuple[str, Figures]], key: str, links: Links, language: str) -> list[Row]:
    """The per-order or per-operator rows (`key` is the list's parameter)."""
    return [_row(name, "", figures, links, language, **{key: name}) for name, figures in groups]


