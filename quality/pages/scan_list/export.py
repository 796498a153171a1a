"""CSV and XLSX exports of exactly the filtered rows, in constant memory.

Rows come in keyset batches, each read in its own short transaction. CSV goes
to the client batch by batch, and so does XLSX (`quality/lists/xlsx.py`
streams the zipped workbook as its rows are written).
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from quality.clock import to_plant
from quality.http.errors import error_page
from quality.http.language import request_language
from quality.http.services import services
from quality.i18n import lazy, translator
from quality.pages.scan_list.queries import all_rows
from quality.pages.scan_list.xlsx import SHEET_ROWS, Cell, WorkbookStream
from quality.permissions import guard
from quality.scan_filter import ScanFilter, read_filter
from quality.scans.store import ScanRow
from quality.stations import STATIONS

COLUMNS = (lazy("Time"), lazy("Station"), lazy("Operator"), lazy("Piece"), lazy("Order"),
           lazy("Checker 1"), lazy("Checker 2"), lazy("Defect code"), lazy("Defect"), lazy("Verdict"),
           lazy("Re-scan"))
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Words:
    """The export's texts in one language, translated once per file, not per row."""

    header: list[str]
    stations: dict[str, str]
    approved: str
    rejected: str
    rescan: str
    translate: Callable[[str], str]

    def sheet_name(self, number: int) -> str:
        if number == 1:
            return self.translate(lazy("Scans"))
        return self.translate(lazy("Scans (%(number)s)", number=number))


@functools.cache
def words(language: str) -> Words:
    translate = translator(language)
    return Words([translate(column) for column in COLUMNS],
                 {key: translate(station.title) for key, station in STATIONS.items()},
                 translate(lazy("Approved")), translate(lazy("Rejected")), translate(lazy("Yes")), translate)


def row_values(row: ScanRow, timezone: ZoneInfo, words: Words) -> list[Cell]:
    """A row's cells; the time is a date cell in the plant's time."""
    return [_local_time(row, timezone), *_text_values(row, words)]


def csv_values(row: ScanRow, timezone: ZoneInfo, words: Words) -> list[str]:
    """A row's values as CSV text: the time in ISO 8601 with the plant's offset."""
    return [_local_time(row, timezone).isoformat(timespec="seconds"), *_text_values(row, words)]


def _local_time(row: ScanRow, timezone: ZoneInfo) -> datetime:
    return to_plant(row.created_at.replace(microsecond=0), timezone)


def _text_values(row: ScanRow, words: Words) -> list[str]:
    return [words.stations[row.station], row.operator_code, row.piece_code, row.order_code,
            row.checker1_code, row.checker2_code, row.defect_code, row.defect_name,
            words.approved if row.approved else words.rejected, words.rescan if row.is_rescan else ""]


def file_name(scan_filter: ScanFilter, extension: str) -> str:
    """E.g. scans_quality_2026-11-26T06-00_2026-11-27.csv: station and range."""
    values = scan_filter.values

    def part(name: str, default: str) -> str:
        return re.sub(r"[^0-9A-Za-z-]", "-", values.get(name) or "") or default

    return f"scans_{part('station', 'all-stations')}_{part('from', 'start')}_{part('to', 'now')}.{extension}"


def _disposition(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


Chunks = Callable[[list[ScanRow], AsyncIterator[list[ScanRow]], ZoneInfo, Words], AsyncIterator[bytes]]


async def _export(request: Request, chunks: Chunks, media_type: str, extension: str) -> Response:
    """The filtered rows as a file, streamed batch by batch as they are read."""
    listing = read_filter(request.query_params, services(request).settings)
    if not listing.ok:
        return error_page(request, 400, lazy("The filter is not valid."))
    batches = all_rows(services(request).db, listing.filter)
    # The first batch is read before answering, so a busy database is a 503,
    # not a truncated file.
    first = await anext(batches, [])
    return StreamingResponse(
        chunks(first, batches, services(request).settings.timezone,
               words(request_language(request, services(request).settings.language))),
        media_type=media_type,
        headers=_disposition(file_name(listing.filter, extension)),
    )


@guard("scans.export")
async def csv_export(request: Request) -> Response:
    return await _export(request, _csv_chunks, "text/csv; charset=utf-8", "csv")


async def _csv_chunks(first: list[ScanRow], rest: AsyncIterator[list[ScanRow]],
                      timezone: ZoneInfo, words: Words) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # the byte-order mark tells spreadsheet programs it is UTF-8
    writer.writerow(words.header)
    batch = first
    while batch:
        writer.writerows(csv_values(row, timezone, words) for row in batch)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        batch = await anext(rest, [])


@guard("scans.export")
async def xlsx_export(request: Request) -> Response:
    return await _export(request, xlsx_chunks, XLSX_TYPE, "xlsx")


async def xlsx_chunks(first: list[ScanRow], rest: AsyncIterator[list[ScanRow]], timezone: ZoneInfo,
                      words: Words, sheet_rows: int = SHEET_ROWS) -> AsyncIterator[bytes]:
    """The workbook's bytes, one piece per batch of rows. Rows beyond a
    sheet's last row go on to the next sheet: Scans, Scans (2), ..."""
    book = WorkbookStream(words.sheet_name, words.header, (26,) + (16,) * (len(COLUMNS) - 1),
                          sheet_rows=sheet_rows)
    yield book.start()
    batch = first
    while batch:
        # Formatting and compressing a batch is CPU work: keep it off the event loop.
        chunk = await asyncio.to_thread(book.rows, (row_values(row, timezone, words) for row in batch))
        if chunk:
            yield chunk
        batch = await anext(rest, [])
    yield book.finish()


routes = [
    Route("/scans/export.csv", csv_export, methods=["GET"], name="scan_list_csv"),
    Route("/scans/export.xlsx", xlsx_export, methods=["GET"], name="scan_list_xlsx"),
]
