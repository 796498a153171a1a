"""Saving scans exactly once, and reading them back for the live tables."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asyncmy.errors import IntegrityError, OperationalError

from quality import defects
from quality.clock import utc_now
from quality.codes import APPROVED
from quality.db import DUPLICATE_KEY, Cursor, Database, DatabaseUnavailable, error_code
from quality.i18n import lazy
from quality.procedures import call
from quality.session_cache import REVOCATIONS
from quality.shifts import Shifts

log = logging.getLogger(__name__)

_UNKNOWN_DEFECT = 30001  # raised by record_scan (migration 0003)


class UnknownDefect(ValueError):
    """The defect code is not in the catalogue, or is there but no longer active."""

    def __init__(self, code: str, inactive: bool) -> None:
        super().__init__(code)
        self.inactive = inactive


class SubmissionConflict(ValueError):
    """The submission id was already used for a different scan."""


class SaveContended(DatabaseUnavailable):
    """The save met concurrent saves of its submission (duplicate-key races)
    every time it was tried; nothing was saved, and sent again later it goes through."""


@dataclass(frozen=True)
class ScanInput:
    """A scan to save, its codes checked (quality/pages/stations/form.py)."""

    submission_id: bytes
    operator_code: str
    piece_code: str
    order_code: str
    checker1_code: str
    checker2_code: str
    defect_code: str

    @property
    def approved(self) -> bool:
        return self.defect_code == APPROVED


@dataclass(frozen=True, slots=True)
class ScanRow:
    id: int
    station: str
    created_at: datetime
    operator_code: str
    piece_code: str
    order_code: str
    checker1_code: str
    checker2_code: str
    defect_code: str
    defect_name: str
    defect_name_ro: str
    approved: bool
    is_rescan: bool

    def defect_name_in(self, language: str) -> str:
        """The defect's name in the reader's language, as it was when the scan was saved."""
        return defects.name_in(language, self.defect_name, self.defect_name_ro)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A piece's latest verdict at a station: what a re-scan of it replaces."""

    approved: bool
    defect_code: str
    defect_name: str
    defect_name_ro: str

    def defect_name_in(self, language: str) -> str:
        return defects.name_in(language, self.defect_name, self.defect_name_ro)


@dataclass(frozen=True, slots=True)
class Saved:
    """A saved scan and its order's piece counts right after it; for a save just
    made, also the verdict it replaced and its operator's scans this shift."""

    row: ScanRow
    approved: int
    rejected: int
    repeated: bool = False  # this submission had been saved before
    previous: Verdict | None = None  # the piece's verdict before this re-scan
    operator_scans: int | None = None


# A scan row with its defect's names as they were when the scan was saved
# (migrations 0004 and 0016 keep them on the row) and its order's current piece counts.
# STRAIGHT_JOIN: always walk scans by its own index first and look the counts
# up by primary key.
ROW_SELECT = (
    "SELECT STRAIGHT_JOIN s.id, s.station, s.created_at, s.operator_code, s.piece_code, s.order_code,"
    " s.checker1_code, s.checker2_code, s.defect_code, s.defect_name, s.defect_name_ro, s.approved,"
    " s.is_rescan, c.approved, c.rejected"
    " FROM scans s"
    " JOIN order_counts c ON c.station = s.station AND c.order_code = s.order_code"
)


def saved_from_row(values: tuple) -> Saved:
    *row, approved, rejected = values
    row[11], row[12] = bool(row[11]), bool(row[12])
    return Saved(ScanRow(*row), approved, rejected)


async def save_scan(db: Database, station: str, scan: ScanInput, user_id: int,
                    shifts: Shifts, at: datetime | None = None) -> Saved:
    """Save once per submission id; a repeat returns the first save's scan. A
    save that meets a deadlock or lock wait timeout is run again (`Database.run`);
    one that meets a concurrent save of the same submission returns that save.
    The scan is made now, unless `at` (naive UTC) says when: `quality import`
    saves a plant's history by the same rules."""
    for _ in range(3):
        try:
            return await _record_scan(db, station, scan, user_id, shifts, at or utc_now())
        except IntegrityError as exc:
            if error_code(exc) != DUPLICATE_KEY:
                raise
            before = await _saved_before(db, station, scan)
            if before is not None:
                return before
        except OperationalError as exc:
            if error_code(exc) != _UNKNOWN_DEFECT:
                raise
            raise UnknownDefect(scan.defect_code, await _in_catalogue(db, scan.defect_code)) from exc
    raise SaveContended("the scan's save kept colliding with concurrent saves")


async def _record_scan(db: Database, station: str, scan: ScanInput, user_id: int,
                       shifts: Shifts, created_at: datetime) -> Saved:
    shift_start, shift_end = shifts.around(created_at)
    (scan_id, rescan, defect_name, defect_name_ro, approved, rejected,
     was_approved, was_code, was_name, was_name_ro, operator_scans, stored_at) = await db.run(
        _call_record_scan,
        {"station": station, "submission": scan.submission_id, "operator": scan.operator_code,
         "piece": scan.piece_code, "order": scan.order_code, "checker1": scan.checker1_code,
         "checker2": scan.checker2_code, "defect": scan.defect_code, "approved": scan.approved,
         "user": user_id, "at": created_at, "shift_start": shift_start, "shift_end": shift_end},
    )
    row = ScanRow(
        scan_id, station, stored_at, scan.operator_code, scan.piece_code, scan.order_code,
        scan.checker1_code, scan.checker2_code, scan.defect_code, defect_name, defect_name_ro,
        scan.approved, bool(rescan),
    )
    previous = None if was_code is None else Verdict(bool(was_approved), was_code, was_name, was_name_ro)
    return Saved(row, approved, rejected, previous=previous, operator_scans=operator_scans)


async def _call_record_scan(cur: Cursor, arguments: dict[str, Any]) -> tuple:
    await call(cur, "record_scan", **arguments)
    found = await cur.fetchone()
    await cur.nextset()
    return found


async def piece_verdict(db: Database, station: str, piece_code: str) -> Verdict | None:
    """The piece's latest verdict at the station (None: never scanned there);
    two primary-key reads."""
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT v.approved, s.defect_code, s.defect_name, s.defect_name_ro FROM piece_verdicts v"
            " JOIN scans s ON s.id = v.last_scan_id"
            " WHERE v.station = %s AND v.piece_code = %s",
            (station, piece_code),
        )
        found = await cur.fetchone()
    return None if found is None else Verdict(bool(found[0]), *found[1:])


async def operator_scans(db: Database, station: str, operator_code: str,
                         shift: tuple[datetime, datetime]) -> int:
    """Scans by the operator code at the station in the shift: the counter
    record_scan keeps for these shift bounds (migrations 0009, 0012), or until
    the shift's first save there under them, the scans stored."""
    start, end = shift
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT COALESCE("
            " (SELECT scans FROM operator_shift_scans"
            "  WHERE station = %s AND operator_code = %s AND shift_start = %s AND shift_end = %s),"
            " (SELECT COUNT(*) FROM scans WHERE operator_code = %s AND created_at >= %s"
            "  AND created_at < %s AND station = %s))",
            (station, operator_code, start, end, operator_code, start, end, station),
        )
        (count,) = await cur.fetchone()
    return int(count)


async def _in_catalogue(db: Database, code: str) -> bool:
    """Whether a code record_scan refused is in the catalogue (so: inactive)."""
    async with db.transaction() as cur:
        return await defects.find(cur, code) is not None


async def _saved_before(db: Database, station: str, scan: ScanInput) -> Saved | None:
    async with db.transaction() as cur:
        await cur.execute(ROW_SELECT + " WHERE s.submission_id = %s", (scan.submission_id,))
        found = await cur.fetchone()
    if found is None:  # the first save was rolled back after all: save again
        return None
    saved = saved_from_row(found)
    row = saved.row
    same = (
        row.station == station
        and (row.operator_code, row.piece_code, row.checker1_code, row.checker2_code,
             row.defect_code)
        == (scan.operator_code, scan.piece_code, scan.checker1_code, scan.checker2_code,
            scan.defect_code)
    )
    if not same:
        raise SubmissionConflict(
            lazy("Not saved — this submission id belongs to another scan. Scan it again."))
    return Saved(row, saved.approved, saved.rejected, repeated=True)


async def latest(cur: Cursor, station: str, limit: int) -> list[Saved]:
    await cur.execute(ROW_SELECT + " WHERE s.station = %s ORDER BY s.id DESC LIMIT %s",
                      (station, limit))
    return [saved_from_row(values) for values in await cur.fetchall()]


async def newer(cur: Cursor, after_id: int, missing: list[int], limit: int
                ) -> tuple[int, list[Saved]]:
    """Scans above `after_id`, plus any of the `missing` ids that have appeared since
    (a transaction that took a lower id may commit after a higher one); and, in the
    same statement, the sessions' revocation counter (`auth_version`), so a
    watcher's poll stays one round trip. The counter comes as a row of its own,
    told apart by its empty station (no scan has one)."""
    where = "s.id > %s"
    params: list[object] = [after_id]
    if missing:
        where += f" OR s.id IN ({', '.join(['%s'] * len(missing))})"
        params.extend(missing)
    await cur.execute(
        f"(SELECT ({REVOCATIONS}), {_NULLS}) UNION ALL"
        f" ({ROW_SELECT} WHERE {where} ORDER BY s.id LIMIT %s)",
        (*params, limit),
    )
    rows = await cur.fetchall()
    auth_version = next(values[0] for values in rows if values[1] is None)
    found = [saved_from_row(values) for values in rows if values[1] is not None]
    return auth_version, sorted(found, key=lambda saved: saved.row.id)


# The counter's row fills ROW_SELECT's other 14 columns with NULL.
_NULLS = ", ".join(["NULL"] * 14)
