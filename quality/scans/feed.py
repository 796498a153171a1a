"""Live latest-scans tables, kept in memory: one watcher per process, however
many pages are open.

Every viewer of a station sees the same table, so each process keeps each
station's last 50 scans and their orders' counts, renders the table once per
change and language, and hands that same HTML to every page (SSE) and every
scan response in that language. A language nobody views is never rendered.
Scans saved by this process are added as they are saved; scans saved by other
processes are found by one small query every `interval` seconds. The database
cost of live pages therefore does not grow with the number of pages.

The same poll reads the sessions' revocation counter (`auth_version`) for the
process's `SessionCache`: the watcher is the process's one reader of other
processes' changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, Protocol

from markupsafe import Markup

from quality.db import Database, DatabaseUnavailable
from quality.scans.store import Saved, ScanRow, latest, newer
from quality.session_cache import REVOCATIONS, SessionCache
from quality.sse import event
from quality.stations import STATIONS

log = logging.getLogger(__name__)

TABLE_SIZE = 50
_BATCH = 500  # more new scans than this in one poll: reload instead
_GAP_SECONDS = 30.0  # how long a missing id may still turn up
_MAX_GAPS = 1000


class OrderCounts(NamedTuple):
    """An order's piece counts, as of one scan: counts read for an older scan
    never overwrite those of a newer one."""

    approved: int
    rejected: int
    as_of_scan: int


class RenderedRow(NamedTuple):
    """A row rendered once, around the place its order's counts go: a change of
    counts renders one cell per order, not every row of that order again."""

    before_counts: str
    after_counts: str


# Stands for the counts cell while a row renders, so the row can be split there;
# no escaped value contains "<", so it is found exactly once.
_COUNTS_SLOT = "<!--counts-->"
# The same for the table's version and rows.
_VERSION_SLOT = "<!--version-->"
_ROWS_SLOT = "<!--rows-->"


class Templates(Protocol):
    """What renders the table: the app's renderer (quality/http/templates.py)."""

    def macros(self, template: str, language: str) -> Any: ...


class TableMarkup:
    """The table, a row and an order's counts, in a language: the macros of
    templates/scans/_table.html."""

    def __init__(self, renderer: Templates) -> None:
        self._renderer = renderer
        self._macros: dict[str, Any] = {}
        self._frames: dict[str, tuple[str, str]] = {}

    def _in(self, language: str) -> Any:
        macros = self._macros.get(language)
        if macros is None:
            macros = self._macros[language] = self._renderer.macros("stations/_table.html", language)
        return macros

    def table(self, rows: str, version: int, language: str) -> str:
        if not rows:  # the table's own "no scans yet" row
            return str(self._in(language).table(Markup(rows), version))
        before_rows, after_rows = self._frame(language)
        written = str(version)
        return (before_rows.replace(_VERSION_SLOT, written) + rows
                + after_rows.replace(_VERSION_SLOT, written))

    def _frame(self, language: str) -> tuple[str, str]:
        """The table before and after its rows, with its version still to fill in,
        rendered once per language: every scan changes the rows, never the frame."""
        frame = self._frames.get(language)
        if frame is None:
            html = str(self._in(language).table(Markup(_ROWS_SLOT), Markup(_VERSION_SLOT)))
            before_rows, after_rows = html.split(_ROWS_SLOT)
            frame = self._frames[language] = (before_rows, after_rows)
        return frame

    def row(self, scan: ScanRow, language: str) -> RenderedRow:
        before, after = str(self._in(language).row(scan, Markup(_COUNTS_SLOT))).split(_COUNTS_SLOT)
        return RenderedRow(before, after)

    def counts(self, order_code: str, approved: int, rejected: int, language: str) -> str:
        return str(self._in(language).counts(order_code, approved, rejected))


class StationFeed:
    """One station's latest scans, counts per order, and the table rendered from them."""

    def __init__(self, station: str, markup: TableMarkup) -> None:
        self.station = station
        self._markup = markup
        self._rows: dict[int, ScanRow] = {}
        self._counts: dict[str, OrderCounts] = {}
        # Rendered once per language: a row never changes, an order's counts
        # only when they do.
        self._row_html: dict[str, dict[int, RenderedRow]] = {}
        self._counts_html: dict[str, dict[str, str]] = {}
        self._html: dict[str, str] = {}
        self._frame: dict[str, bytes] = {}
        self._changed = asyncio.Event()

    @property
    def version(self) -> int:
        """The newest scan id in the table: comparable across processes."""
        return max(self._rows, default=0)

    def replace(self, saved: Iterable[Saved]) -> None:
        self._rows.clear()
        self._counts.clear()
        self._row_html.clear()
        self._counts_html.clear()
        self.add(saved)

    def add(self, saved: Iterable[Saved]) -> None:
        changed = False
        for item in saved:
            row = item.row
            known = self._counts.get(row.order_code)
            if known is None or row.id >= known.as_of_scan:
                counts = OrderCounts(item.approved, item.rejected, row.id)
                if known is None or known[:2] != counts[:2]:
                    for rendered in self._counts_html.values():
                        rendered.pop(row.order_code, None)
                    changed = True
                self._counts[row.order_code] = counts
            if row.id not in self._rows:
                self._rows[row.id] = row
                changed = True
        if changed:
            if len(self._rows) > TABLE_SIZE:
                self._trim()
            self._html.clear()
            self._frame.clear()
            self._changed.set()
            self._changed = asyncio.Event()

    def _trim(self) -> None:
        for scan_id in sorted(self._rows)[:-TABLE_SIZE]:
            del self._rows[scan_id]
            for rows in self._row_html.values():
                rows.pop(scan_id, None)
        orders = {row.order_code for row in self._rows.values()}
        for order in self._counts.keys() - orders:
            del self._counts[order]
            for rendered in self._counts_html.values():
                rendered.pop(order, None)

    def table_html(self, language: str) -> str:
        """Rendered at most once per change: every scan response and every open
        page in this language share it. One loop, as this runs once per scan."""
        html = self._html.get(language)
        if html is None:
            rendered_rows = self._row_html.setdefault(language, {})
            rendered_counts = self._counts_html.setdefault(language, {})
            parts = []
            for scan_id in sorted(self._rows, reverse=True):
                scan = self._rows[scan_id]
                row = rendered_rows.get(scan_id)
                if row is None:
                    row = rendered_rows[scan_id] = self._markup.row(scan, language)
                counts = rendered_counts.get(scan.order_code)
                if counts is None:
                    approved, rejected, _ = self._counts[scan.order_code]
                    counts = rendered_counts[scan.order_code] = self._markup.counts(
                        scan.order_code, approved, rejected, language)
                parts += (row.before_counts, counts, row.after_counts)
            html = self._html[language] = self._markup.table("".join(parts), self.version, language)
        return html

    def event_frame(self, language: str) -> bytes:
        """The table as one server-sent event, encoded once per change and language."""
        frame = self._frame.get(language)
        if frame is None:
            frame = self._frame[language] = event("table", self.version, self.table_html(language))
        return frame

    def rows_after(self, scan_id: int) -> list[ScanRow]:
        """The table's scans newer than `scan_id`, newest first (for other live views)."""
        return [self._rows[i] for i in sorted(self._rows, reverse=True) if i > scan_id]

    def next_change(self) -> asyncio.Event:
        """Set at the next change; take it before reading, so no change slips by."""
        return self._changed


class ScanWatcher:
    """The process's one reader of other processes' scans."""

    def __init__(self, db: Database, markup: TableMarkup, sessions: SessionCache,
                 interval: float = 0.5) -> None:
        self.db = db
        self.sessions = sessions
        self.interval = interval
        self.feeds = {key: StationFeed(key, markup) for key in STATIONS}
        self._seen_max = 0
        self._gaps: dict[int, float] = {}
        self._loaded = False
        self._task: asyncio.Task[None] | None = None
        # Told of every scan as it is added, and whether this process saved it
        # (the alert rules, quality/alerts/engine.py).
        self.listeners: list[Callable[[Sequence[Saved], bool], None]] = []

    @property
    def newest(self) -> int:
        """The newest scan id this process has seen: what changed since a figure
        was read is told by comparing it (quality/answers.py)."""
        return self._seen_max

    async def start(self) -> None:
        try:
            await self.load()
        except DatabaseUnavailable as exc:
            log.warning("scan tables not loaded yet: %s", exc)
        self._task = asyncio.create_task(self._run(), name="scan-watcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def saved(self, saved: Saved) -> None:
        """A scan this process just committed: show it without waiting for a poll."""
        self._note_ids([saved.row.id])
        self.feeds[saved.row.station].add([saved])
        for listener in self.listeners:
            listener([saved], True)

    async def load(self) -> None:
        began = time.monotonic()
        async with self.db.transaction() as cur:
            latest_by_station = {key: await latest(cur, key, TABLE_SIZE) for key in self.feeds}
            await cur.execute(
                f"SELECT COALESCE(MAX(id), 0), ({REVOCATIONS}) FROM scans"
            )
            newest, auth_version = await cur.fetchone()
        self.sessions.confirm(auth_version, began)
        for key, saved in latest_by_station.items():
            self.feeds[key].replace(saved)
        self._seen_max = int(newest)
        self._gaps.clear()
        self._loaded = True

    async def poll(self) -> None:
        if not self._loaded:
            await self.load()
            return
        self._expire_gaps()
        began = time.monotonic()
        async with self.db.transaction() as cur:
            auth_version, found = await newer(cur, self._seen_max, list(self._gaps), _BATCH)
        self.sessions.confirm(auth_version, began)
        if len(found) >= _BATCH:
            await self.load()
            return
        self._note_ids([item.row.id for item in found])
        by_station: dict[str, list[Saved]] = {}
        for item in found:
            by_station.setdefault(item.row.station, []).append(item)
        for key, items in by_station.items():
            self.feeds[key].add(items)
        for listener in self.listeners:
            listener(found, False)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll()
            except DatabaseUnavailable as exc:
                log.warning("scan watcher: %s", exc)
            except Exception:
                log.exception("scan watcher failed; retrying")

    def _note_ids(self, ids: list[int]) -> None:
        now = time.monotonic()
        for scan_id in sorted(ids):
            self._gaps.pop(scan_id, None)
            if scan_id > self._seen_max:
                skipped = range(self._seen_max + 1, scan_id)
                if len(skipped) <= _MAX_GAPS:
                    self._gaps.update(dict.fromkeys(skipped, now))
                else:  # too far behind to track the holes: reload on the next poll
                    self._loaded = False
                self._seen_max = scan_id
        if len(self._gaps) > _MAX_GAPS:
            for scan_id in sorted(self._gaps)[: len(self._gaps) - _MAX_GAPS]:
                del self._gaps[scan_id]

    def _expire_gaps(self) -> None:
        cutoff = time.monotonic() - _GAP_SECONDS
        for scan_id in [i for i, seen in self._gaps.items() if seen < cutoff]:
            del self._gaps[scan_id]
