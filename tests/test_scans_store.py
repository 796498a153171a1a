"""Saving scans: exactly once, counted by piece, safe under concurrency."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from quality.db import Database
from quality.scans.form import ScanInput
from quality.scans.store import save_scan
from tests.conftest import UTC_SHIFTS


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
