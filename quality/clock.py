"""The time as the database stores it: UTC, without a zone (DATETIME columns),
and the calendar a person may ask about.

Pages show times in the plant's zone (`Renderer.local_time`); everything
written or compared in SQL uses `utc_now()`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

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
