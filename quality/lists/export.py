"""CSV and XLSX exports of exactly the filtered rows, in constant memory.

Rows come in keyset batches, each read in its own short transaction. CSV goes
to the client batch by batch; XLSX is written by XlsxWriter in constant-memory
mode (one row in memory at a time) to a temporary file, which is then sent
and removed.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC
from zoneinfo import ZoneInfo

import xlsxwriter
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from quality.http.errors import error_page
from quality.lists.filters import ScanFilter, read_filter
from quality.lists.queries import all_rows
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


@guard("scans.export")
async def csv_export(request: Request) -> Response:
    listing = read_filter(request.query_params, services(request).settings)
    if not listing.ok:
        return error_page(request, 400, _bad_filter(listing.checked.errors))
    batches = all_rows(services(request).db, listing.filter)
    # The first batch is read before answering, so a busy database is a 503,
    # not a truncated file.
    first = await anext(batches, [])
    return StreamingResponse(
        _csv_chunks(first, batches, services(request).settings.timezone),
        media_type="text/csv; charset=utf-8",
        headers=_disposition(file_name(listing.filter, "csv")),
    )


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
    listing = read_filter(request.query_params, services(request).settings)
    if not listing.ok:
        return error_page(request, 400, _bad_filter(listing.checked.errors))
    handle, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(handle)
    try:
        await _write_xlsx(path, all_rows(services(request).db, listing.filter),
                          services(request).settings.timezone)
    except BaseException:
        os.unlink(path)
        raise
    return FileResponse(path, media_type=XLSX_TYPE,
                        headers=_disposition(file_name(listing.filter, "xlsx")),
                        background=BackgroundTask(os.unlink, path))


async def _write_xlsx(path: str, batches: AsyncIterator[list[ScanRow]], timezone: ZoneInfo) -> None:
    workbook = xlsxwriter.Workbook(path, {"constant_memory": True})
    sheet = workbook.add_worksheet("Scans")
    sheet.write_row(0, 0, COLUMNS, workbook.add_format({"bold": True}))
    sheet.set_column(0, 0, 26)
    sheet.set_column(1, 10, 16)
    written = 0
    async for batch in batches:
        batch = batch[: XLSX_MAX_ROWS - written]
        # Formatting a batch is CPU work: keep it off the event loop.
        await asyncio.to_thread(_write_rows, sheet, written + 1, batch, timezone)
        written += len(batch)
        if written >= XLSX_MAX_ROWS:
            break
    await asyncio.to_thread(workbook.close)


def _write_rows(sheet: xlsxwriter.worksheet.Worksheet, first: int, rows: list[ScanRow],
                timezone: ZoneInfo) -> None:
    for offset, row in enumerate(rows):
        # write_string, not write_row: every value is text, so skip the
        # per-cell guessing of numbers, formulas and links.
        for column, value in enumerate(row_values(row, timezone)):
            sheet.write_string(first + offset, column, value)


def _bad_filter(errors: dict[str, str]) -> str:
    return "The filter is not valid: " + " ".join(errors.values())


routes = [
    Route("/scans/export.csv", csv_export, methods=["GET"], name="scan_list_csv"),
    Route("/scans/export.xlsx", xlsx_export, methods=["GET"], name="scan_list_xlsx"),
]
