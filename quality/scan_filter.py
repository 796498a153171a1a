"""The scan filter: query parameters validated through the one form path,
turned into one `ScanFilter` that drives the scan list, its totals, its live
update, its exports, the reports and their links.

What a filter may ask of a scan is described once (`CRITERIA`, `FLAGS`); its
SQL condition on `scans`, its terms for the summary tables and its test of a
scan in memory are each derived from that description. Some criteria take
several values (`101,102`, or a parameter repeated, as a multi-select sends
it: any of them) and some a value short of a whole code (`OPA`, `CP1000069`:
the codes it starts); each value is checked against the code's own field."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from quality.clock import FIRST_DAY, LAST_DAY, in_calendar, to_utc, utc_now
from quality.codes import APPROVED, CHECKER, DEFECT, OPERATOR, ORDER, PIECE
from quality.fields import KEEP, Field, Validated, validate
from quality.i18n import lazy
from quality.ranges import PRESET_PATTERN, PRESETS, TYPED_DATE, preset_span, read_typed
from quality.scans.store import ScanRow
from quality.settings import CodePatterns, Settings
from quality.shifts import Shifts
from quality.stations import STATIONS

MAX_RANGE = timedelta(days=400)
# A shift filter without dates looks this far back: it becomes one time range
# per day, and a bounded number of them keeps the query an index range scan.
SHIFT_LOOKBACK = timedelta(days=92)
_YES = re.compile(r"1|ON|TRUE|YES")
_TABLE_PAGE = re.compile(r"[1-9]\d{0,5}|all")
_PAGE_KEY = re.compile(r"\d{20}-\d{1,19}")
_NOT_A_DATE = {"from": lazy("From is not a real date or time."), "to": lazy("To is not a real date or time.")}
_OUTSIDE_CALENDAR = {
    "from": lazy("From must be between %(first)s and %(last)s.", first=FIRST_DAY, last=LAST_DAY),
    "to": lazy("To must be between %(first)s and %(last)s.", first=FIRST_DAY, last=LAST_DAY),
}
# How the list may be grouped, and a table of groups sorted: not part of the
# filter (a group's link narrows the filter to it), read with it.
GROUPINGS = ("order", "operator", "defect", "shift")
SORTS = ("rejected", "scans", "rate", "name")
# The page (from 1) of each long table of groups: the list's groups, the report's orders and operators.
TABLE_PAGES = ("page", "order_page", "operator_page")
FILTER_NAMES = ("station", "range", "from", "to", "shift", "operator", "order", "piece", "checker", "defect",
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
        Field("range", lazy("Range"), PRESET_PATTERN, "today", 16, _trim_lower, required=False,
              choices=tuple(PRESETS)),
        Field("from", lazy("From"), TYPED_DATE, lazy("2026-11-27 06:00 or 27.11.2026 06:00"), 19, _trim,
              required=False),
        Field("to", lazy("To"), TYPED_DATE, lazy("2026-11-27 14:00 or 27.11.2026 14:00"), 19, _trim,
              required=False),
        Field("shift", lazy("Shift"), re.compile(r"[1-9]"), "1", 1, required=False),
        OPERATOR.field(codes, "operator", required=False),
        ORDER.field(codes, "order", required=False),
        PIECE.field(codes, "piece", required=False),
        CHECKER.field(codes, "checker", required=False),
        DEFECT.field(codes, "defect", required=False),
        Field("rejected", lazy("Rejected only"), _YES, "1", 5, required=False),
        Field("rescans", lazy("Re-scans only"), _YES, "1", 5, required=False),
        Field("group", lazy("Group by"), re.compile("|".join(GROUPINGS)), " or ".join(GROUPINGS), 16,
              _trim_lower, required=False),
        Field("sort", lazy("Sort by"), re.compile("|".join(SORTS)), " or ".join(SORTS), 16, _trim_lower,
              required=False),
        *(Field(name, lazy("Page"), _TABLE_PAGE, "2", 6, _trim_lower, required=False)
          for name in TABLE_PAGES),
        Field("before", lazy("Page"), _PAGE_KEY, lazy("a page link"), 40, required=False),
        Field("after", lazy("Page"), _PAGE_KEY, lazy("a page link"), 40, required=False),
    )


@dataclass(frozen=True)
class PageKey:
    """Where a page of the list starts: just past this (created_at, id), the
    key pages seek on (keyset pagination)."""

    created_at: datetime
    id: int

    @classmethod
    def parse(cls, text: str) -> PageKey:
        stamp, _, scan_id = text.partition("-")
        created_at = datetime.strptime(stamp, "%Y%m%d%H%M%S%f")
        if not in_calendar(created_at.date()):
            raise ValueError(f"a page link outside the calendar: {text}")
        return cls(created_at, int(scan_id))

    @classmethod
    def of(cls, row: ScanRow) -> PageKey:
        return cls(row.created_at, row.id)

    def __str__(self) -> str:
        return f"{self.created_at:%Y%m%d%H%M%S%f}-{self.id}"


class Criterion(NamedTuple):
    """A value a filter may ask of a scan: found in any of the scan's `columns`
    (a `ScanRow` attribute and a column of `scans` alike), and in `summary`,
    the summary tables' column for it (None: no summary holds it)."""

    name: str  # the ScanFilter attribute holding what is asked (an `Asked`)
    columns: tuple[str, ...]
    summary: str | None
    many: bool = False  # several values, separated by commas: a scan with any of them
    prefix: bool = False  # a value short of a whole code: the codes that start with it


@dataclass(frozen=True)
class Asked:
    """What a filter asks of one criterion: any of the whole `values`, or a
    code starting with any of the `prefixes`."""

    values: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()

    def holds(self, value: str) -> bool:
        return value in self.values or value.startswith(self.prefixes)

    def condition(self, column: str) -> tuple[str, list[Any]]:
        """SQL for `column`: an index range per value or prefix (LIKE 'OPA%' is one)."""
        parts = [f"{column} = %s" if len(self.values) == 1
                 else f"{column} IN ({', '.join(['%s'] * len(self.values))})"] if self.values else []
        parts += [f"{column} LIKE %s"] * len(self.prefixes)
        params: list[Any] = [*self.values, *(_like(prefix) + "%" for prefix in self.prefixes)]
        return (parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"), params


def _like(text: str) -> str:
    """Text matched literally by LIKE (codes hold none of its wildcards, but a prefix is typed)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Flag(NamedTuple):
    """A yes/no a filter may ask: when set, the scan's `column` must be `value`,
    which the summary tables know as (`summary` column, comparison, value)."""

    name: str
    column: str
    value: bool
    summary: tuple[str, str, Any]


CRITERIA = (
    Criterion("station", ("station",), "station", many=True),
    Criterion("operator", ("operator_code",), "operator_code", many=True, prefix=True),
    Criterion("order", ("order_code",), "order_code", prefix=True),
    Criterion("piece", ("piece_code",), None, prefix=True),
    Criterion("defect", ("defect_code",), "defect_code", many=True),
    Criterion("checker", ("checker1_code", "checker2_code"), "checker_code"),
)
MAX_VALUES = 20  # values one criterion may list
FLAGS = (
    # The summaries hold no verdict per scan: a rejected scan is one whose defect does not approve.
    Flag("rejected", "approved", False, ("defect_code", "<>", APPROVED)),
    Flag("rescans", "is_rescan", True, ("is_rescan", "=", True)),
)
Term = tuple[str, str, Any]  # summary column, comparison, value (an `Asked`: comparison "in")


def term_condition(term: Term) -> tuple[str, list[Any]]:
    """A summary term as SQL on its summary table, and its parameters."""
    column, comparison, value = term
    if isinstance(value, Asked):
        return value.condition(column)
    return f"{column} {comparison} %s", [value]


def term_holds(term: Term, value: Any) -> bool:
    """Whether a value of the term's column meets it (a scan not summarised yet)."""
    _, comparison, wanted = term
    if isinstance(wanted, Asked):
        return wanted.holds(value)
    return (value == wanted) == (comparison == "=")


@dataclass(frozen=True)
class ScanFilter:
    station: Asked | None = None
    start: datetime | None = None  # naive UTC, inclusive
    end: datetime | None = None  # naive UTC, exclusive
    shift: int | None = None  # 0-based index into Shifts.starts
    operator: Asked | None = None
    order: Asked | None = None
    piece: Asked | None = None
    checker: Asked | None = None
    defect: Asked | None = None
    rejected: bool = False
    rescans: bool = False
    shifts: Shifts | None = field(default=None, compare=False)
    values: Mapping[str, str] = field(default_factory=dict, compare=False)  # as typed

    def _asked(self) -> list[tuple[Criterion, Asked]]:
        return [(criterion, value) for criterion in CRITERIA
                if (value := getattr(self, criterion.name)) is not None]

    def _flags(self) -> list[Flag]:
        return [flag for flag in FLAGS if getattr(self, flag.name)]

    def conditions(self, spans: list[tuple[datetime | None, datetime | None]] | None,
                   column: str | None = None) -> tuple[str, list[Any]]:
        """The SQL condition on `scans s` and its parameters, for these time spans
        (from `time_spans`; None: any time). With `column`, a value that may be
        in several columns (the checker) is looked for in that one only (one
        branch of a UNION)."""
        sql: list[str] = []
        params: list[Any] = []
        for criterion, asked in self._asked():
            columns = (column,) if column in criterion.columns else criterion.columns
            either = [asked.condition(f"s.{name}") for name in columns]
            alternatives = " OR ".join(part for part, _ in either)
            sql.append(alternatives if len(columns) == 1 else f"({alternatives})")
            params += [param for _, values in either for param in values]
        sql += [f"s.{flag.column} = {'TRUE' if flag.value else 'FALSE'}" for flag in self._flags()]
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

    def summary_terms(self) -> list[Term] | None:
        """Everything but time as (summary column, comparison, value), for the
        summary tables of quality/summary/; None when they cannot answer (a
        criterion no summary holds)."""
        terms: list[Term] = []
        for criterion, asked in self._asked():
            if criterion.summary is None:
                return None
            terms.append((criterion.summary, "in", asked))
        return terms + [flag.summary for flag in self._flags()]

    def matches(self, row: ScanRow) -> bool:
        """Whether a scan belongs to this filter: the live list's test for new scans."""
        for criterion, asked in self._asked():
            if not any(asked.holds(getattr(row, name)) for name in criterion.columns):
                return False
        if any(getattr(row, flag.column) != flag.value for flag in self._flags()):
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
    before: PageKey | None = None
    after: PageKey | None = None

    @property
    def ok(self) -> bool:
        return self.checked.ok

    @property
    def group(self) -> str | None:
        """How the list is grouped (GROUPINGS), if it is."""
        return self.checked.values.get("group") or None

    @property
    def sort(self) -> str:
        """How tables of groups are sorted (SORTS): the most rejected pieces first unless asked."""
        return self.checked.values.get("sort") or SORTS[0]

    def table_page(self, name: str) -> int | None:
        """The page (from 1) of a table of groups asked for (`name`: one of
        TABLE_PAGES); None: all its rows."""
        value = self.checked.values.get(name) or "1"
        return None if value == "all" else int(value)


def read_filter(params: Mapping[str, Any], settings: Settings, now: datetime | None = None) -> ListRequest:
    """Validate the list's query parameters; unknown parameters are ignored. A
    preset range is taken at `now` (naive UTC; default: the present)."""
    fields = filter_fields(settings.codes)
    criteria = {criterion.name: criterion for criterion in CRITERIA}
    checked = validate(params, [field for field in fields if field.name not in criteria])
    values, errors = checked.values, checked.errors
    asked: dict[str, Asked] = {}
    for each in fields:
        if each.name in criteria:
            text, found, error = _read_criterion(criteria[each.name], each, _given(params, each.name))
            values[each.name] = text
            if error is not None:
                errors[each.name] = error
            elif found is not None:
                asked[each.name] = found
    shifts = Shifts.of_plant(settings)
    start = _moment(values, errors, "from", settings.timezone, end_of_day=False)
    end = _moment(values, errors, "to", settings.timezone, end_of_day=True)
    if values.get("range") and "range" not in errors:
        if values.get("from") or values.get("to"):
            errors["range"] = lazy("Choose a range or From and To, not both.")
        else:
            start, end = preset_span(values["range"], shifts, now or utc_now())
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
                cursors[name] = PageKey.parse(values[name])
            except ValueError:
                errors[name] = lazy("This page link is broken; start again from the first page.")
    if errors:
        return ListRequest(ScanFilter(shifts=shifts, values=values), checked)
    scan_filter = ScanFilter(
        start=start, end=end, shift=shift, rejected=bool(values.get("rejected")),
        rescans=bool(values.get("rescans")), shifts=shifts, values=values, **asked,
    )
    return ListRequest(scan_filter, checked, cursors.get("before"), cursors.get("after"))


def _given(params: Mapping[str, Any], name: str) -> Any:
    """A parameter as typed; one sent several times (a multi-select, ticked
    boxes) as its values separated by commas, as one would type them."""
    getlist = getattr(params, "getlist", None)
    if getlist is None:
        return params.get(name)
    return ",".join(value for value in getlist(name) if value) or None


def _read_criterion(criterion: Criterion, field: Field, raw: Any) -> tuple[str, Asked | None, str | None]:
    """A criterion's parameter: its text to show back, what it asks (None:
    nothing), and what is wrong with it. Each value is checked by the code's
    own field; one short of a whole code is a prefix where the criterion takes one."""
    if raw is not None and not isinstance(raw, str):
        return "", None, lazy("%(label)s must be text.", label=field.label)
    parts = (raw or "").split(",") if criterion.many else [raw or ""]
    typed = list(dict.fromkeys(value for part in parts if (value := field.normalise(part))))
    text = ",".join(typed)[:KEEP]
    if not typed:
        return "", None, None
    if len(typed) > MAX_VALUES:
        return text, None, lazy("%(label)s: at most %(max)s values.", label=field.label, max=MAX_VALUES)
    whole: list[str] = []
    prefixes: list[str] = []
    for value in typed:
        error = validate({field.name: value}, [field]).errors.get(field.name)
        if error is None:
            whole.append(value)
        elif criterion.prefix and _starts_a_code(field, value):
            prefixes.append(value)
        else:
            return text, None, error if len(typed) == 1 else lazy("%(value)s: %(reason)s", value=value,
                                                                     reason=error)
    return text, Asked(tuple(whole), tuple(prefixes)), None


def _starts_a_code(field: Field, value: str) -> bool:
    """Whether the value is the start of a code of the field's pattern: codes
    have a fixed shape (SPEC §5), so the field's example finishes it into one."""
    finished = value + field.example[len(value):]
    return len(value) < len(field.example) and bool(field.pattern.fullmatch(finished))


def _moment(values: dict[str, str], errors: dict[str, str], name: str, timezone: ZoneInfo, *,
            end_of_day: bool) -> datetime | None:
    """A typed local date or date-time as naive UTC; a bare date as "to" means
    the end of that day."""
    text = values.get(name)
    if not text or name in errors:
        return None
    typed = read_typed(text)
    assert typed is not None
    year, month, day, hour, minute, second, with_time = typed
    try:
        local = datetime(year, month, day, hour, minute, second, tzinfo=timezone)
    except ValueError:
        errors[name] = _NOT_A_DATE[name]
        return None
    if not in_calendar(local.date()):
        errors[name] = _OUTSIDE_CALENDAR[name]
        return None
    if end_of_day and not with_time:
        local = datetime.combine(local.date() + timedelta(days=1), time(), timezone)
    return to_utc(local)
