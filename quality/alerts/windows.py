"""Each rule's recent scans in its scope, kept in memory and updated one scan
at a time: a few integer operations per rule and scan, so evaluating the
rules costs a save next to nothing (bench/alerts_bench.py measures it)."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from decimal import Decimal

from quality.alerts.rules import DAY, P_CHART, RATE, Rule
from quality.codes import APPROVED
from quality.control_limits import RUN, limits
from quality.db import Cursor
from quality.shifts import Shifts

_HUNDRED = Decimal(100)


class Window:
    """One rule's scans: whether they breach it, by how much, and which they are."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.noted_breached = False  # what this process last acted on (fired or re-armed)

    def add(self, scan_id: int, defect_code: str, at: datetime) -> None:
        raise NotImplementedError

    @property
    def limit(self) -> Decimal:
        """What the value is compared with, as the alert records it."""
        return self.rule.limit

    async def load(self, cur: Cursor) -> None:
        """The rule's last scans in scope, from the database (at start, and when rules change)."""
        where, params = _scope(self.rule)
        await cur.execute(f"SELECT id, defect_code, created_at FROM scans WHERE {where}"
                          " ORDER BY id DESC LIMIT %s", (*params, self.rule.pieces))
        for scan_id, defect_code, at in reversed(await cur.fetchall()):
            self.add(scan_id, defect_code, at)

    @property
    def breached(self) -> bool:
        raise NotImplementedError

    @property
    def value(self) -> Decimal:
        raise NotImplementedError

    @property
    def scan_ids(self) -> list[int]:
        """The scans that make the breach: the rejected ones of the window, or the run."""
        raise NotImplementedError


class RateWindow(Window):
    """The last N scans: breached when full and more than the threshold rejected."""

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self._scans: deque[tuple[int, bool]] = deque(maxlen=rule.pieces)
        self._rejected = 0
        # rejected / N > threshold / 100, in integers (the threshold has two
        # decimals): no rounding at the edge, no Decimal work per scan
        self._bound = int(rule.limit * 100) * rule.pieces

    def add(self, scan_id: int, defect_code: str, at: datetime) -> None:
        rejected = defect_code != APPROVED
        if len(self._scans) == self.rule.pieces and self._scans[0][1]:
            self._rejected -= 1
        self._scans.append((scan_id, rejected))
        self._rejected += rejected

    @property
    def breached(self) -> bool:
        return len(self._scans) == self.rule.pieces and self._rejected * 10000 > self._bound

    @property
    def value(self) -> Decimal:
        return (_HUNDRED * self._rejected / max(len(self._scans), 1)).quantize(Decimal("0.01"))

    @property
    def scan_ids(self) -> list[int]:
        return [scan_id for scan_id, rejected in self._scans if rejected]


class RunWindow(Window):
    """The current run of one defect code: breached at K in a row."""

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self._code = ""
        self._run: deque[int] = deque(maxlen=rule.pieces)
        self._length = 0

    def add(self, scan_id: int, defect_code: str, at: datetime) -> None:
        counts = defect_code != APPROVED and self.rule.defect_code in (None, defect_code)
        if not counts:
            self._code, self._length = "", 0
            self._run.clear()
            return
        if defect_code != self._code:
            self._code, self._length = defect_code, 0
            self._run.clear()
        self._length += 1
        self._run.append(scan_id)

    @property
    def breached(self) -> bool:
        return self._length >= self.rule.pieces

    @property
    def value(self) -> Decimal:
        return Decimal(self._length)

    @property
    def scan_ids(self) -> list[int]:
        return list(self._run)


class PChartWindow(Window):
    """The rejection rate per shift, or per production day (the rule's period),
    as a p-chart (reports' control.py, live): the centre line p̄ from the last
    BASELINE_POINTS complete points, and the current point against its limits
    p̄ ± 3·√(p̄(1 - p̄)/n) once it has MIN_SAMPLE scans; or the last RUN
    complete points all on one side of p̄. Points are the reports' own: a
    shift, or the production day of quality/shifts.py. Counts scans (the live
    view has no piece verdicts to hand)."""

    BASELINE_POINTS = 21  # a week of three shifts, or three weeks of days
    MIN_SAMPLE = 20

    def __init__(self, rule: Rule, shifts: Shifts) -> None:
        super().__init__(rule)
        self._shifts = shifts
        self._per_day = rule.period == DAY
        self._baseline: deque[tuple[int, int]] = deque(maxlen=self.BASELINE_POINTS)
        self._sums = [0, 0]  # scans, rejected in the baseline
        self._sides: deque[int] = deque(maxlen=RUN)
        self._point_end: datetime | None = None
        self._n = self._r = 0
        self._rejected_ids: deque[int] = deque(maxlen=200)

    def add(self, scan_id: int, defect_code: str, at: datetime) -> None:
        if self._point_end is None or at >= self._point_end:
            self._close_point(at)
        self._n += 1
        if defect_code != APPROVED:
            self._r += 1
            self._rejected_ids.append(scan_id)

    def _close_point(self, at: datetime) -> None:
        """A scan of a later shift or day: the point so far joins the baseline."""
        if self._n:
            centre = self._centre
            if centre is not None:
                p = self._r / self._n
                self._sides.append((p > centre) - (p < centre))
            if len(self._baseline) == self._baseline.maxlen:
                old_n, old_r = self._baseline[0]
                self._sums[0] -= old_n
                self._sums[1] -= old_r
            self._baseline.append((self._n, self._r))
            self._sums[0] += self._n
            self._sums[1] += self._r
        self._point_end = self._span(at)[1]
        self._n = self._r = 0
        self._rejected_ids.clear()

    def _span(self, at: datetime) -> tuple[datetime, datetime]:
        """The point a naive-UTC time falls in: its shift, or its production day."""
        if self._per_day:
            return self._shifts.day_span(self._shifts.of(at)[0])
        return self._shifts.around(at)

    @property
    def _centre(self) -> float | None:
        return self._sums[1] / self._sums[0] if self._sums[0] else None

    @property
    def _beyond(self) -> bool:
        centre = self._centre
        if centre is None or self._n < self.MIN_SAMPLE:
            return False
        lcl, ucl = limits(centre, self._n)
        p = self._r / self._n
        return p > ucl or p < lcl

    @property
    def breached(self) -> bool:
        return self._beyond or (len(self._sides) == RUN and abs(sum(self._sides)) == RUN)

    @property
    def value(self) -> Decimal:
        return (_HUNDRED * self._r / max(self._n, 1)).quantize(Decimal("0.01"))

    @property
    def limit(self) -> Decimal:
        """The upper control limit for the current point's sample (%), or p̄ with no sample yet."""
        centre = self._centre or 0.0
        ucl = limits(centre, self._n)[1] if self._n else centre
        return Decimal(100 * ucl).quantize(Decimal("0.01"))

    @property
    def scan_ids(self) -> list[int]:
        return list(self._rejected_ids)

    async def load(self, cur: Cursor) -> None:
        """The baseline's points, counted per hour in SQL and folded into shifts
        or days here (shifts, and so days, start on whole hours), then the
        current point's scans."""
        where, params = _scope(self.rule)
        await cur.execute("SELECT COALESCE(MAX(created_at), UTC_TIMESTAMP()) FROM scans")
        (newest,) = await cur.fetchone()
        current_start = self._span(newest)[0]
        per_day = 1 if self._per_day else len(self._shifts.starts)
        since = current_start - timedelta(days=(self.BASELINE_POINTS + RUN) // per_day + 2)
        await cur.execute(
            "SELECT DATE_FORMAT(created_at, '%%Y-%%m-%%d %%H:00:00'), COUNT(*), SUM(defect_code <> %s)"
            f" FROM scans WHERE {where} AND created_at >= %s AND created_at < %s GROUP BY 1 ORDER BY 1",
            (APPROVED, *params, since, current_start))
        for hour, scans, rejected in await cur.fetchall():
            at = datetime.fromisoformat(hour)
            if self._point_end is None or at >= self._point_end:
                self._close_point(at)
            self._n += int(scans)
            self._r += int(rejected)
        await cur.execute(f"SELECT id, defect_code, created_at FROM scans WHERE {where}"
                          " AND created_at >= %s ORDER BY id", (*params, current_start))
        for scan_id, defect_code, at in await cur.fetchall():
            self.add(scan_id, defect_code, at)


def _scope(rule: Rule) -> tuple[str, list[str]]:
    where, params = [], []
    if rule.station:
        where.append("station = %s")
        params.append(rule.station)
    if rule.order_code:
        where.append("order_code = %s")
        params.append(rule.order_code)
    return " AND ".join(where), params


def window_for(rule: Rule, shifts: Shifts) -> Window:
    if rule.kind == P_CHART:
        return PChartWindow(rule, shifts)
    return RateWindow(rule) if rule.kind == RATE else RunWindow(rule)
