"""The defect catalogue, code → name in each language (and an optional
category), active or not: the one module that reads and writes
`defect_codes`. The admin's defect pages audit each change in the same
transaction; `record_scan` refuses an inactive code itself, and scans keep the
names their code had, in every language (migrations 0004, 0016). Which code
approves is quality/codes.py's `APPROVED`.

`name` is the English name, which every code has; `name_ro` the Romanian one,
which may be empty: `name_in` is the one rule for which name a reader sees."""

from __future__ import annotations

from typing import NamedTuple

from quality.db import Cursor


class Defect(NamedTuple):
    code: str
    name: str
    name_ro: str
    category: str
    active: bool


def name_in(language: str, english: str, romanian: str) -> str:
    """A defect's name in the reader's language: the Romanian name for a
    Romanian reader where there is one, else the English name."""
    return romanian if language == "ro" and romanian else english


async def catalogue(cur: Cursor) -> list[Defect]:
    """Every code, in code order."""
    await cur.execute("SELECT code, name, name_ro, category, active FROM defect_codes ORDER BY code")
    return [Defect(code, name, name_ro, category, bool(active))
            for code, name, name_ro, category, active in await cur.fetchall()]


async def find(cur: Cursor, code: str, lock: bool = False) -> Defect | None:
    """A code's entry; `lock` holds its row (or, for a code not there, the gap it would take)."""
    await cur.execute("SELECT code, name, name_ro, category, active FROM defect_codes WHERE code = %s"
                      + (" FOR UPDATE" if lock else ""), (code,))
    row = await cur.fetchone()
    return None if row is None else Defect(row[0], row[1], row[2], row[3], bool(row[4]))


async def names(cur: Cursor, language: str) -> dict[str, str]:
    """Every code's current name in the reader's language."""
    await cur.execute("SELECT code, name, name_ro FROM defect_codes")
    return {code: name_in(language, name, name_ro) for code, name, name_ro in await cur.fetchall()}


async def add(cur: Cursor, code: str, name: str, name_ro: str, category: str) -> None:
    await cur.execute("INSERT INTO defect_codes (code, name, name_ro, category) VALUES (%s, %s, %s, %s)",
                      (code, name, name_ro, category))


async def update(cur: Cursor, code: str, name: str, name_ro: str, category: str, active: bool) -> None:
    await cur.execute("UPDATE defect_codes SET name = %s, name_ro = %s, category = %s, active = %s"
                      " WHERE code = %s", (name, name_ro, category, active, code))
