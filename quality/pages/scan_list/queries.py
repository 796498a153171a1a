"""Reading the filtered scans: keyset pages (newest first), batches for the
exports, and the filter's totals.

Pages seek past the last row seen on (created_at, id) instead of counting an
OFFSET, so page 1,000 reads the same 51 index entries as page 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from quality.clock import utc_now
from quality.db import Cursor, Database
from quality.scan_filter import PageKey, ScanFilter
from quality.scans.store import ScanRow
from quality.summary.figures import Figures
from quality.summary.query import Question, aggregate

PAGE_SIZE = 50
EXPORT_BATCH = 1000  # rows a batch: its read and parse hold the event loop a couple of ms

# Each row with the defect names its code had when it was scanned (migrations 0004, 0016),
# read from scans alone, walking the filter's own index in order.
_SELECT = (
    "SELECT s.id, s.station, s.created_at, s.operator_code, s.piece_code, s.order_code,"
    " s.checker1_code, s.checker2_code, s.defect_code, s.defect_name, s.defect_name_ro, s.approved,"
    " s.is_rescan"
    " FROM scans s"
)
_OLDER = "(s.created_at < %s OR (s.created_at = %s AND s.id < %s))"
_NEWER = "(s.created_at > %s OR (s.created_at = %s AND s.id > %s))"


@dataclass(frozen=True)
class Page:
    rows: list[ScanRow]
    newer: PageKey | None  # the newer page starts after this row; None on the first page
    older: PageKey | None  # the older page starts before this row; None on the last page

    @property
    def is_first(self) -> bool:
        return self.newer is None


# A row as read: ScanRow's fields in order, the two flags 0 or 1.
Raw = tuple[Any, ...]


def scan_row(values: Raw) -> ScanRow:
    *row, approved, rescan = values
    return ScanRow(*row, bool(approved), bool(rescan))


async def fetch_page(cur: Cursor, scan_filter: ScanFilter, *, before: PageKey | None = None,
                     after: PageKey | None = None, size: int = PAGE_SIZE,
                     now: datetime | None = None) -> Page:
    spans = scan_filter.time_spans(now or utc_now())
    if after is not None:  # a newer page: read upwards from the cursor, show newest first
        found = [scan_row(values) for values in await _seek(cur, scan_filter, spans, after, True, size + 1)]
        more = len(found) > size
        rows = found[:size][::-1]
        if not rows:
            return Page([], None, after)
        return Page(rows, PageKey.of(rows[0]) if more else None, PageKey.of(rows[-1]))
    found = [scan_row(values) for values in await _seek(cur, scan_filter, spans, before, False, size + 1)]
    rows = found[:size]
    newer = PageKey.of(rows[0]) if before is not None and rows else before
    older = PageKey.of(rows[-1]) if len(found) > size else None
    return Page(rows, newer, older)


Span = tuple[datetime | None, datetime | None]


async def _seek(cur: Cursor, scan_filter: ScanFilter, spans: list[Span] | None, cursor: PageKey | None,
                upward: bool, limit: int) -> list[Raw]:
    """Up to `limit` rows past the cursor. A filter of many time spans (a shift on
    every day) is read a span at a time, nearest first: each is one index range
    read in order, where all of them at once would be sorted."""
    if spans is None or len(spans) < 2:
        return await _select(cur, scan_filter, spans, cursor, upward, limit)
    rows: list[Raw] = []
    for span in sorted(spans, key=lambda span: span[0] or datetime.min, reverse=not upward):
        start, end = span
        if cursor is not None and (
                (upward and end is not None and end <= cursor.created_at)
                or (not upward and start is not None and start > cursor.created_at)):
            continue  # wholly on the side of the cursor already seen
        rows += await _select(cur, scan_filter, [span], cursor, upward, limit - len(rows))
        if len(rows) >= limit:
            break
    return rows


async def _select(cur: Cursor, scan_filter: ScanFilter, spans: list[Span] | None, cursor: PageKey | None,
                  upward: bool, limit: int) -> list[Raw]:
    """One ordered index read; a checker filter is two (one per checker column,
    merged by UNION), since an OR of two indexes would sort every match."""
    direction = "" if upward else " DESC"
    seek, seek_params = "", []
    if cursor is not None:
        seek = f" AND {_NEWER if upward else _OLDER}"
        seek_params = [cursor.created_at, cursor.created_at, cursor.id]
    columns = ["checker1_code", "checker2_code"] if scan_filter.checker is not None else [None]
    parts, params = [], []
    for column in columns:
        where, values = scan_filter.conditions(spans, column)
        parts.append(f"{_SELECT} WHERE {where}{seek}"
                     f" ORDER BY s.created_at{direction}, s.id{direction} LIMIT %s")
        params += [*values, *seek_params, limit]
    if len(parts) == 1:
        sql = parts[0]
    else:
        sql = (" UNION ".join(f"({part})" for part in parts)
               + f" ORDER BY created_at{direction}, id{direction} LIMIT %s")
        params.append(limit)
    await cur.execute(sql, params)
    return await cur.fetchall()


async def all_rows(db: Database, scan_filter: ScanFilter, batch: int = EXPORT_BATCH, *,
                   written_at: float | None = None) -> AsyncGenerator[list[Raw]]:
    """Every filtered row as read (`scan_row` makes it a ScanRow: the exports
    do that on their own thread, not on the event loop), newest first, in
    batches: each batch is its own short transaction in the pool's bulk lane,
    so no connection is held while the client reads, and however many exports
    run, they hold at most the lane's share of the connections. The next batch
    is read while the caller works on this one. Each batch is read on the
    replica while it keeps up (`Database.read`; `written_at` as there)."""
    spans = scan_filter.time_spans(utc_now())

    async def read(before: PageKey | None) -> list[Raw]:
        return await db.read(_seek, scan_filter, spans, before, False, batch, bulk=True,
                             written_at=written_at)

    reading = asyncio.ensure_future(read(None))
    try:
        while True:
            rows = await reading
            if len(rows) == batch:
                reading = asyncio.ensure_future(read(PageKey(rows[-1][2], rows[-1][0])))  # its created_at, id
            if rows:
                yield rows
            if len(rows) < batch:
                return
    finally:
        # Left early (the client gone, an error): the read ahead is not wanted;
        # its transaction gives its connection back as it is cancelled.
        reading.cancel()
        reading.add_done_callback(lambda task: task.cancelled() or task.exception())


async def totals(cur: Cursor, scan_filter: ScanFilter, now: datetime | None = None) -> Figures:
    """Scans, and pieces by their latest scan, for the filter."""
    return (await aggregate(cur, Question.totals(scan_filter), now)).get(None, Figures())
