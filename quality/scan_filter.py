"""The scan list's filter: query parameters validated through the one form path,
turned into one `ScanFilter` that drives the list, its totals, the live
update, the exports and the reports' links."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from quality.clock import FIRST_DAY, LAST_DAY, in_calendar
from quality.http.forms import Field, Validated, validate
from quality.i18n import lazy
from quality.scans import STATIONS
from quality.scans.store import ScanRow
from quality.settings import CodePatterns, Settings

MAX_RANGE = timedelta(days=400)
# A shift filter without dates looks this far back: it becomes one time range
# per day, and a bounded number of them keeps the query an index range scan.
SHIFT_LOOKBACK = timedelta(days=92)
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?")
_YES = re.compile(r"1|ON|TRUE|YES")
CURSOR = re.compile(r"\d{20}-\d{1,19}")
_NOT_A_DATE = {"from": lazy("From is not a real date or time."), "to": lazy("To is not a real date or time.")}
_OUTSIDE_CALENDAR = {
    "from": lazy("From must be between %(first)s and %(last)s.", first=FIRST_DAY, last=LAST_DAY),
    "to": lazy("To must be between %(first)s and %(last)s.", first=FIRST_DAY, last=LAST_DAY),
}
FILTER_NAMES = ("station", "from", "to", "shift", "operator", "order", "piece", "checker", "defect",
                "rejected", "rescans")


def _trim(value: str) -> str:
    return value.strip()


def _trim_lower(value: str) -> str:
    return value.strip().lower()


@functools.cache
def filter_fields(codes: CodePatterns) -> tuple[Field, ...]:
    """Every parameter the scan list, its exports and its stream take."""
    return (
        Field("station", lazy("Station"), re.compile("|".join(STATIONS)), " or ".join(STATIONS), 16,
              _trim_lower, required=False),
        Field("from", lazy("From"), _DATE, lazy("2026-11-27 or 2026-11-27T06:00"), 19, _trim, required=False),
        Field("to", lazy("To"), _DATE, lazy("2026-11-27 or 2026-11-27T14:00"), 19, _trim, required=False),
        Field("shift", lazy("Shift"), re.compile(r"[1-9]"), "1", 1, required=False),
        Field("operator", lazy("Operator code"), re.compile(codes.operator), "OP07", 32, required=False),
        Field("order", lazy("Order"), re.compile(codes.order), "CP00012345", 32, required=False),
        Field("piece", lazy("Piece code"), re.compile(codes.piece), "CP00012345-0001", 64, required=False),
        Field("checker", lazy("Checker code"), re.compile(codes.checker), "OC12", 32, required=False),
        Field("defect", lazy("Defect code"), re.compile(codes.defect), "104", 3, required=False),
        Field("rejected", lazy("Rejected only"), _YES, "1", 5, required=False),
        Field("rescans", lazy("Re-scans only"), _YES, "1", 5, required=False),
        Field("before", lazy("Page"), CURSOR, lazy("a page link"), 40, required=False),
        Field("after", lazy("Page"), CURSOR, lazy("a page link"), 40, required=False),
    )


@dataclass(frozen=True)
class Shifts:
    """Shift start times (minutes after local midnight) in the plant's zone. A
    shift belongs to the production day on which it starts, so a night shift
    that runs past midnight is one shift of one day."""

    starts: tuple[int, ...]
    timezone: ZoneInfo

    @classmethod
    def of_plant(cls, settings: Settings) -> Shifts:
        """The plant's shifts, as its settings name them."""
        return cls(settings.shifts, settings.timezone)

    def labels(self) -> list[str]:
        ends = [*self.starts[1:], self.starts[0]]
        return [f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
                for start, end in zip(self.starts, ends, strict=True)]

    def of(self, at: datetime) -> tuple[date, int]:
        """The production day and shift index (0-based) of a UTC time."""
        local = at.replace(tzinfo=UTC).astimezone(self.timezone)
        minutes = local.hour * 60 + local.minute
        day = local.date()
        if minutes < self.starts[0]:
            return day - timedelta(days=1), len(self.starts) - 1
        index = max(i for i, start in enumerate(self.starts) if start <= minutes)
        return day, index

    def around(self, at: datetime) -> tuple[datetime, datetime]:
        """The shift a naive-UTC time falls in, as naive-UTC [start, end)."""
        return self.span(*self.of(at))

    def span(self, day: date, index: int) -> tuple[datetime, datetime]:
        """A shift of a production day, as naive-UTC [start, end)."""
        start = self._utc(day, self.starts[index])
        if index + 1 < len(self.starts):
            return start, self._utc(day, self.starts[index + 1])
        return start, self._utc(day + timedelta(days=1), self.starts[0])

    def day_span(self, day: date) -> tuple[datetime, datetime]:
        """A whole production day, as naive-UTC [start, end)."""
        return self._utc(day, self.starts[0]), self._utc(day + timedelta(days=1), self.starts[0])

    def spans_within(self, index: int, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        first = self.of(start)[0] - timedelta(days=1)
        last = self.of(end)[0]
        spans = []
        day = first
        while day <= last:
            lo, hi = self.span(day, index)
            lo, hi = max(lo, start), min(hi, end)
            if lo < hi:
                spans.append((lo, hi))
            day += timedelta(days=1)
        return spans

    def _utc(self, day: date, minutes: int) -> datetime:
        return _local_to_utc(day, minutes, self.timezone)


@functools.lru_cache(maxsize=4096)
def _local_to_utc(day: date, minutes: int, timezone: ZoneInfo) -> datetime:
    """A plant-time moment as naive UTC (a report asks for each shift's bounds many times)."""
    local = datetime.combine(day, time(minutes // 60, minutes % 60), timezone)
    return local.astimezone(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: just past this (created_at, id)."""

    created_at: datetime
    id: int

    @classmethod
    def parse(cls, text: str) -> Cursor:
        stamp, _, scan_id = text.partition("-")
        created_at = datetime.strptime(stamp, "%Y%m%d%H%M%S%f")
        if not in_calendar(created_at.date()):
            raise ValueError(f"a page link outside the calendar: {text}")
        return cls(created_at, int(scan_id))

    @classmethod
    def of(cls, row: ScanRow) -> Cursor:
        return cls(row.created_at, row.id)

    def __str__(self) -> str:
        return f"{self.created_at:%Y%m%d%H%M%S%f}-{self.id}"


@dataclass(frozen=True)
class ScanFilter:
    station: str | None = None
    start: datetime | None = None  # naive UTC, inclusive
    end: datetime | None = None  # naive UTC, exclusive
    shift: int | None = None  # 0-based index into Shifts.starts
    operator: str | None = None
    order: str | None = None
    piece: str | None = None
    checker: str | None = None
    defect: str | None = None
    rejected: bool = False
    rescans: bool = False
    shifts: Shifts | None = field(default=None, compare=False)
    values: Mapping[str, str] = field(default_factory=dict, compare=False)  # as typed

    def conditions(self, spans: list[tuple[datetime | None, datetime | None]] | None,
                   checker_column: str | None = None) -> tuple[str, list[Any]]:
        """The SQL condition on `scans s` and its parameters, for these time spans
        (from `time_spans`; None: any time). With `checker_column`, the checker
        is looked for in that column only (one branch of a UNION)."""
        sql: list[str] = []
        params: list[Any] = []
        for column, value in (("s.station", self.station), ("s.operator_code", self.operator),
                              ("s.order_code", self.order), ("s.piece_code", self.piece),
                              ("s.defect_code", self.defect)):
            if value is not None:
                sql.append(f"{column} = %s")
                params.append(value)
        if self.checker is not None and checker_column is not None:
            sql.append(f"{checker_column} = %s")
            params.append(self.checker)
        elif self.checker is not None:
            sql.append("(s.checker1_code = %s OR s.checker2_code = %s)")
            params += [self.checker, self.checker]
        if self.rejected:
            sql.append("s.approved = FALSE")
        if self.rescans:
            sql.append("s.is_rescan = TRUE")
        if spans is not None:
            ranges = []
            for start, end in spans:
                bounds = [*(["s.created_at >= %s"] if start else []), *(["s.created_at < %s"] if end else [])]
                ranges.append("(" + (" AND ".join(bounds) or "TRUE") + ")")
                params += [moment for moment in (start, end) if moment]
            sql.append("(" + (" OR ".join(ranges) or "FALSE") + ")")
        return " AND ".join(sql) or "TRUE", params

    def time_spans(self, now: datetime) -> list[tuple[datetime | None, datetime | None]] | None:
        """The time ranges the filter covers (naive UTC, [start, end)); None for any time."""
        if self.shift is not None:
            assert self.shifts is not None
            end = self.end or now + timedelta(days=1)
            start = self.start or end - SHIFT_LOOKBACK
            return list(self.shifts.spans_within(self.shift, start, end))
        if self.start is None and self.end is None:
            return None
        return [(self.start, self.end)]

    def summary_terms(self) -> list[tuple[str, str, Any]]:
        """Everything but time and piece as (summary column, comparison, value),
        for the summary tables of quality/summary.py."""
        terms: list[tuple[str, str, Any]] = [
            (column, "=", value) for column, value in (
                ("station", self.station), ("operator_code", self.operator), ("order_code", self.order),
                ("defect_code", self.defect), ("checker_code", self.checker)) if value is not None]
        if self.rejected:
            terms.append(("defect_code", "<>", "000"))
        if self.rescans:
            terms.append(("is_rescan", "=", True))
        return terms

    def matches(self, row: ScanRow) -> bool:
        """Whether a scan belongs to this filter: the live list's test for new scans."""
        checks = (
            (self.station, row.station), (self.operator, row.operator_code), (self.order, row.order_code),
            (self.piece, row.piece_code), (self.defect, row.defect_code),
        )
        if any(wanted is not None and wanted != actual for wanted, actual in checks):
            return False
        if self.checker is not None and self.checker not in (row.checker1_code, row.checker2_code):
            return False
        if (self.rejected and row.approved) or (self.rescans and not row.is_rescan):
            return False
        if (self.start is not None and row.created_at < self.start) or (
                self.end is not None and row.created_at >= self.end):
            return False
        return self.shift is None or (self.shifts is not None and self.shifts.of(row.created_at)[1]
                                      == self.shift)

    def query(self, **changes: str | None) -> str:
        """This filter's query string, with some parameters changed (None drops one)."""
        values = {name: self.values.get(name, "") for name in FILTER_NAMES}
        values.update({name.rstrip("_"): value or "" for name, value in changes.items()})
        return "&".join(_parameter(name, value) for name, value in values.items() if value)


@functools.lru_cache(maxsize=4096)
def _parameter(name: str, value: str) -> str:
    """One encoded query parameter; a report page writes the same ones thousands of times."""
    return urlencode({name: value})


@dataclass
class ListRequest:
    """A validated request for the list: its filter, the page cursor, and what
    was wrong with the parameters (then the filter is empty and shows nothing)."""

    filter: ScanFilter
    checked: Validated
    before: Cursor | None = None
    after: Cursor | None = None

    @property
    def ok(self) -> bool:
        return self.checked.ok


def read_filter(params: Mapping[str, Any], settings: Settings) -> ListRequest:
    """Validate the list's query parameters; unknown parameters are ignored."""
    checked = validate(params, filter_fields(settings.codes))
    values, errors = checked.values, checked.errors
    shifts = Shifts.of_plant(settings)
    start = _moment(values, errors, "from", settings.timezone, end_of_day=False)
    end = _moment(values, errors, "to", settings.timezone, end_of_day=True)
    if start is not None and end is not None and "to" not in errors:
        if end <= start:
            errors["to"] = lazy("To must be later than From.")
        elif end - start > MAX_RANGE:
            errors["to"] = lazy("The range may span at most %(days)s days.", days=MAX_RANGE.days)
    shift = None
    if values.get("shift") and "shift" not in errors:
        shift = int(values["shift"]) - 1
        if shift >= len(settings.shifts):
            errors["shift"] = lazy("Shift must be 1 to %(last)s.", last=len(settings.shifts))
    cursors = {}
    for name in ("before", "after"):
        if values.get(name) and name not in errors:
            try:
                cursors[name] = Cursor.parse(values[name])
            except ValueError:
                errors[name] = lazy("This page link is broken; start again from the first page.")
    if errors:
        return ListRequest(ScanFilter(shifts=shifts, values=values), checked)

    def given(name: str) -> str | None:
        return values.get(name) or None

    scan_filter = ScanFilter(
        station=given("station"), start=start, end=end, shift=shift,
        operator=given("operator"), order=given("order"), piece=given("piece"),
        checker=given("checker"), defect=given("defect"),
        rejected=bool(values.get("rejected")), rescans=bool(values.get("rescans")),
        shifts=shifts, values=values,
    )
    return ListRequest(scan_filter, checked, cursors.get("before"), cursors.get("after"))


def _moment(values: dict[str, str], errors: dict[str, str], name: str, timezone: ZoneInfo, *,
            end_of_day: bool) -> datetime | None:
    """A typed local date or date-time as naive UTC; a bare date as "to" means
    the end of that day."""
    text = values.get(name)
    if not text or name in errors:
        return None
    found = _DATE.fullmatch(text)
    assert found
    year, month, day, hour, minute, second = (int(part) if part else 0 for part in found.groups())
    try:
        local = datetime(year, month, day, hour, minute, second, tzinfo=timezone)
    except ValueError:
        errors[name] = _NOT_A_DATE[name]
        return None
    if not in_calendar(local.date()):
        errors[name] = _OUTSIDE_CALENDAR[name]
        return None
    if end_of_day and found[4] is None:
        local = datetime.combine(local.date() + timedelta(days=1), time(), timezone)
    return local.astimezone(UTC).replace(tzinfo=None)
