"""The report's statistical process control: the p-chart of the rejection
rate (fraction of pieces rejected, by their latest scan) and the Pareto of
defects, computed from the report's figures (report.py); charts.py draws them.

p-chart, for variable sample sizes: a point per production day, or per shift
when the range is short (SHORT_RANGE_DAYS or fewer days); its sample is the
pieces counted there, nᵢ, its value pᵢ = rejectedᵢ / nᵢ. The centre line is
p̄ = Σ rejected / Σ n over the points, and each point has its own limits
p̄ ± 3·√(p̄(1 - p̄)/nᵢ), the lower one floored at 0 (quality/control_limits.py,
which the p-chart alert rule shares). A point is a signal when it
lies beyond its limits, or when it belongs to a run of RUN points or more in a
row strictly on one side of the centre line (a point on it ends a run).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from quality.control_limits import RUN, limits
from quality.pages.reports.report import Report

SHORT_RANGE_DAYS = 7


@dataclass(frozen=True, slots=True)
class Point:
    label: str  # the day, or the day and shift
    start: datetime  # the span's scans (UTC), for its link
    end: datetime
    pieces: int
    rejected: int
    p: float
    lcl: float
    ucl: float
    beyond: bool = False
    in_run: bool = False

    @property
    def signal(self) -> bool:
        return self.beyond or self.in_run


@dataclass(frozen=True, slots=True)
class PChart:
    per_shift: bool
    centre: float | None  # None: no pieces in the range
    points: list[Point]


def p_chart(report: Report) -> PChart:
    per_shift = len(report.days) <= SHORT_RANGE_DAYS
    samples = []  # label, start, end, pieces, rejected
    labels = report.shifts.labels()
    for day in report.days:
        if per_shift:
            for index in range(len(labels)):
                figures = report.by_shift.get((day, index))
                if figures and figures.approved + figures.rejected > 0:
                    samples.append((f"{day.isoformat()} {index + 1}", *report.shifts.span(day, index),
                                    figures.approved + figures.rejected, figures.rejected))
        else:
            figures = report.by_day.get(day)
            if figures and figures.approved + figures.rejected > 0:
                samples.append((day.isoformat(), *report.shifts.day_span(day),
                                figures.approved + figures.rejected, figures.rejected))
    total = sum(sample[3] for sample in samples)
    if not total:
        return PChart(per_shift, None, [])
    all_rejected = sum(sample[4] for sample in samples)
    centre = all_rejected / total
    points = []
    for label, start, end, pieces, rejected in samples:
        p = rejected / pieces
        lcl, ucl = limits(centre, pieces)
        points.append(Point(label, start, end, pieces, rejected, p, lcl, ucl, beyond=p > ucl or p < lcl))
    # Which side of the centre, in integers: rejected/pieces against all_rejected/total, exactly.
    sides = [(point.rejected * total > all_rejected * point.pieces)
             - (point.rejected * total < all_rejected * point.pieces) for point in points]
    running = set(_runs(sides))
    return PChart(per_shift, centre, [replace(point, in_run=index in running)
                                      for index, point in enumerate(points)])


def _runs(sides: list[int]) -> Iterable[int]:
    """The indices of points in a run of RUN or more on one side (1 above, -1
    below; 0, on the line, belongs to no run)."""
    start = 0
    for index in range(1, len(sides) + 1):
        if index == len(sides) or sides[index] != sides[start]:
            if sides[start] != 0 and index - start >= RUN:
                yield from range(start, index)
            start = index


def pareto(counts: Iterable[tuple[str, int]]) -> list[tuple[str, int, float]]:
    """Each label with its count and the cumulative share up to it, most frequent first."""
    ranked = sorted(((label, count) for label, count in counts if count > 0),
                    key=lambda item: (-item[1], item[0]))
    total = sum(count for _, count in ranked)
    running, shares = 0, []
    for label, count in ranked:
        running += count
        shares.append((label, count, running / total))
    return shares
