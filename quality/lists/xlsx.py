"""A one-sheet XLSX workbook of text cells, written as a stream of bytes.

An XLSX file is a zip of XML parts. The zip is written to an unseekable sink
(zipfile then puts each part's sizes in a data descriptor after its data), so
the bytes of the header and of every batch of rows can go to the client as
soon as they are made: memory stays constant and the first bytes leave before
the last rows are read. Cells are inline strings, so no shared-string table
has to be held until the end.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Sequence

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE_RELATIONSHIPS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

_CONTENT_TYPES = (
    _DECLARATION
    + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml"'
    ' ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml"'
    ' ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml"'
    ' ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    "</Types>"
)
_PACKAGE_RELS = (
    _DECLARATION
    + f'<Relationships xmlns="{_PACKAGE_RELATIONSHIPS}">'
    f'<Relationship Id="rId1" Type="{_RELATIONSHIPS}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK_RELS = (
    _DECLARATION
    + f'<Relationships xmlns="{_PACKAGE_RELATIONSHIPS}">'
    f'<Relationship Id="rId1" Type="{_RELATIONSHIPS}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_RELATIONSHIPS}/styles" Target="styles.xml"/>'
    "</Relationships>"
)
# Style 0 is the default cell, style 1 the bold header.
_STYLES = (
    _DECLARATION
    + f'<styleSheet xmlns="{_MAIN}">'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)

# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: str) -> str:
    """The value as XML character data: characters XML cannot carry dropped,
    markup escaped, and carriage returns kept (a parser would fold them)."""
    value = _NOT_XML.sub("", value)
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def column_letters(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


class _Sink:
    """A write-only byte buffer: having no tell() makes zipfile stream."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class SheetStream:
    """Workbook bytes piece by piece: start() with the header row, rows() for
    each batch, finish() for the end of the zip. Each returns the bytes made
    since the last call."""

    def __init__(self, sheet_name: str, header: Sequence[str], widths: Sequence[float]) -> None:
        self._sink = _Sink()
        # Level 1: deflate's fastest level still shrinks this XML about tenfold.
        self._zip = zipfile.ZipFile(self._sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
        self._letters = [column_letters(index) for index in range(len(header))]
        self._row = 0
        self._zip.writestr("[Content_Types].xml", _CONTENT_TYPES)
        self._zip.writestr("_rels/.rels", _PACKAGE_RELS)
        self._zip.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        self._zip.writestr("xl/styles.xml", _STYLES)
        self._zip.writestr("xl/workbook.xml", (
            _DECLARATION + f'<workbook xmlns="{_MAIN}" xmlns:r="{_RELATIONSHIPS}"><sheets>'
            f'<sheet name="{xml_text(sheet_name)}" sheetId="1" r:id="rId1"/></sheets></workbook>'))
        # force_zip64: the sheet's size is unknown when its entry starts.
        self._sheet = self._zip.open("xl/worksheets/sheet1.xml", "w", force_zip64=True)
        columns = "".join(f'<col min="{n}" max="{n}" width="{width}" customWidth="1"/>'
                          for n, width in enumerate(widths, start=1))
        self._sheet.write((_DECLARATION + f'<worksheet xmlns="{_MAIN}"><cols>{columns}</cols><sheetData>'
                           + self._xml_row(header, ' s="1"')).encode())

    def start(self) -> bytes:
        return self._sink.take()

    def rows(self, rows: Iterable[Sequence[str]]) -> bytes:
        self._sheet.write("".join(self._xml_row(row, "") for row in rows).encode())
        return self._sink.take()

    def finish(self) -> bytes:
        self._sheet.write(b"</sheetData></worksheet>")
        self._sheet.close()
        self._zip.close()
        return self._sink.take()

    def _xml_row(self, values: Sequence[str], style: str) -> str:
        self._row += 1
        number = self._row
        # An empty value is no cell at all, as a spreadsheet stores it.
        cells = "".join(
            f'<c r="{letters}{number}"{style} t="inlineStr"><is>{_text_element(value)}</is></c>'
            for letters, value in zip(self._letters, values, strict=True) if value)
        return f'<row r="{number}">{cells}</row>'


def _text_element(value: str) -> str:
    if value != value.strip():
        return f'<t xml:space="preserve">{xml_text(value)}</t>'
    return f"<t>{xml_text(value)}</t>"
