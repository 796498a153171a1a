"""Reading the filtered scans: keyset pages (newest first), batches for the
exports, and the filter's totals.

Pages seek past the last row seen on (created_at, id) instead of counting an
OFFSET, so page 1,000 reads the same 51 index entries as page 1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from quality.clock import utc_now
from quality.db import Cursor as DbCursor
from quality.db import Database
from quality.lists.filters import Cursor, ScanFilter
from quality.scans.store import ScanRow
from quality.summary import Figures, aggregate

PAGE_SIZE = 50
EXPORT_BATCH = 2000

# STRAIGHT_JOIN: walk scans by the filter's own index, in order, and look each
# row's defect name up by primary key.
_SELECT = (
    "SELECT STRAIGHT_JOIN s.id, s.station, s.created_at, s.operator_code, s.piece_code, s.order_code,"
    " s.checker1_code, s.checker2_code, s.defect_code, d.name, s.approved, s.is_rescan"
    " FROM scans s JOIN defect_codes d ON d.code = s.defect_code"
)
_OLDER = "(s.created_at < %s OR (s.created_at = %s AND s.id < %s))"
_NEWER = "(s.created_at > %s OR (s.created_at = %s AND s.id > %s))"


@dataclass(frozen=True)
class Page:
    rows: list[ScanRow]
    newer: Cursor | None  # the newer page starts after this row; None on the first page
    older: Cursor | None  # the older page starts before this row; None on the last page

    @property
    def is_first(self) -> bool:
        return self.newer is None


def _row(values: tuple) -> ScanRow:
    *row, approved, rescan = values
    return ScanRow(*row, bool(approved), bool(rescan))


async def fetch_page(cur: DbCursor, scan_filter: ScanFilter, *, before: Cursor | None = None,
                     after: Cursor | None = None, size: int = PAGE_SIZE,
                     now: datetime | None = None) -> Page:
    where, params = scan_filter.conditions(scan_filter.time_spans(now or utc_now()))
    if after is not None:  # a newer page: read upwards from the cursor, show newest first
        await cur.execute(
            f"{_SELECT} WHERE {where} AND {_NEWER} ORDER BY s.created_at, s.id LIMIT %s",
            (*params, after.created_at, after.created_at, after.id, size + 1))
        found = [_row(values) for values in await cur.fetchall()]
        more = len(found) > size
        rows = found[:size][::-1]
        if not rows:
            return Page([], None, after)
        return Page(rows, Cursor.of(rows[0]) if more else None, Cursor.of(rows[-1]))
    seek = ""
    if before is not None:
        seek = f" AND {_OLDER}"
        params += [before.created_at, before.created_at, before.id]
    await cur.execute(f"{_SELECT} WHERE {where}{seek} ORDER BY s.created_at DESC, s.id DESC LIMIT %s",
                      (*params, size + 1))
    found = [_row(values) for values in await cur.fetchall()]
    rows = found[:size]
    newer = Cursor.of(rows[0]) if before is not None and rows else before
    older = Cursor.of(rows[-1]) if len(found) > size else None
    return Page(rows, newer, older)


async def all_rows(db: Database, scan_filter: ScanFilter,
                   batch: int = EXPORT_BATCH) -> AsyncIterator[list[ScanRow]]:
    """Every filtered row, newest first, in batches: each batch is its own short
    transaction, so no connection is held while the client reads."""
    now = utc_now()
    before = None
    while True:
        async with db.transaction() as cur:
            page = await fetch_page(cur, scan_filter, before=before, size=batch, now=now)
        if page.rows:
            yield page.rows
        if page.older is None:
            return
        before = page.older


async def totals(cur: DbCursor, scan_filter: ScanFilter, now: datetime | None = None) -> Figures:
    """Scans, and pieces by their latest scan, for the filter."""
    return (await aggregate(cur, scan_filter, None, now)).get(None, Figures())
