"""Filters a user saved by name: the scan list's query string, kept with its
owner (migration 0014). The one module that reads and writes `saved_filters`."""

from __future__ import annotations

import re
from typing import NamedTuple

from quality.db import Cursor
from quality.fields import Field
from quality.i18n import lazy

MAX_SAVED = 50  # a user's saved filters
MAX_QUERY = 2000  # characters of a saved query string (the column's size)
NAME = Field("name", lazy("Name"), re.compile(r"[^\x00-\x1f\x7f]+"), lazy("Rejected, quality station"), 60,
             str.strip, missing=lazy("Name the filter to save it."))


class SavedFilter(NamedTuple):
    id: int
    name: str
    query: str  # the list's query string, without the leading ?


async def saved(cur: Cursor, user_id: int) -> list[SavedFilter]:
    """A user's saved filters, by name."""
    await cur.execute("SELECT id, name, query FROM saved_filters WHERE user_id = %s ORDER BY name, id",
                      (user_id,))
    return [SavedFilter(*row) for row in await cur.fetchall()]


async def save(cur: Cursor, user_id: int, name: str, query: str) -> str | None:
    """Save a filter; what stops it (a name taken, too many saved), if anything."""
    # The user's row locked: two saves at once cannot both pass the count.
    await cur.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user_id,))
    await cur.execute("SELECT COUNT(*), COALESCE(SUM(name = %s), 0) FROM saved_filters WHERE user_id = %s",
                      (name, user_id))
    count, taken = await cur.fetchone() or (0, 0)
    if taken:
        return lazy("You have a saved filter named %(name)s already: choose another name, or delete that"
                    " one first.", name=name)
    if count >= MAX_SAVED:
        return lazy("You have %(max)s saved filters: delete one first.", max=MAX_SAVED)
    await cur.execute("INSERT INTO saved_filters (user_id, name, query) VALUES (%s, %s, %s)",
                      (user_id, name, query))
    return None


async def delete(cur: Cursor, user_id: int, saved_id: int) -> bool:
    """Delete one of the user's own saved filters; False if they have none of that id."""
    return bool(await cur.execute("DELETE FROM saved_filters WHERE id = %s AND user_id = %s",
                                  (saved_id, user_id)))
