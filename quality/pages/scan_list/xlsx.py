"""An XLSX workbook of text and date cells, written as a stream of bytes.

An XLSX file is a zip of XML parts; `quality/lists/zipstream.py` writes it
front to back, so the bytes of every batch of rows can go to the client as
soon as they are made: memory stays constant and the first bytes leave before
the last rows are read. Cells are inline strings or numbers, so no
shared-string table has to be held until the end; the parts that depend on
what the rows held (the list of sheets, the date formats) are written after
the sheets, which a zip allows: readers find every part through the central
directory at the end. A sheet ends, and the rows go on in the next one, at
Excel's last row (`SHEET_ROWS`) or before its zip entry could outgrow 32-bit
sizes (`SHEET_BYTES`), so no entry ever needs ZIP64.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from quality.pages.scan_list.zipstream import ENTRY_LIMIT, ZIP64_FROM, ZipStream

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE_RELATIONSHIPS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_RELATIONSHIPS_TYPE = "application/vnd.openxmlformats-package.relationships+xml"
_SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"

# Excel's grid: 1,048,576 rows, the header row included.
SHEET_ROWS = 1_048_576
# A zip entry without ZIP64 holds up to 4 GiB; some is kept back for the end
# of the sheet and for deflate, whose output can be a little longer than its
# input (at most 5 bytes per 16 KiB block).
SHEET_BYTES = ENTRY_LIMIT - 64 * 1024 * 1024

_PACKAGE_RELS = (
    _DECLARATION
    + f'<Relationships xmlns="{_PACKAGE_RELATIONSHIPS}">'
    f'<Relationship Id="rId1" Type="{_RELATIONSHIPS}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
# Kept back from a sheet's bytes for its end: the rows' end, its autofilter
# (of the widest range) and its own end.
_SHEET_END_ROOM = 96
_FROZEN_HEADER = ('<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2"'
                  ' activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>')
# The serial number 0 of spreadsheet dates (valid from March 1900 on).
_DAY_ZERO = datetime(1899, 12, 30)
_DAY_SECONDS = 86_400
# Style 0 is the default cell, style 1 the bold header, then one date style
# per UTC offset met (a date cell shows its offset through its format).
_FIRST_DATE_STYLE = 2
_FIRST_CUSTOM_FORMAT = 164  # ids below are Excel's built-in formats

# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Those, and the ones to escape: most values (codes) have none.
_NOT_AS_IS = re.compile("[\x00-\x08\x0b-\x1f&<>\ud800-\udfff\ufffe\uffff]")

Cell = str | datetime  # text, or a time zone aware date and time


def xml_text(value: str) -> str:
    """The value as XML character data: characters XML cannot carry dropped,
    markup escaped, and carriage returns kept (a parser would fold them)."""
    if not _NOT_AS_IS.search(value):
        return value
    value = _NOT_XML.sub("", value)
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _xml_attribute(value: str) -> str:
    return xml_text(value).replace('"', "&quot;")


def column_letters(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def offset_text(offset: timedelta) -> str:
    """An ISO 8601 UTC offset: +02:00, -03:30."""
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


class WorkbookStream:
    """Workbook bytes piece by piece: start(), rows() for each batch, finish()
    for the rest of the zip. Each returns the bytes made since the last call.

    Every sheet starts with the header row; `sheet_name(n)` names sheet n
    (from 1). `sheet_rows`, `sheet_bytes` and `zip64_from` are parameters
    so tests can reach them with a few rows."""

    def __init__(self, sheet_name: Callable[[int], str], header: Sequence[str], widths: Sequence[float],
                 sheet_rows: int = SHEET_ROWS, sheet_bytes: int = SHEET_BYTES,
                 zip64_from: int = ZIP64_FROM) -> None:
        # Level 1: deflate's fastest level still shrinks this XML about tenfold.
        self._zip = ZipStream(level=1, zip64_from=zip64_from)
        self._sheet_name = sheet_name
        self._header = header
        self._columns = "".join(f'<col min="{n}" max="{n}" width="{width}" customWidth="1"/>'
                                for n, width in enumerate(widths, start=1))
        self._letters = [column_letters(index) for index in range(len(header))]
        self._sheet_rows, self._sheet_bytes = sheet_rows, sheet_bytes
        self._date_styles: dict[timedelta, str] = {}
        self._sheets = 0
        self._last_rows: list[int] = []  # each closed sheet's last row, for its autofilter
        self._zip.add("_rels/.rels", _PACKAGE_RELS.encode())
        self._open_sheet()

    def start(self) -> bytes:
        return self._zip.take()

    def rows(self, rows: Iterable[Sequence[Cell]]) -> bytes:
        batch = list(rows)
        while batch:
            if self._row == self._sheet_rows:
                self._next_sheet()
            room = self._sheet_rows - self._row
            part, batch = batch[:room], batch[room:]
            first = self._row + 1
            data = "".join([self._xml_row(values, first + n) for n, values in enumerate(part)]).encode()
            if self._bytes + len(data) <= self._sheet_bytes:
                self._zip.write(data)
                self._row += len(part)
                self._bytes += len(data)
            else:
                self._rows_one_by_one(part)
        return self._zip.take()

    def _rows_one_by_one(self, rows: list[Sequence[Cell]]) -> None:
        """Near the sheet's byte budget: each row where it still fits."""
        for values in rows:
            row = self._xml_row(values, self._row + 1).encode()
            if self._bytes + len(row) > self._sheet_bytes:
                self._next_sheet()
                row = self._xml_row(values, self._row + 1).encode()
            self._zip.write(row)
            self._row += 1
            self._bytes += len(row)

    def finish(self) -> bytes:
        self._close_sheet()
        self._write_workbook()
        self._zip.finish()
        return self._zip.take()

    def _open_sheet(self) -> None:
        self._sheets += 1
        self._zip.begin(f"xl/worksheets/sheet{self._sheets}.xml")
        # The <dimension> element is left out (it is optional): it comes
        # before the rows, whose count is not known yet. The header row is
        # frozen: it stays in view as the reader scrolls.
        opening = (_DECLARATION + f'<worksheet xmlns="{_MAIN}">{_FROZEN_HEADER}<cols>{self._columns}</cols>'
                   "<sheetData>"
                   + self._xml_row(self._header, 1, ' s="1"')).encode()
        self._zip.write(opening)
        self._row, self._bytes = 1, len(opening) + _SHEET_END_ROOM

    def _next_sheet(self) -> None:
        self._close_sheet()
        self._open_sheet()

    def _close_sheet(self) -> None:
        # The autofilter follows the rows, so its range is known by then.
        self._zip.write(f'</sheetData><autoFilter ref="{self._filter_range()}"/></worksheet>'.encode())
        self._zip.end()
        self._last_rows.append(self._row)

    def _filter_range(self, last_row: int | None = None, absolute: str = "") -> str:
        """The header and rows of a sheet: A1:K500, or $A$1:$K$500."""
        last = self._row if last_row is None else last_row
        return f"{absolute}A{absolute}1:{absolute}{self._letters[-1]}{absolute}{last}"

    def _write_workbook(self) -> None:
        numbers = range(1, self._sheets + 1)
        self._zip.add("xl/workbook.xml", (
            _DECLARATION + f'<workbook xmlns="{_MAIN}" xmlns:r="{_RELATIONSHIPS}"><sheets>'
            + "".join(f'<sheet name="{_xml_attribute(self._sheet_name(n))}" sheetId="{n}" r:id="rId{n}"/>'
                      for n in numbers)
            + "</sheets>" + self._filter_names() + "</workbook>").encode())
        self._zip.add("xl/_rels/workbook.xml.rels", (
            _DECLARATION + f'<Relationships xmlns="{_PACKAGE_RELATIONSHIPS}">'
            + "".join(f'<Relationship Id="rId{n}" Type="{_RELATIONSHIPS}/worksheet"'
                      f' Target="worksheets/sheet{n}.xml"/>' for n in numbers)
            + f'<Relationship Id="rId{self._sheets + 1}" Type="{_RELATIONSHIPS}/styles" Target="styles.xml"/>'
            "</Relationships>").encode())
        self._zip.add("xl/styles.xml", self._styles().encode())
        self._zip.add("[Content_Types].xml", (
            _DECLARATION + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            f'<Default Extension="rels" ContentType="{_RELATIONSHIPS_TYPE}"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml"'
            ' ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            + "".join(f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="{_SHEET_TYPE}"/>'
                      for n in numbers)
            + '<Override PartName="/xl/styles.xml"'
            ' ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            "</Types>").encode())

    def _filter_names(self) -> str:
        """The hidden name each sheet's autofilter range goes by, as Excel writes it."""
        names = "".join(
            f'<definedName name="_xlnm._FilterDatabase" localSheetId="{n}" hidden="1">'
            f"{xml_text(_sheet_reference(self._sheet_name(n + 1)))}!{self._filter_range(last, '$')}"
            "</definedName>" for n, last in enumerate(self._last_rows))
        return f"<definedNames>{names}</definedNames>"

    def _styles(self) -> str:
        # A date's format shows it as ISO 8601 with its offset, like the CSV.
        offsets = sorted(self._date_styles, key=lambda offset: self._date_styles[offset])
        formats = "".join(
            f'<numFmt numFmtId="{_FIRST_CUSTOM_FORMAT + n}"'
            f' formatCode="{_xml_attribute(_date_format(offset))}"/>' for n, offset in enumerate(offsets))
        dates = "".join(f'<xf numFmtId="{_FIRST_CUSTOM_FORMAT + n}" fontId="0" fillId="0" borderId="0"'
                        ' xfId="0" applyNumberFormat="1"/>' for n in range(len(offsets)))
        return (
            _DECLARATION + f'<styleSheet xmlns="{_MAIN}">'
            + (f'<numFmts count="{len(offsets)}">{formats}</numFmts>' if offsets else "")
            + '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
            '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
            '<fills count="2"><fill><patternFill patternType="none"/></fill>'
            '<fill><patternFill patternType="gray125"/></fill></fills>'
            '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
            f'<cellXfs count="{_FIRST_DATE_STYLE + len(offsets)}">'
            '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
            f'<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>{dates}</cellXfs>'
            '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
            "</styleSheet>")

    def _xml_row(self, values: Sequence[Cell], number: int, style: str = "") -> str:
        # An empty value is no cell at all, as a spreadsheet stores it.
        cells = "".join(
            self._date_cell(f"{letters}{number}", value) if isinstance(value, datetime)
            else f'<c r="{letters}{number}"{style} t="inlineStr"><is>{_text_element(value)}</is></c>'
            for letters, value in zip(self._letters, values, strict=True) if value)
        return f'<row r="{number}">{cells}</row>'

    def _date_cell(self, reference: str, value: datetime) -> str:
        offset = value.utcoffset()
        if offset is None:
            raise ValueError("a date cell needs a time zone aware datetime")
        style = self._date_styles.get(offset)
        if style is None:
            style = self._date_styles[offset] = str(_FIRST_DATE_STYLE + len(self._date_styles))
        # Days and the fraction of a day since day zero, in the value's own
        # wall time; whole seconds, as the CSV shows them.
        since = value.replace(tzinfo=None) - _DAY_ZERO
        return f'<c r="{reference}" s="{style}"><v>{since.days + since.seconds / _DAY_SECONDS!r}</v></c>'


def _date_format(offset: timedelta) -> str:
    return f'yyyy-mm-dd"T"hh:mm:ss"{offset_text(offset)}"'


def _sheet_reference(name: str) -> str:
    """A sheet's name as a formula names it: quoted, its quotes doubled."""
    return "'" + name.replace("'", "''") + "'"


def _text_element(value: str) -> str:
    if value != value.strip():
        return f'<t xml:space="preserve">{xml_text(value)}</t>'
    return f"<t>{xml_text(value)}</t>"
