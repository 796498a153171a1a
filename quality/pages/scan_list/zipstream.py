"""A zip written front to back as a stream, in the form Excel opens without repair.

Each entry is a local header with no sizes, the deflated data, and a 32-bit
data descriptor with its CRC and sizes (the sizes are not known when the
header goes out). Nothing is ever sought back, so every byte can leave as
soon as it is made. No entry carries ZIP64 fields: Excel asks to repair a
file whose local header has ZIP64 sizes that its central directory entry
lacks, and one whose entry is over 4 GiB without ZIP64 in the local header,
so the caller keeps each entry under `ENTRY_LIMIT` instead (a new sheet).
ZIP64 appears only where the zip specification (APPNOTE 4.4.1.4) asks for it,
and only when a value does not fit 32 bits: an entry's offset in its central
directory record, and the ZIP64 end records for the central directory's
place, size and entry count. (Python's zipfile switches to ZIP64 from 2 GiB,
and Excel and LibreOffice are known to refuse ZIP64 end records they do not
need.)
"""

from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass

# A 32-bit field's largest value; all ones means "see the ZIP64 field".
_FULL = 0xFFFFFFFF
ENTRY_LIMIT = _FULL - 1
ZIP64_FROM = _FULL  # a value this big needs ZIP64
_VERSION = 20  # 2.0: deflate, data descriptors
_VERSION_ZIP64 = 45
_DATA_DESCRIPTOR_FLAG = 0x08


@dataclass
class _Entry:
    name: bytes
    offset: int
    crc: int = 0
    compressed: int = 0
    size: int = 0


class ZipStream:
    """add() whole entries, or begin(), write() and end() one entry at a
    time; take() returns the bytes made since the last take(); finish()
    writes the central directory. `zip64_from` is the 32-bit limit, lower
    only in tests (a file past 4 GiB cannot be made there)."""

    def __init__(self, level: int = 1, zip64_from: int = ZIP64_FROM) -> None:
        self._level = level
        self._zip64_from = zip64_from
        self._out: list[bytes] = []
        self._written = 0
        self._entries: list[_Entry] = []
        self._entry: _Entry | None = None
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        now = time.localtime()
        self._dos_time = now.tm_hour << 11 | now.tm_min << 5 | now.tm_sec // 2
        self._dos_date = (now.tm_year - 1980) << 9 | now.tm_mon << 5 | now.tm_mday

    def add(self, name: str, data: bytes) -> None:
        self.begin(name)
        self.write(data)
        self.end()

    def begin(self, name: str) -> None:
        assert self._entry is None, "an entry is still open"
        encoded = name.encode("ascii")
        self._entry = _Entry(encoded, self._written)
        self._compressor = zlib.compressobj(self._level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._emit(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", _VERSION, _DATA_DESCRIPTOR_FLAG,
                               zlib.DEFLATED, self._dos_time, self._dos_date, 0, 0, 0, len(encoded), 0)
                   + encoded)

    def write(self, data: bytes) -> None:
        entry = self._entry
        assert entry is not None, "no entry is open"
        entry.crc = zlib.crc32(data, entry.crc)
        entry.size += len(data)
        self._emit_data(self._compressor.compress(data))

    def end(self) -> None:
        entry = self._entry
        assert entry is not None, "no entry is open"
        self._emit_data(self._compressor.flush())
        if entry.size > ENTRY_LIMIT or entry.compressed > ENTRY_LIMIT:
            raise ValueError(f"zip entry {entry.name.decode()} is too big for a 32-bit data descriptor")
        self._emit(struct.pack("<4sIII", b"PK\x07\x08", entry.crc, entry.compressed, entry.size))
        self._entries.append(entry)
        self._entry = None

    def finish(self) -> None:
        assert self._entry is None, "an entry is still open"
        directory_at = self._written
        for entry in self._entries:
            self._emit(self._directory_record(entry))
        directory_size = self._written - directory_at
        count = len(self._entries)
        if count > 0xFFFF or directory_at >= self._zip64_from or directory_size >= self._zip64_from:
            record_at = self._written
            self._emit(struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, _VERSION_ZIP64, _VERSION_ZIP64, 0, 0,
                                   count, count, directory_size, directory_at))
            self._emit(struct.pack("<4sIQI", b"PK\x06\x07", 0, record_at, 1))
            count, directory_size, directory_at = min(count, 0xFFFF), _FULL, _FULL
        self._emit(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, directory_size,
                               directory_at, 0))

    def take(self) -> bytes:
        data = b"".join(self._out)
        self._out.clear()
        return data

    def _directory_record(self, entry: _Entry) -> bytes:
        extra, offset, version = b"", entry.offset, _VERSION
        if entry.offset >= self._zip64_from:
            extra, offset, version = struct.pack("<HHQ", 1, 8, entry.offset), _FULL, _VERSION_ZIP64
        return struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", version, version, _DATA_DESCRIPTOR_FLAG,
                           zlib.DEFLATED, self._dos_time, self._dos_date, entry.crc, entry.compressed,
                           entry.size, len(entry.name), len(extra), 0, 0, 0, 0, offset) + entry.name + extra

    def _emit_data(self, data: bytes) -> None:
        if data:
            assert self._entry is not None
            self._entry.compressed += len(data)
            self._emit(data)

    def _emit(self, data: bytes) -> None:
        self._out.append(data)
        self._written += len(data)
