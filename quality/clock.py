"""Time as the database stores it, as the plant reads it, and the calendar a
person may ask about.

Stored times are UTC without a zone (DATETIME columns): `utc_now()`, and
everything written or compared in SQL. People read and type times in the
plant's zone (`QUALITY_TIMEZONE`): `to_plant` and `to_utc` are the one
conversion each way.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, tzinfo

# The days a date typed into a page may name: any plant's history and plans,
# and far enough inside what Python (year 1 to 9999) and MariaDB's DATETIME
# (1000 to 9999) hold that a range's arithmetic around them (the plant's
# offset, a shift or a day either side) never leaves it.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2999, 12, 31)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def in_calendar(day: date) -> bool:
    """Whether a typed date lies within the days a page may be asked about."""
    return FIRST_DAY <= day <= LAST_DAY


def to_plant(at: datetime, zone: tzinfo) -> datetime:
    """A stored (naive UTC) or zoned time as the plant's local time."""
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at).astimezone(zone)


def to_utc(local: datetime) -> datetime:
    """A zoned time as stored: naive UTC."""
    return local.astimezone(UTC).replace(tzinfo=None)


@functools.lru_cache(maxsize=4096)
def plant_moment(day: date, minutes: int, zone: tzinfo) -> datetime:
    """A plant-time moment (minutes after local midnight) as naive UTC; a report
    asks for each shift's bounds many times."""
    return to_utc(datetime.combine(day, time(minutes // 60, minutes % 60), zone))
