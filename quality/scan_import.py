"""`quality import FILE.csv`: a plant's scan history from a CSV file with the
columns of the scan list's own CSV export (quality/scans/csv_columns.py),
saved by the same rules as a scan at a station.

1. The file is read whole and checked before anything is saved. A file that is
   not UTF-8, is empty or lacks a column ends the command (`ImportFileError`);
   each row is checked as the scan form checks a scan (`scan_fields`), plus its
   station, time and order, and a bad row is rejected with its row number,
   column and reason while the rest go on.
2. The rows are sorted by time, so each piece's scans are saved oldest first
   (within one second, as the file's order runs: `read_file`): a
   scan of a piece already scanned is a re-scan, as at a station, and the piece's
   verdict and its order's counts end as its newest scan's.
3. Batch by batch, one read finds which rows are stored already, by the natural
   key (station, piece, time to the second, defect code, operator code), and
   each piece's latest stored scan; a row older than that is rejected, since
   saving it would make an older scan the piece's latest. Each new row is then
   saved by `save_scan` (the stored routine record_scan) with its own time: one
   definition of a save. A piece's rows are saved one after another, several
   pieces at once. record_scan commits each scan itself (a row's transaction
   lasts milliseconds), and the trigger of migration 0012 queues it for the
   summariser in that same transaction, so the summaries take in every saved
   row whatever order the transactions commit in; an import that stops
   part-way is simply run again, its saved rows found stored by their key.
4. The summaries are brought up to date, and the import is written to the
   audit log.

A dry run reads the same, decides the same, and saves nothing.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from quality import audit
from quality.accounts import create_user
from quality.clock import in_calendar, to_plant, to_utc, utc_now
from quality.codes import DEFECT, scan_fields
from quality.db import Cursor, Database
from quality.fields import validate
from quality.i18n import LANGUAGES, LazyText, lazy, translator
from quality.scans.csv_columns import COLUMNS, from_text
from quality.scans.store import ScanInput, UnknownDefect, save_scan
from quality.settings import CodePatterns
from quality.shifts import Shifts
from quality.stations import STATIONS
from quality.summary.writer import summarise_all

IMPORT_USER = "import"  # the account imported scans are saved by
BATCH = 1000
SAVERS = 4  # pieces saved at once, each on a connection of its own

# The export's columns by what the import calls them; the ones a scan needs first.
_FIELDS = ("time", "station", "operator_code", "piece_code", "order", "checker1_code", "checker2_code",
           "defect_code", "defect", "verdict", "rescan")
_REQUIRED = ("time", "station", "operator_code", "piece_code", "checker1_code", "checker2_code",
             "defect_code")
_DELIMITERS = ",;\t"  # a spreadsheet saving CSV back may use its locale's separator

Piece = tuple[str, str]  # station, piece code
Key = tuple[str, str, datetime, str, str]  # station, piece code, time (to the second), defect, operator


class ImportFileError(ValueError):
    """The file cannot be imported at all; nothing was saved."""


@dataclass(frozen=True, slots=True)
class Row:
    """A row that passed every check of its own, ready to save."""

    number: int  # as a spreadsheet numbers it: the header is row 1
    station: str
    at: datetime  # naive UTC, to the second
    scan: ScanInput
    marked_rescan: bool  # its Re-scan column says so: orders scans of a piece within one second

    @property
    def piece(self) -> Piece:
        return self.station, self.scan.piece_code

    @property
    def key(self) -> Key:
        return (self.station, self.scan.piece_code, self.at, self.scan.defect_code,
                self.scan.operator_code)


@dataclass(frozen=True, slots=True)
class Rejected:
    number: int
    column: str  # the column's header as the file has it
    reason: str


@dataclass
class Outcome:
    """What an import did, or a dry run would do."""

    rows: int = 0
    imported: int = 0
    rescans: int = 0  # of the imported
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def audit_values(self, file_name: str) -> dict[str, object]:
        return {"file": file_name, "rows": self.rows, "imported": self.imported, "rescans": self.rescans,
                "duplicates": self.duplicates, "rejected": len(self.rejected)}


@dataclass(frozen=True)
class Parsed:
    header: dict[str, str]  # field -> the header text the file gives it
    rows: list[Row]  # sorted by time
    rejected: list[Rejected]
    total: int


# -- reading the file ------------------------------------------------------------------


def read_file(path: Path, codes: CodePatterns, timezone: ZoneInfo, now: datetime | None = None) -> Parsed:
    """The file's rows checked and sorted by time; `ImportFileError` for a file
    that cannot be imported."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path} is not UTF-8 text (byte {exc.start + 1} is not); "
                              "save it as CSV UTF-8") from None
    first = next((line for line in text.splitlines() if line.strip()), None)
    if first is None:
        raise ImportFileError(f"{path} is empty: it needs a header row and a row per scan")
    # A cell may hold a line break: the reader, not splitlines, ends the rows.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=max(_DELIMITERS, key=first.count))
    # Numbered as a spreadsheet shows them: each record a row, blank ones too.
    records = ((number, values) for number, values in enumerate(reader, start=1)
               if any(value.strip() for value in values))
    stations = _station_names()
    limit = now or utc_now()
    rows: list[Row] = []
    rejected: list[Rejected] = []
    total = 0
    try:
        header = _header(path, next(records)[1])
        for number, values in records:
            total += 1
            checked = _row(number, values, header, codes, timezone, stations, limit)
            (rows if isinstance(checked, Row) else rejected).append(checked)
    except csv.Error as exc:
        raise ImportFileError(f"{path} is not a CSV file the import can read (row {reader.line_num}:"
                              f" {exc})") from None
    if not total:
        raise ImportFileError(f"{path} holds no scans, only its header")
    # Scans of a piece within one second: a row marked as a re-scan after one
    # that is not, else in the file's order read the way its times run (the
    # export lists the newest first).
    newest_first = len(rows) > 1 and rows[0].at > rows[-1].at
    rows.sort(key=lambda row: (row.at, row.marked_rescan, -row.number if newest_first else row.number))
    return Parsed({name: text for name, (_, text) in header.items()}, rows, rejected, total)


def _header(path: Path, names: list[str]) -> dict[str, tuple[int, str]]:
    """Each known column's position and header text; the export's headers in any language."""
    known = _column_names()
    found: dict[str, tuple[int, str]] = {}
    for position, name in enumerate(names):
        column = known.get(_plain(from_text(name)))
        if column is not None and column not in found:
            found[column] = (position, name.strip())
    missing = [str(COLUMNS[_FIELDS.index(column)]) for column in _REQUIRED if column not in found]
    if missing:
        raise ImportFileError(
            f"{path} lacks the column(s) {', '.join(missing)}; its first row must name the columns of"
            " the scan list's CSV export: " + ", ".join(str(COLUMNS[_FIELDS.index(c)]) for c in _REQUIRED))
    return found


def _plain(text: str) -> str:
    return " ".join(text.split()).casefold()


def _column_names() -> dict[str, str]:
    return {_plain(translator(language)(header)): column
            for language in LANGUAGES for header, column in zip(COLUMNS, _FIELDS, strict=True)}


def _station_names() -> dict[str, str]:
    """A station by its key or by its title or name in any language."""
    names = {}
    for key, station in STATIONS.items():
        names[_plain(key)] = key
        for language in LANGUAGES:
            translate = translator(language)
            names[_plain(translate(station.title))] = key
            names[_plain(translate(station.name))] = key
    return names


def _row(number: int, values: list[str], header: dict[str, tuple[int, str]], codes: CodePatterns,
         timezone: ZoneInfo, stations: dict[str, str], now: datetime) -> Row | Rejected:
    """A row checked as the scan form checks a scan, plus its station, time and order."""
    cells = {column: from_text(values[position]) if position < len(values) else ""
             for column, (position, _) in header.items()}
    cells["defect_code"] = _leading_zeros(cells["defect_code"])

    def rejected(column: str, reason: str) -> Rejected:
        return Rejected(number, header[column][1], reason)

    checked = validate(cells, scan_fields(codes))
    if checked.errors:  # the first bad field of the row
        column, error = next(iter(checked.errors.items()))
        return rejected(column, error)
    station = stations.get(_plain(cells["station"]))
    if station is None:
        return rejected("station", lazy("Not a station of this app: %(stations)s.",
                                        stations=", ".join(STATIONS)))
    at = _time(cells["time"], timezone)
    if isinstance(at, LazyText):
        return rejected("time", at)
    if at > now:
        return rejected("time", lazy("Later than now: a scan cannot be made in the future."))
    valid = checked.values
    order = valid["piece_code"][: codes.order_length]
    if "order" in header and cells["order"].strip() and cells["order"].strip().upper() != order:
        return rejected("order", lazy("Not the piece code's first %(length)s characters (%(order)s).",
                                      length=codes.order_length, order=order))
    scan = ScanInput(_submission(station, at, valid), valid["operator_code"], valid["piece_code"],
                     order, valid["checker1_code"], valid["checker2_code"], valid["defect_code"])
    return Row(number, station, at, scan, "rescan" in header and bool(cells["rescan"].strip()))


def _leading_zeros(code: str) -> str:
    """A defect code as the export wrote it, after a spreadsheet took it for a
    number and saved it back without its leading zeros (000 as 0, 005 as 5)."""
    code = code.strip()
    return code.zfill(DEFECT.max_length) if code.isdigit() else code


def _time(text: str, timezone: ZoneInfo) -> datetime | LazyText:
    """A time with its UTC offset, or in the plant's zone, as naive UTC to the
    second; a local time the zone skips or repeats (a DST change) needs its offset."""
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        return lazy("Not a time: write it as 2026-03-29 08:15:00, with its UTC offset"
                    " (2026-03-29T08:15:00+03:00) or in the plant's zone.")
    if at.tzinfo is None:
        local = at.replace(tzinfo=timezone)
        earlier, later = to_utc(local), to_utc(local.replace(fold=1))
        if to_plant(earlier, timezone).replace(tzinfo=None) != at:
            return lazy("The plant's clocks skipped this time (a DST change): give its UTC offset.")
        if earlier != later:
            return lazy("The plant's clocks showed this time twice (a DST change): give its UTC offset.")
        at = local
    utc = to_utc(at).replace(microsecond=0)
    if not in_calendar(utc.date()):
        return lazy("Outside the years a scan may have.")
    return utc


def _submission(station: str, at: datetime, values: dict[str, str]) -> bytes:
    """The scan's submission id from its natural key: two imports of one row
    cannot both save it, even at once (submission ids are unique)."""
    key = "|".join(("import", station, values["piece_code"], at.isoformat(), values["defect_code"],
                    values["operator_code"]))
    return hashlib.sha256(key.encode()).digest()[:16]


# -- saving ------------------------------------------------------------------------------


@dataclass
class _Seen:
    """What this run has imported (or would have): its keys and each piece's latest time."""

    keys: set[Key] = field(default_factory=set)
    latest: dict[Piece, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class _Stored:
    """What the database holds of a batch's pieces."""

    keys: set[Key]
    latest: dict[Piece, datetime]  # the time of each piece's latest scan (its verdict's), to the second


async def run(db: Database, parsed: Parsed, shifts: Shifts, *, file_name: str, dry_run: bool,
              batch: int = BATCH, progress: Callable[[int, int], None] | None = None) -> Outcome:
    """Import the parsed rows (or, with `dry_run`, only decide what would be done)."""
    outcome = Outcome(rows=parsed.total, rejected=list(parsed.rejected))
    active = await _active_defects(db)
    user_id = 0 if dry_run else await _import_user(db)
    seen = _Seen()
    done = 0
    for rows in _batches(parsed.rows, batch):
        async with db.transaction() as cur:
            stored = await _stored(cur, rows)

        async def save(piece_rows: list[Row], stored: _Stored = stored) -> None:
            for row in piece_rows:
                await _one(db, row, stored, seen, outcome, active, parsed.header, shifts, user_id, dry_run)

        await _each_piece(rows, save)
        done += len(rows)
        if progress:
            progress(done, len(parsed.rows))
    outcome.rejected.sort(key=lambda rejected: rejected.number)
    if not dry_run:
        await summarise_all(db, shifts)
        async with db.transaction() as cur:
            await audit.record(cur, audit.terminal(), "scans.import", file_name, None,
                               outcome.audit_values(file_name))
    return outcome


async def _one(db: Database, row: Row, stored: _Stored, seen: _Seen, outcome: Outcome, active: set[str],
               header: dict[str, str], shifts: Shifts, user_id: int, dry_run: bool) -> None:
    """Decide a row, and save it unless it is a duplicate, rejected, or this is a dry run."""
    if row.key in stored.keys or row.key in seen.keys:
        outcome.duplicates += 1
        return
    if row.scan.defect_code not in active:
        outcome.rejected.append(Rejected(row.number, header["defect_code"], _no_such_defect()))
        return
    before = stored.latest.get(row.piece)
    if before is not None and row.at < before:
        outcome.rejected.append(Rejected(row.number, header["time"], lazy(
            "Older than this piece's latest scan at its station, stored already (%(time)s UTC):"
            " saved now, it would replace a newer verdict.", time=before.isoformat(sep=" "))))
        return
    rescan = before is not None or row.piece in seen.latest
    if not dry_run:
        try:
            saved = await save_scan(db, row.station, row.scan, user_id, shifts, at=row.at)
        except UnknownDefect:  # taken out of use since the import began
            outcome.rejected.append(Rejected(row.number, header["defect_code"], _no_such_defect()))
            return
        if saved.repeated:  # another import of the same row, at the same time
            outcome.duplicates += 1
            return
        rescan = saved.row.is_rescan
    seen.keys.add(row.key)
    seen.latest[row.piece] = row.at
    outcome.imported += 1
    outcome.rescans += rescan


def describe(outcome: Outcome, file_name: str, *, dry_run: bool) -> str:
    """The summary line at the end."""
    counts = (f"{outcome.imported:,} scans ({outcome.rescans:,} re-scans), {outcome.duplicates:,} duplicates"
              f" of stored scans skipped, {len(outcome.rejected):,} rows rejected, of {outcome.rows:,} rows")
    if dry_run:
        return f"quality: dry run of {file_name}: would import {counts}; nothing changed"
    return f"quality: imported {file_name}: {counts}; summaries up to date"


def _no_such_defect() -> LazyText:
    return lazy("Not a defect code in use: the defect catalogue lacks it, or it is no longer active.")


async def _each_piece(rows: list[Row], save: Callable[[list[Row]], Awaitable[None]]) -> None:
    """`save` each piece's rows, in their order, `SAVERS` pieces at a time: each
    save commits, and commits made together share the server's flush to disk."""
    pieces: dict[Piece, list[Row]] = defaultdict(list)
    for row in rows:
        pieces[row.piece].append(row)
    waiting = iter(pieces.values())

    async def saver() -> None:
        for piece_rows in waiting:
            await save(piece_rows)

    await asyncio.gather(*(saver() for _ in range(SAVERS)))


def _batches(rows: list[Row], size: int) -> Iterator[list[Row]]:
    for first in range(0, len(rows), size):
        yield rows[first:first + size]


async def _stored(cur: Cursor, rows: list[Row]) -> _Stored:
    """The stored scans of the batch's pieces (their keys), and each piece's latest scan's time."""
    pieces = sorted({row.scan.piece_code for row in rows})
    # Walks scans by its piece index, and looks each verdict up by its key.
    await cur.execute(
        "SELECT s.station, s.piece_code, s.created_at, s.defect_code, s.operator_code, v.last_scan_id = s.id"
        " FROM scans s LEFT JOIN piece_verdicts v ON v.station = s.station AND v.piece_code = s.piece_code"
        f" WHERE s.piece_code IN ({', '.join(['%s'] * len(pieces))})", pieces)
    keys: set[Key] = set()
    latest: dict[Piece, datetime] = {}
    for station, piece, at, defect, operator, is_latest in await cur.fetchall():
        keys.add((station, piece, at.replace(microsecond=0), defect, operator))
        if is_latest:
            latest[station, piece] = at.replace(microsecond=0)
    return _Stored(keys, latest)


async def _active_defects(db: Database) -> set[str]:
    async with db.transaction() as cur:
        await cur.execute("SELECT code FROM defect_codes WHERE active")
        return {code for (code,) in await cur.fetchall()}


async def _import_user(db: Database) -> int:
    """The account imported scans are saved by (scans.created_by)."""
    async with db.transaction() as cur:
        await cur.execute("SELECT id FROM users WHERE username = %s", (IMPORT_USER,))
        found = await cur.fetchone()
    if found:
        return found[0]
    # Nobody signs in as it: a random password no one knows.
    return await create_user(db, IMPORT_USER, secrets.token_urlsafe(24), "operator", "Imported scans",
                             actor=audit.terminal())
