"""The one way the totals and reports read figures: `aggregate` answers a
`Question` from the narrowest summary tables that hold it, plus the newest
scans and the partial hours read from the scans themselves, exactly."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from quality.clock import utc_now
from quality.codes import APPROVED
from quality.db import Cursor
from quality.defects import names as defect_names
from quality.scan_filter import ScanFilter, Term, term_condition, term_holds
from quality.shifts import Shifts
from quality.summary.figures import Figures, rank
from quality.summary.tables import (
    DAILY_TABLES,
    EPOCH,
    HOURLY,
    HOURLY_TABLES,
    QUEUED,
    SHIFTS,
    Fact,
    Range,
    Rollup,
    Span,
    deltas,
    in_hours,
    layout_of,
    split_hours,
    whole_days,
    whole_shifts,
)

MINUTE = timedelta(minutes=1)
MAX_CHOICES = 2000  # operators a pick list offers
TAIL_LIMIT = 20_000  # more unsummarised scans than this (catching up): read the scans instead
# Grouping through a temporary table costs some five times reading a row in
# index order: from this share of a table's days on, read its covering index.
ORDERED_SHARE = 0.25
_GROUP_COLUMN = {None: None, "hour": "hour", "operator": "operator_code", "order": "order_code",
                 "defect": "defect_code"}
_SCANS_GROUP = {None: "NULL", "hour": "TIMESTAMPDIFF(HOUR, '2000-01-01 00:00:00', s.created_at)",
                "operator": "s.operator_code", "order": "s.order_code", "defect": "s.defect_code"}


def _plan(terms: list[Term] | None, group: str | None, defects: bool) -> tuple[Rollup, Rollup | None] | None:
    """The hourly table, and the daily one for whole days, that can answer; None: read the scans."""
    if terms is None:
        return None
    needed = {column for column, _, _ in terms}
    if group not in (None, "hour"):
        needed.add(_GROUP_COLUMN[group])
    if defects:
        needed.add("defect_code")
    hourly = next((rollup for rollup in HOURLY_TABLES if rollup.holds(needed)), None)
    if hourly is None:
        return None
    daily = None if group == "hour" else next(
        (rollup for rollup in DAILY_TABLES if rollup.holds(needed)), None)
    return hourly, daily


def _matches(terms: list[Term], fact: Fact) -> bool:
    """The terms' condition, for one scan not summarised yet."""
    for term in terms:
        column = term[0]
        if column == "checker_code":
            if not any(term_holds(term, checker) for checker in fact.checkers):
                return False
        elif not term_holds(term, getattr(fact, column)):
            return False
    return True


@dataclass(frozen=True)
class Question:
    """What `aggregate` is asked: figures of a filter's scans, per `group`
    (None, hour, operator, order, defect). Made by the constructors below,
    one per kind of question the pages ask, so no caller combines the options
    into one `aggregate` cannot answer.

    Without `defects`, the rejected scans per defect are left out (cheaper: no
    grouping by defect); `within` keeps only these groups; `top` keeps only
    that many, ranked by `rank`; `fold` maps each minute (from 2000-01-01 UTC;
    the summaries' hours come as their first minute) to the group it counts in:
    a shift. With the plant's `shifts`, whole shifts are read from
    scan_shifts when it holds them and the question needs no other columns
    (the fewest rows over a long range); per hour, each shift then comes as
    its first hour, so `fold` maps it to its shift."""

    filter: ScanFilter
    group: str | None = None
    defects: bool = True
    within: tuple[str, ...] | None = None
    top: int | None = None
    fold: Callable[[Any], Any] | None = None
    shifts: Shifts | None = None

    def __post_init__(self) -> None:
        if self.top is not None and (self.defects or self.fold is not None):
            raise ValueError("a ranked question reads no defects and folds nothing")
        if self.shifts is not None and self.group == "hour" and self.fold is None:
            raise ValueError("hours read with whole shifts must be folded into shifts")

    @classmethod
    def totals(cls, scan_filter: ScanFilter) -> Question:
        """The filter's scans and pieces, without defects."""
        return cls(scan_filter, defects=False, shifts=scan_filter.shifts)

    @classmethod
    def per_shift(cls, scan_filter: ScanFilter) -> Question:
        """Per production day and shift, as (day, 0-based shift index), with defects."""
        shifts = scan_filter.shifts
        if shifts is None:
            raise ValueError("a question per shift needs the filter's shifts")
        return cls(scan_filter, "hour", fold=functools.partial(shift_of_minute, shifts), shifts=shifts)

    @classmethod
    def per(cls, scan_filter: ScanFilter, group: str, within: Sequence[str] | None = None) -> Question:
        """Per operator, order or defect, with defects; only the groups `within`, if given."""
        return cls(scan_filter, group, within=None if within is None else tuple(within))

    @classmethod
    def groups(cls, scan_filter: ScanFilter, group: str) -> Question:
        """Every operator, order or defect, without defects."""
        return cls(scan_filter, group, defects=False)

    @classmethod
    def ranked(cls, scan_filter: ScanFilter, group: str, top: int) -> Question:
        """The `top` groups as `rank` orders them, without defects."""
        return cls(scan_filter, group, defects=False, top=top)


@functools.lru_cache(maxsize=65536)
def shift_of_minute(shifts: Shifts, minute: int) -> tuple[date, int]:
    """The production day and shift a minute (counted from 2000-01-01 00:00
    UTC, as the summaries count hours) starts in; a shift's first hour stands
    for it in scan_shifts. Kept: a report folds the same few thousand hours
    each time."""
    return shifts.of(EPOCH + MINUTE * minute)


async def aggregate(cur: Cursor, question: Question, now: datetime | None = None) -> dict[Any, Figures]:
    """Figures for the question's scans, per its group: exact and current. Read
    in one snapshot (`Database.transaction(snapshot=True)`): each scan is then
    either in the summary tables or in scan_queue, as one moment left them."""
    if not cur.snapshot:
        raise ValueError("aggregate reads several statements: call it in a snapshot transaction")
    scan_filter, group, defects, top, fold, shifts = (
        question.filter, question.group, question.defects, question.top, question.fold, question.shifts)
    now = now or utc_now()
    spans = scan_filter.time_spans(now)
    only = Within(group, question.within) if question.within is not None else None
    terms = scan_filter.summary_terms()
    plan = _plan(terms, group, defects)
    if fold is not None and shifts is not None and spans is not None:
        spans = split_at_shifts(shifts, spans)
    if plan is None or terms is None or (fold is not None and spans is None):
        return _ranked(await _from_scans(cur, scan_filter, group, spans, defects, only, fold), top)
    hourly, daily = plan
    column = _GROUP_COLUMN[group]
    await cur.execute(f"{QUEUED} ORDER BY c.scan_id LIMIT %s", (TAIL_LIMIT + 1,))
    tail = await cur.fetchall()
    if len(tail) > TAIL_LIMIT:  # catching up (a rebuild): the scans answer alone
        return _ranked(await _from_scans(cur, scan_filter, group, spans, defects, only, fold), top)
    await cur.execute("SELECT layout FROM scan_shift_state WHERE id = 1")
    held = await cur.fetchone()
    hours, edges = split_hours(spans if spans is not None else [(None, None)])
    days: list[Range] = []
    whole: list[Range] = []
    if (shifts is not None and hourly is HOURLY and held is not None and held[0] == layout_of(shifts)
            and on_whole_hours(shifts)):
        whole, rest = whole_shifts(shifts, hours)  # fewer rows than any daily table
    elif daily is not None:
        days, rest = whole_days(hours)
    else:
        rest = hours
    # What the summaries do not hold yet: the queued scans, and the partial hours.
    newest: dict[Any, Figures] = {}
    for fact, change in deltas(list(tail))[0].items():
        name = None if column is None else getattr(fact, column)
        if (in_hours(fact.hour, hours) and _matches(terms, fact)
                and (only is None or name in only.values)):
            _figures(newest, name if fold is None else fold(name * 60)).add(
                fact.defect_code if defects else APPROVED, *change)
    if edges:
        for name, figures in (await _from_scans(cur, scan_filter, group, edges, defects, only, fold)).items():
            _figures(newest, name).merge(figures)
    index = await _ordered_index(cur, daily, group, days) if daily is not None and days else None
    layers = [(hourly, rest, None), *([(daily, days, index)] if daily is not None else []),
              (SHIFTS, whole, None)]
    if top is None:
        result = await _from_rollups(cur, layers, terms, group, defects, only,
                                     fold=None if fold is None else _per_hour(fold))
    else:
        result = await _top_groups(cur, layers, terms, group, only, top, newest)
    for name, figures in newest.items():
        _figures(result, name).merge(figures)
    return _ranked(result, top)


def _per_hour(fold: Callable[[int], Any]) -> Callable[[int], Any]:
    """A fold of minutes as a fold of the summaries' hours."""
    return lambda hour: fold(hour * 60)


def split_at_shifts(shifts: Shifts, spans: list[Span]) -> list[Span]:
    """The spans cut where shifts start, when a shift starts inside an hour (a
    zone whose offset is not whole hours, or a shift at minutes past): each
    hour the summaries hold then lies in one shift, and the rest (partial
    hours) is read from the scans by the minute. Shifts starting on whole UTC
    hours (Europe/Bucharest, across DST too) leave the spans as they are."""
    if on_whole_hours(shifts):
        return spans
    cut: list[Span] = []
    for start, end in spans:
        if start is None or end is None:
            cut.append((start, end))
            continue
        bounds = sorted({bound for index in range(len(shifts.starts))
                         for lo, hi in shifts.spans_within(index, start, end) for bound in (lo, hi)}
                        | {start, end})
        cut += list(itertools.pairwise(bounds))
    return cut


@functools.lru_cache(maxsize=64)
def on_whole_hours(shifts: Shifts) -> bool:
    """Whether every shift starts on a whole UTC hour, whatever the date: each
    start at a whole local hour, in a zone whose offset from UTC has been whole
    hours since the summaries begin (2000) and for years to come."""
    if any(start % 60 for start in shifts.starts):
        return False
    day = datetime(2000, 1, 1, 12)
    while day.year < 2100:
        offset = shifts.timezone.utcoffset(day)
        if offset is not None and offset.total_seconds() % 3600:
            return False
        day += timedelta(days=7)
    return True


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
    conditions: list[str] = []
    params: list[Any] = []
    for term in terms:
        condition, values = term_condition(term)
        conditions.append(condition)
        params += values
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
                      spans: list[Span] | None, defects: bool, only: Within | None,
                      fold: Callable[[int], Any] | None = None) -> dict[Any, Figures]:
    """Figures read from the scans themselves; a piece counts at its scan of the
    highest id (no higher one of it at its station). Folded per hour, the
    scans are grouped by the minute, so a fold (into shifts) is exact however
    the shifts fall within hours."""
    where, params = scan_filter.conditions(spans)
    if only is not None:
        condition, values = only.condition(_SCANS_GROUP[group])
        where += condition
        params += values
    by_minute = fold is not None and group == "hour"
    grouped = _MINUTE if by_minute else _SCANS_GROUP[group]
    column, defect, grouping = _grouping(grouped, "s.defect_code", defects)
    await cur.execute(
        f"SELECT {column}, {defect}, COUNT(*),"
        f" CAST(COALESCE(SUM({_LATEST} AND s.approved), 0) AS SIGNED),"
        f" CAST(COALESCE(SUM({_LATEST} AND NOT s.approved), 0) AS SIGNED)"
        f" FROM scans s WHERE {where}{grouping}", params)
    return _collect(await cur.fetchall(), fold if by_minute else None)


# Whether a scan `s` is its piece's latest: the one definition (issue 22), read
# from the scans alone, so a scan stored by hand counts as soon as it is there.
_LATEST = ("NOT EXISTS (SELECT 1 FROM scans n WHERE n.piece_code = s.piece_code AND n.station = s.station"
           " AND n.id > s.id)")
_MINUTE = "TIMESTAMPDIFF(MINUTE, '2000-01-01 00:00:00', s.created_at)"


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


@dataclass(frozen=True)
class Choices:
    """The values a filter's pick lists offer: the catalogue's defect codes
    with their names, and the operators the summaries have seen."""

    defects: dict[str, str]
    operators: list[str]


async def filter_choices(cur: Cursor, language: str) -> Choices:
    """Two small reads: the catalogue (names in the reader's language), and the
    distinct operators of scan_daily_operator, read from the index it leads (a
    loose index scan)."""
    await cur.execute("SELECT DISTINCT operator_code FROM scan_daily_operator ORDER BY operator_code"
                      " LIMIT %s", (MAX_CHOICES,))
    operators = [code for (code,) in await cur.fetchall()]
    return Choices(dict(sorted((await defect_names(cur, language)).items())), operators)

