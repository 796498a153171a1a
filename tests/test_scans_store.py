"""Saving scans: exactly once, counted by piece, safe under concurrency."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

from quality.clock import utc_now
from quality.db import Database
from quality.scans.store import ScanInput, Verdict, operator_scans, piece_verdict, save_scan
from quality.settings import DatabaseURL
from tests.conftest import UTC_SHIFTS, database_for


def scan_input(piece: str, defect: str = "000", submission: bytes | None = None) -> ScanInput:
    return ScanInput(submission or secrets.token_bytes(16), "OP01", piece, piece[:10],
                     "OC01", "OC02", defect)


async def test_simultaneous_first_scans_of_one_piece_count_it_once(
    db: Database, make_user: Any
) -> None:
    make_user("racer", "operator")
    pieces = [f"CP00000042-{n:04d}" for n in range(10)]
    results = await asyncio.gather(*(
        save_scan(db, "quality", scan_input(piece, defect), 1, UTC_SHIFTS)
        for piece in pieces for defect in ("000", "104")
    ))
    assert len({saved.row.id for saved in results}) == 20
    for piece in pieces:
        pair = [saved.row for saved in results if saved.row.piece_code == piece]
        assert sorted(row.is_rescan for row in pair) == [False, True]
    async with db.transaction() as cur:
        await cur.execute("SELECT approved + rejected FROM order_counts WHERE order_code = 'CP00000042'")
        assert await cur.fetchone() == (10,)
        await cur.execute(
            "SELECT COUNT(*) FROM piece_verdicts v JOIN scans s ON s.id = v.last_scan_id"
            " WHERE v.approved <> s.approved")
        assert await cur.fetchone() == (0,)  # each verdict is its piece's latest scan


async def test_concurrent_copies_of_one_submission_save_one_row(
    db: Database, make_user: Any
) -> None:
    make_user("copier", "operator")
    copy = scan_input("CP00000043-0001", submission=secrets.token_bytes(16))
    results = await asyncio.gather(*(save_scan(db, "quality", copy, 1, UTC_SHIFTS) for _ in range(10)))
    assert len({saved.row.id for saved in results}) == 1
    assert sum(not saved.repeated for saved in results) == 1
    async with db.transaction() as cur:
        await cur.execute("SELECT COUNT(*) FROM scans")
        assert await cur.fetchone() == (1,)


# -- the operator's scans this shift (migration 0009) ------------------------------


def operator_scan(piece: str, operator: str) -> ScanInput:
    return ScanInput(secrets.token_bytes(16), operator, piece, piece[:10], "OC01", "OC02", "000")


async def test_simultaneous_saves_of_one_operator_each_count_once(
    db: Database, make_user: Any
) -> None:
    """From any number of connections (processes) at once: each save gets its own
    count, the first ones of the shift racing to create its row included."""
    make_user("counter", "operator")
    results = await asyncio.gather(*(
        save_scan(db, "quality", operator_scan(f"CP00000043-{n:04d}", "OP43"), 1, UTC_SHIFTS)
        for n in range(12)
    ))
    assert sorted(saved.operator_scans for saved in results) == list(range(1, 13))
    start, _ = UTC_SHIFTS.around(utc_now())
    async with db.transaction() as cur:
        await cur.execute("SELECT station, operator_code, shift_start, scans FROM operator_shift_scans")
        assert await cur.fetchall() == [("quality", "OP43", start, 12)]


async def test_the_count_is_this_shift_at_this_station_by_this_operator(
    db: Database, make_user: Any
) -> None:
    """Scans stored before the counter's row existed (an older shift's, another
    station's, another operator's, this shift's own) are counted by the shift's
    first save only where they belong; a repeat of a save changes nothing."""
    make_user("seeder", "operator")
    start, end = UTC_SHIFTS.around(utc_now())
    seeded = [("quality", "OP44", start - timedelta(seconds=1)),  # the shift before
              ("fg", "OP44", start),  # another station
              ("quality", "OP45", start),  # another operator
              ("quality", "OP44", start)]  # this shift, this station: counted
    async with db.transaction() as cur:
        for n, (station, operator, at) in enumerate(seeded):
            await cur.execute(
                "INSERT INTO scans (station, submission_id, operator_code, piece_code, order_code,"
                " checker1_code, checker2_code, defect_code, approved, created_at, created_by)"
                " VALUES (%s, %s, %s, %s, 'CP00000044', 'OC01', 'OC02', '000', TRUE, %s, 1)",
                (station, secrets.token_bytes(16), operator, f"CP00000044-{n:04d}", at))
        # and an older shift's counter, which this shift's must not continue
        await cur.execute("INSERT INTO operator_shift_scans VALUES ('quality', 'OP44', %s, %s, 50)",
                          (start - (end - start), start))
    first = await save_scan(db, "quality", operator_scan("CP00000044-0100", "OP44"), 1, UTC_SHIFTS)
    assert first.operator_scans == 2
    again = operator_scan("CP00000044-0101", "OP44")
    assert (await save_scan(db, "quality", again, 1, UTC_SHIFTS)).operator_scans == 3
    repeated = await save_scan(db, "quality", again, 1, UTC_SHIFTS)
    assert repeated.repeated and repeated.operator_scans is None
    assert await operator_scans(db, "quality", "OP44", (start, end)) == 3
    assert await operator_scans(db, "fg", "OP44", (start, end)) == 1  # no row yet: counted
    assert await operator_scans(db, "quality", "OP46", (start, end)) == 0


async def test_a_save_says_which_verdict_it_replaced(db: Database, make_user: Any) -> None:
    make_user("rescanner", "operator")
    piece = "CP00000045-0001"
    missing = Verdict(False, "104", "Missing component", "Componentă lipsă")  # names as seeded
    first = await save_scan(db, "quality", scan_input(piece, "104"), 1, UTC_SHIFTS)
    assert first.previous is None and await piece_verdict(db, "quality", piece) == missing
    second = await save_scan(db, "quality", scan_input(piece, "000"), 1, UTC_SHIFTS)
    assert second.row.is_rescan and second.previous == missing
    third = await save_scan(db, "quality", scan_input(piece, "101"), 1, UTC_SHIFTS)
    assert third.previous is not None and third.previous.approved
    assert await piece_verdict(db, "fg", piece) is None  # stations never see each other


async def test_the_shifts_first_count_never_waits_for_a_save_still_open(
    db: Database, db_url: DatabaseURL, make_user: Any
) -> None:
    """Another terminal's save of the same operator, not yet committed, neither
    blocks the shift's first count (a plain read: it would fail on the query
    timeout) nor is counted before it commits."""
    make_user("opener", "operator")
    other = database_for(db_url, maxsize=1, query_timeout=3.0)
    opened, commit = asyncio.Event(), asyncio.Event()

    async def save_left_open() -> None:
        async with other.transaction() as cur:
            await cur.execute(
                "INSERT INTO scans (station, submission_id, operator_code, piece_code, order_code,"
                " checker1_code, checker2_code, defect_code, approved, created_at, created_by)"
                " VALUES ('quality', %s, 'OP47', 'CP00000047-0001', 'CP00000047', 'OC01', 'OC02',"
                " '000', TRUE, %s, 1)", (secrets.token_bytes(16), utc_now()))
            opened.set()
            await commit.wait()

    left_open = asyncio.create_task(save_left_open())
    try:
        await opened.wait()
        saved = await save_scan(db, "quality", operator_scan("CP00000047-0002", "OP47"), 1, UTC_SHIFTS)
        assert saved.operator_scans == 1
    finally:
        commit.set()
        await left_open
        await other.close()
