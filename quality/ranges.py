"""Time ranges as a person names them: a date typed in their language's way
or in ISO, and the presets a supervisor picks (this shift, today, the last
seven days...), taken from the plant's shift calendar (`Shifts`) at the
moment they are asked for, so a link or a wall screen showing "this shift"
moves on with the shifts. Also the range said back in words.

A preset's days are production days: with the night shift starting at 22:00,
at 02:00 "today" is the production day that began the morning before, and
"this shift" the night shift that began at 22:00."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from quality.clock import to_plant
from quality.i18n import LazyText, lazy
from quality.shifts import Shifts

# The dates a filter field takes: ISO (2026-11-20, 2026-11-20T06:00, 2026-11-20 06:00)
# in every language, and day first with dots (20.11.2026 06:00), as Romanian writes them.
TYPED_DATE = re.compile(
    r"(?:(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})|(?P<dday>\d{1,2})\.(?P<dmonth>\d{1,2})\.(?P<dyear>\d{4}))"
    r"(?:[T ](?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?")
# How each language writes a date and time for typing (and how the presets fill the fields).
_WRITTEN = {"ro": ("%d.%m.%Y", "%d.%m.%Y %H:%M"), "en": ("%Y-%m-%d", "%Y-%m-%d %H:%M")}


def read_typed(text: str) -> tuple[int, int, int, int, int, int, bool] | None:
    """A typed date: year, month, day, hour, minute, second and whether a time
    was given; None when it is written neither way (checked, not whether the day exists)."""
    found = TYPED_DATE.fullmatch(text)
    if found is None:
        return None
    parts = found.groupdict()
    year, month, day = (parts["year"], parts["month"], parts["day"]) if parts["year"] else (
        parts["dyear"], parts["dmonth"], parts["dday"])
    clock = [int(parts[name] or 0) for name in ("hour", "minute", "second")]
    return int(year), int(month), int(day), *clock, parts["hour"] is not None


def written(at: datetime, timezone: ZoneInfo, language: str, *, with_time: bool = True) -> str:
    """A stored (naive UTC) moment as the plant reads it, written the way `language` types dates."""
    formats = _WRITTEN.get(language, _WRITTEN["en"])
    return to_plant(at, timezone).strftime(formats[with_time])


Span = tuple[datetime, datetime]  # naive UTC, [start, end)


def _this_shift(shifts: Shifts, now: datetime) -> Span:
    return shifts.around(now)


def _previous_shift(shifts: Shifts, now: datetime) -> Span:
    return shifts.around(shifts.around(now)[0] - timedelta(microseconds=1))


def _today(shifts: Shifts, now: datetime) -> Span:
    return shifts.day_span(shifts.of(now)[0])


def _yesterday(shifts: Shifts, now: datetime) -> Span:
    return shifts.day_span(shifts.of(now)[0] - timedelta(days=1))


def _last_7_days(shifts: Shifts, now: datetime) -> Span:
    today = shifts.of(now)[0]
    return shifts.day_span(today - timedelta(days=6))[0], shifts.day_span(today)[1]


def _this_month(shifts: Shifts, now: datetime) -> Span:
    today = shifts.of(now)[0]
    return shifts.day_span(today.replace(day=1))[0], shifts.day_span(today)[1]


# key: (label, how it is said with its bounds, its span). A running range
# ("since") names its start; a past one both ends.
PRESETS: dict[str, tuple[LazyText, Callable[..., LazyText], Callable[[Shifts, datetime], Span]]] = {
    "shift": (lazy("This shift"), lambda **at: lazy("This shift, since %(start)s", **at), _this_shift),
    "previous-shift": (lazy("Previous shift"),
                       lambda **at: lazy("Previous shift, %(start)s to %(end)s", **at), _previous_shift),
    "today": (lazy("Today"), lambda **at: lazy("Today, since %(start)s", **at), _today),
    "yesterday": (lazy("Yesterday"), lambda **at: lazy("Yesterday, %(start)s to %(end)s", **at), _yesterday),
    "7days": (lazy("Last 7 days"), lambda **at: lazy("Last 7 days, since %(start)s", **at), _last_7_days),
    "month": (lazy("This month"), lambda **at: lazy("This month, since %(start)s", **at), _this_month),
}
PRESET_PATTERN = re.compile("|".join(re.escape(key) for key in PRESETS))


def preset_span(key: str, shifts: Shifts, now: datetime) -> Span:
    """A preset's range at `now` (naive UTC), as naive-UTC [start, end)."""
    return PRESETS[key][2](shifts, now)


def said(at: datetime, now: datetime, timezone: ZoneInfo, language: str) -> str:
    """A range's bound as said back: its time alone when it falls on today's date."""
    local = to_plant(at, timezone)
    if local.date() == to_plant(now, timezone).date():
        return local.strftime("%H:%M")
    return written(at, timezone, language)


def in_words(key: str | None, start: datetime | None, end: datetime | None, now: datetime,
             timezone: ZoneInfo, language: str) -> LazyText:
    """The range said back: a preset by its name and bounds ("Today, since
    06:00"), typed dates as a sentence, no dates as any time."""
    def say(at: datetime) -> str:
        return said(at, now, timezone, language)

    if key in PRESETS and start is not None and end is not None:
        return PRESETS[key][1](start=say(start), end=say(end))
    if start is not None and end is not None:
        return lazy("From %(start)s to %(end)s", start=say(start), end=say(end))
    if start is not None:
        return lazy("Since %(start)s", start=say(start))
    if end is not None:
        return lazy("Until %(end)s", end=say(end))
    return lazy("Any time")


def preset_choices() -> list[tuple[str, LazyText]]:
    """The presets as a form offers them: key and label."""
    return [(key, label) for key, (label, _, _) in PRESETS.items()]
