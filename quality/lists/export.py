"""CSV and XLSX exports of exactly the filtered rows, in constant memory.

Rows come in keyset batches, each read in its own short transaction. CSV goes
to the client batch by batch, and so does XLSX (`quality/lists/xlsx.py`
streams the zipped workbook as its rows are written).
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from quality.http.errors import error_page
from quality.lists.filters import ScanFilter, read_filter
from quality.lists.queries import all_rows
from quality.lists.xlsx import SheetStream
from quality.permissions import guard
from quality.scans import STATIONS
from quality.scans.store import ScanRow
from quality.services import services

COLUMNS = ("Time", "Station", "Operator", "Piece", "Order", "Checker 1", "Checker 2", "Defect code",
           "Defect", "Verdict", "Re-scan")
XLSX_MAX_ROWS = 1_048_575  # a worksheet's rows, less the header
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def row_values(row: ScanRow, timezone: ZoneInfo) -> list[str]:
    local = row.created_at.replace(tzinfo=UTC).astimezone(timezone)
    return [
        local.isoformat(timespec="seconds"), STATIONS[row.station].title, row.operator_code,
        row.piece_code, row.order_code, row.checker1_code, row.checker2_code, row.defect_code,
        row.defect_name, "Approved" if row.approved else "Rejected", "Yes" if row.is_rescan else "",
    ]


def file_name(scan_filter: ScanFilter, extension: str) -> str:
    """E.g. scans_quality_2026-11-26T06-00_2026-11-27.csv: station and range."""
    values = scan_filter.values

    def part(name: str, default: str) -> str:
        return re.sub(r"[^0-9A-Za-z-]", "-", values.get(name) or "") or default

    return f"scans_{part('station', 'all-stations')}_{part('from', 'start')}_{part('to', 'now')}.{extension}"


def _disposition(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


Chunks = Callable[[list[ScanRow], AsyncIterator[list[ScanRow]], ZoneInfo], AsyncIterator[bytes]]


async def _export(request: Request, chunks: Chunks, media_type: str, extension: str) -> Response:
    """The filtered rows as a file, streamed batch by batch as they are read."""
    listing = read_filter(request.query_params, services(request).settings)
    if not listing.ok:
        return error_page(request, 400, _bad_filter(listing.checked.errors))
    batches = all_rows(services(request).db, listing.filter)
    # The first batch is read before answering, so a busy database is a 503,
    # not a truncated file.
    first = await anext(batches, [])
    return StreamingResponse(
        chunks(first, batches, services(request).settings.timezone),
        media_type=media_type,
        headers=_disposition(file_name(listing.filter, extension)),
    )


@guard("scans.export")
async def csv_export(request: Request) -> Response:
    return await _export(request, _csv_chunks, "text/csv; charset=utf-8", "csv")


async def _csv_chunks(first: list[ScanRow], rest: AsyncIterator[list[ScanRow]],
                      timezone: ZoneInfo) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # the byte-order mark tells spreadsheet programs it is UTF-8
    writer.writerow(COLUMNS)
    batch = first
    while batch:
        writer.writerows(row_values(row, timezone) for row in batch)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        batch = await anext(rest, [])


@guard("scans.export")
async def xlsx_export(request: Request) -> Response:
    return await _export(request, xlsx_chunks, XLSX_TYPE, "xlsx")


async def xlsx_chunks(first: list[ScanRow], rest: AsyncIterator[list[ScanRow]],
                      timezone: ZoneInfo) -> AsyncIterator[bytes]:
    """The workbook's bytes, one piece per batch of rows."""
    sheet = SheetStream("Scans", COLUMNS, (26,) + (16,) * (len(COLUMNS) - 1))
    yield sheet.start()
    batch, written = first, 0
    while batch:
        batch = batch[: XLSX_MAX_ROWS - written]
        # Formatting and compressing a batch is CPU work: keep it off the event loop.
        chunk = await asyncio.to_thread(sheet.rows, (row_values(row, timezone) for row in batch))
        if chunk:
            yield chunk
        written += len(batch)
        batch = await anext(rest, []) if written < XLSX_MAX_ROWS else []
    yield sheet.finish()


def _bad_filter(errors: dict[str, str]) -> str:
    return "The filter is not valid: " + " ".join(errors.values())


routes = [
    Route("/scans/export.csv", csv_export, methods=["GET"], name="scan_list_csv"),
    Route("/scans/export.xlsx", xlsx_export, methods=["GET"], name="scan_list_xlsx"),
]
