"""The defect catalogue, code → name (and an optional category), active or
not: the one module that reads and writes `defect_codes`. The admin's defect
pages audit each change in the same transaction; `record_scan` refuses an
inactive code itself, and scans keep the name their code had (migration 0004).
Which code approves is quality/codes.py's `APPROVED`."""

from __future__ import annotations

from typing import NamedTuple

from quality.db import Cursor


class Defect(NamedTuple):
    code: str
    name: str
    category: str
    active: bool


async def catalogue(cur: Cursor) -> list[Defect]:
    """Every code, in code order."""
    await cur.execute("SELECT code, name, category, active FROM defect_codes ORDER BY code")
    return [Defect(code, name, category, bool(active))
            for code, name, category, active in await cur.fetchall()]


async def find(cur: Cursor, code: str, lock: bool = False) -> Defect | None:
    """A code's entry; `lock` holds its row (or, for a code not there, the gap it would take)."""
    await cur.execute("SELECT code, name, category, active FROM defect_codes WHERE code = %s"
                      + (" FOR UPDATE" if lock else ""), (code,))
    row = await cur.fetchone()
    return None if row is None else Defect(row[0], row[1], row[2], bool(row[3]))


async def names(cur: Cursor) -> dict[str, str]:
    """Every code's current name."""
    await cur.execute("SELECT code, name FROM defect_codes")
    return dict(await cur.fetchall())


async def add(cur: Cursor, code: str, name: str, category: str) -> None:
    await cur.execute("INSERT INTO defect_codes (code, name, category) VALUES (%s, %s, %s)",
                      (code, name, category))


async def update(cur: Cursor, code: str, name: str, category: str, active: bool) -> None:
    await cur.execute("UPDATE defect_codes SET name = %s, category = %s, active = %s WHERE code = %s",
                      (name, category, active, code))
