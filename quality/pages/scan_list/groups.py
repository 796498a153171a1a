"""The list grouped: per order, operator, defect or shift, the filter's scans,
pieces (by their latest scan) and rejection rate, each group a link to its
scans. Read through `aggregate`, as the totals are: from the summary tables
where they hold the filter, so a grouping costs what a report's table does."""

from __future__ import annotations

from dataclasses import dataclass, replace

from quality.db import Cursor
from quality.scan_filter import ScanFilter
from quality.summary.figures import Figures, TablePage, order_by
from quality.summary.query import Question, aggregate

SHOWN = 100  # groups a page of the table


@dataclass(frozen=True)
class Group:
    name: str  # the order, operator or defect code; the shift's number and hours
    href: str  # the list of its scans
    figures: Figures


@dataclass(frozen=True)
class Grouping:
    by: str
    rows: list[Group]
    rows_page: TablePage


async def grouped(cur: Cursor, scan_filter: ScanFilter, by: str, sort: str, page: int | None) -> Grouping:
    """The filter's groups sorted by `sort` (quality.scan_filter.SORTS), this
    page of SHOWN of them (None: all)."""
    if by == "shift":
        groups = await _per_shift(cur, scan_filter)
    else:
        groups = await aggregate(cur, Question.groups(scan_filter, by))
    ordered = order_by(groups, sort)
    rows_page = TablePage.asked(page, SHOWN, len(ordered))
    rows = [Group(_name(scan_filter, by, key), "/scans?" + _query(scan_filter, by, key), figures)
            for key, figures in rows_page.of(ordered)]
    return Grouping(by, rows, rows_page)


async def _per_shift(cur: Cursor, scan_filter: ScanFilter) -> dict[int, Figures]:
    """Each shift's totals, as the list filtered by that shift counts them
    (its link leads there): one totals question per shift of the plant."""
    assert scan_filter.shifts is not None
    result = {}
    shifts = range(len(scan_filter.shifts.starts)) if scan_filter.shift is None else [scan_filter.shift]
    for index in shifts:
        figures = (await aggregate(cur, Question.totals(replace(scan_filter, shift=index)))).get(None)
        if figures is not None and figures.scans:
            result[index] = figures
    return result


def _name(scan_filter: ScanFilter, by: str, key: str | int) -> str:
    if by == "shift":
        assert scan_filter.shifts is not None and isinstance(key, int)
        return f"{key + 1} · {scan_filter.shifts.labels()[key]}"
    return str(key)


def _query(scan_filter: ScanFilter, by: str, key: str | int) -> str:
    """The filter narrowed to the group: its own value in place of the group's parameter."""
    if by == "shift":
        return scan_filter.query(shift=str(int(key) + 1))
    return scan_filter.query(**{by: str(key)})

