"""CSV and XLSX exports of exactly the filtered rows, in constant memory.

Rows come in keyset batches, each read in its own short transaction in the
pool's bulk lane. Each batch is formatted on the process's export thread
(`quality/lists/exporter.py`), never on the event loop, and goes to the client
as it is made: CSV batch by batch, and XLSX too (`quality/lists/xlsx.py`
streams the zipped workbook as its rows are written). A user, and the
process, run a bounded number of exports at once; one more is a 429.

The standard CSV is comma-separated with ISO 8601 times (with their offset);
its variant for spreadsheet programs is written as one in the reader's
language opens a file by double-click: separated by `;` where the language
writes decimals with a comma (Romanian), times as plain dates and times of
the plant. Both start with the byte-order mark that says UTF-8.

CSV is opened by spreadsheet programs, which run a cell that starts like a
formula: every text cell that could is written with OWASP's leading `'`. (XLSX
cells are inline strings, never formulas.) The columns are defined with
`quality import`, which reads this CSV back (quality/scans/csv_columns.py).
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.numbers import get_decimal_symbol
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from quality.clock import to_plant
from quality.http.errors import error_page
from quality.http.language import request_language
from quality.http.services import services
from quality.http.slots import Slot
from quality.http.writes import written_at
from quality.i18n import language_locale, lazy, lazy_plural, translator
from quality.pages.scan_list.queries import Raw, all_rows, scan_row
from quality.pages.scan_list.xlsx import SHEET_ROWS, Cell, WorkbookStream
from quality.permissions import guard
from quality.scan_filter import ScanFilter, read_filter
from quality.scans.csv_columns import COLUMNS, as_text
from quality.scans.store import ScanRow
from quality.stations import STATIONS

# Characters each column's values usually take (a time with its offset, codes,
# a defect's name); a column is at least as wide as its header and the
# autofilter's button beside it.
CONTENT_WIDTHS = (26, 12, 10, 18, 14, 11, 11, 12, 32, 11, 9)
FILTER_BUTTON = 3
CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RETRY_AFTER_SECONDS = 10


@dataclass(frozen=True)
class Words:
    """The export's texts in one language, translated once per file, not per row."""

    header: list[str]
    stations: dict[str, str]
    approved: str
    rejected: str
    rescan: str
    translate: Callable[[str], str]
    separator: str  # between a spreadsheet CSV's values: `;` where decimals take a comma
    language: str  # the defects' names are in it too

    def sheet_name(self, number: int) -> str:
        if number == 1:
            return self.translate(lazy("Scans"))
        return self.translate(lazy("Scans (%(number)s)", number=number))


@functools.cache
def words(language: str) -> Words:
    translate = translator(language)
    separator = ";" if get_decimal_symbol(language_locale(language)) == "," else ","
    return Words([translate(column) for column in COLUMNS],
                 {key: translate(station.title) for key, station in STATIONS.items()},
                 translate(lazy("Approved")), translate(lazy("Rejected")), translate(lazy("Yes")), translate,
                 separator, language)


def row_values(row: ScanRow, timezone: ZoneInfo, words: Words) -> list[Cell]:
    """A row's cells; the time is a date cell in the plant's time."""
    return [_local_time(row, timezone), *_text_values(row, words)]


def csv_values(row: ScanRow, timezone: ZoneInfo, words: Words, *, spreadsheet: bool = False) -> list[str]:
    """A row's values as CSV text: the time in ISO 8601 with the plant's offset
    (for a spreadsheet program: the plant's date and time, which it reads as
    a date whatever its language), then its text, none of which a spreadsheet
    would run."""
    moment = _local_time(row, timezone)
    return [moment.strftime("%Y-%m-%d %H:%M:%S") if spreadsheet else moment.isoformat(timespec="seconds"),
            *(as_text(value) for value in _text_values(row, words))]


def _local_time(row: ScanRow, timezone: ZoneInfo) -> datetime:
    return to_plant(row.created_at.replace(microsecond=0), timezone)


def _text_values(row: ScanRow, words: Words) -> list[str]:
    return [words.stations[row.station], row.operator_code, row.piece_code, row.order_code,
            row.checker1_code, row.checker2_code, row.defect_code, row.defect_name_in(words.language),
            words.approved if row.approved else words.rejected, words.rescan if row.is_rescan else ""]


def file_name(scan_filter: ScanFilter, extension: str) -> str:
    """E.g. scans_quality_2026-11-26T06-00_2026-11-27.csv: station and range."""
    values = scan_filter.values

    def part(name: str, default: str) -> str:
        return re.sub(r"[^0-9A-Za-z-]", "-", values.get(name) or "") or default

    return f"scans_{part('station', 'all-stations')}_{part('from', 'start')}_{part('to', 'now')}.{extension}"


def _disposition(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


# Rows to bytes on the export thread: `Exporter.format`.
Format = Callable[[Sequence[Raw], Callable[[Sequence[Raw]], bytes]], Awaitable[bytes]]
Chunks = Callable[[list[Raw], AsyncIterator[list[Raw]], ZoneInfo, Words, Format],
                  AsyncGenerator[bytes]]


class _Export(StreamingResponse):
    """A streamed export that gives its place back however it ends: finished,
    failed, cancelled, or left by its client mid-stream."""

    def __init__(self, body: AsyncGenerator[bytes], rows: AsyncGenerator[list[Raw]], slot: Slot,
                 **options: Any) -> None:
        super().__init__(self._released_at_the_end(body), **options)
        self._body = body
        self._rows = rows
        self._slot = slot

    async def _released_at_the_end(self, body: AsyncGenerator[bytes]) -> AsyncGenerator[bytes]:
        async for chunk in body:
            yield chunk
        # Before the answer's end reaches the client: one who exports again at
        # once is not refused for the export just finished.
        self._slot.release()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slot.release()
            await self._body.aclose()
            await self._rows.aclose()


async def _export(request: Request, chunks: Chunks, media_type: str, extension: str) -> Response:
    """The filtered rows as a file, streamed batch by batch as they are read."""
    listing = read_filter(request.query_params, services(request).settings)
    if not listing.ok:
        return error_page(request, 400, lazy("The filter is not valid."))
    exporter = services(request).exporter
    user_id = request.state.user.id
    slot = exporter.slots.take(user_id)
    if slot is None:
        return _too_many(request, exporter.slots.per_user if exporter.slots.user_full(user_id) else None)
    batches = all_rows(services(request).db, listing.filter, written_at=written_at(request))
    try:
        # The first batch is read before answering, so a busy database is a
        # 503, not a truncated file.
        first = await anext(batches, [])
    except BaseException:
        slot.release()
        raise
    body = chunks(first, batches, services(request).settings.timezone,
                  words(request_language(request, services(request).settings.language)), exporter.format)
    return _Export(body, batches, slot, media_type=media_type,
                   headers=_disposition(file_name(listing.filter, extension)))


def _too_many(request: Request, per_user: int | None) -> Response:
    """429: the user's own exports (`per_user` of them) or the process's are running."""
    if per_user is not None:
        message = lazy_plural("Your export is still running. Wait for it to finish, then export again.",
                              "Your %(num)s exports are still running. Wait for one to finish, "
                              "then export again.", per_user)
    else:
        message = lazy("The server is making as many exports as it can at once. Wait a moment for "
                       "one to finish, then export again.")
    return error_page(request, 429, message, {"Retry-After": str(RETRY_AFTER_SECONDS)})


@guard("scans.export")
async def csv_export(request: Request) -> Response:
    return await _export(request, functools.partial(_csv_chunks, spreadsheet=False), CSV_TYPE, "csv")


@guard("scans.export")
async def spreadsheet_csv_export(request: Request) -> Response:
    return await _export(request, functools.partial(_csv_chunks, spreadsheet=True), CSV_TYPE, "csv")


class _CsvText:
    """Rows as CSV bytes, one batch at a time, through one reused buffer; for a
    spreadsheet program (`spreadsheet`), in its reader's language's way."""

    def __init__(self, timezone: ZoneInfo, words: Words, spreadsheet: bool) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, delimiter=words.separator if spreadsheet else ",")
        self._timezone = timezone
        self._words = words
        self._spreadsheet = spreadsheet

    def header(self) -> bytes:
        # The byte-order mark tells spreadsheet programs it is UTF-8.
        return "\ufeff".encode() + self._lines([self._words.header])

    def rows(self, rows: Iterable[Raw]) -> bytes:
        return self._lines(csv_values(scan_row(values), self._timezone, self._words,
                                      spreadsheet=self._spreadsheet) for values in rows)

    def _lines(self, values: Iterable[list[str]]) -> bytes:
        self._writer.writerows(values)
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode()


async def _csv_chunks(first: list[Raw], rest: AsyncIterator[list[Raw]], timezone: ZoneInfo,
                      words: Words, format_rows: Format, *, spreadsheet: bool) -> AsyncGenerator[bytes]:
    text = _CsvText(timezone, words, spreadsheet)
    yield text.header()
    batch = first
    while batch:
        yield await format_rows(batch, text.rows)
        batch = await anext(rest, [])


@guard("scans.export")
async def xlsx_export(request: Request) -> Response:
    return await _export(request, xlsx_chunks, XLSX_TYPE, "xlsx")


async def xlsx_chunks(first: list[Raw], rest: AsyncIterator[list[Raw]], timezone: ZoneInfo,
                      words: Words, format_rows: Format, sheet_rows: int = SHEET_ROWS
                      ) -> AsyncGenerator[bytes]:
    """The workbook's bytes, one piece per batch of rows. Rows beyond a
    sheet's last row go on to the next sheet: Scans, Scans (2), ..."""
    widths = [max(content, len(header) + FILTER_BUTTON)
              for content, header in zip(CONTENT_WIDTHS, words.header, strict=True)]
    book = WorkbookStream(words.sheet_name, words.header, widths, sheet_rows=sheet_rows)

    def write(rows: Sequence[Raw]) -> bytes:
        return book.rows(row_values(scan_row(values), timezone, words) for values in rows)

    yield book.start()
    batch = first
    while batch:
        chunk = await format_rows(batch, write)
        if chunk:
            yield chunk
        batch = await anext(rest, [])
    yield book.finish()


routes = [
    Route("/scans/export.csv", csv_export, methods=["GET"], name="scan_list_csv"),
    Route("/scans/export-spreadsheet.csv", spreadsheet_csv_export, methods=["GET"],
          name="scan_list_spreadsheet_csv"),
    Route("/scans/export.xlsx", xlsx_export, methods=["GET"], name="scan_list_xlsx"),
]
