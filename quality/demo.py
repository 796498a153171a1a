"""Demo data at scale: realistic scans written in batches, then the per-piece and
per-order counters rebuilt once from them (the facts record_scan keeps).

Several operators and checkers per shift, orders of 50-500 pieces, re-scans of
reworked pieces, and a rejection rate and defect mix that vary by shift and
day. Every demo scan is made by the `demo-data` user, which is how a database
holding real scans is recognised (and refused without `force`).
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from quality.accounts import create_user
from quality.clock import to_plant, utc_now
from quality.codes import APPROVED
from quality.db import Cursor, Database
from quality.shifts import Shifts
from quality.summary.writer import summarise_all

DEMO_USER = "demo-data"
BATCH = 5000  # rows per multi-row INSERT, each in its own transaction
_COLUMNS = ("station, submission_id, operator_code, piece_code, order_code, checker1_code,"
            " checker2_code, defect_code, approved, is_rescan, created_at, created_by")
_INSERT = f"INSERT INTO scans ({_COLUMNS}) VALUES ({', '.join(['%s'] * 12)})"

# Shift by local hour: morning, afternoon, night; the night shift rejects more,
# and each shift finds its own kinds of defect more often.
_SHIFT_OF_HOUR = [2] * 6 + [0] * 8 + [1] * 8 + [2] * 2
_SHIFT_REJECT_FACTOR = (1.0, 1.3, 2.0)
_BASE_REJECT_RATE = 0.04
_RESCAN_SHARE = 0.6  # of rejected pieces, reworked and scanned again later


class DemoDataRefused(RuntimeError):
    """The database holds scans the demo did not make."""


@dataclass(frozen=True)
class _Crew:
    operators: tuple[str, ...]
    checkers: tuple[str, ...]


_CREWS = tuple(
    _Crew(tuple(f"OP{shift}{n}" for n in range(1, 5)), tuple(f"OC{shift}{n}" for n in range(1, 4)))
    for shift in "ABC"
)


async def fill(db: Database, scans: int, days: float, shifts: Shifts, *, force: bool = False,
               progress: Callable[[int, int], None] | None = None, seed: int | None = None) -> int:
    """Add `scans` demo scans spread over the last `days` days; returns the demo user's id."""
    user_id = await _demo_user(db)
    async with db.transaction() as cur:
        await cur.execute("SELECT 1 FROM scans WHERE created_by <> %s LIMIT 1", (user_id,))
        if await cur.fetchone() and not force:
            raise DemoDataRefused(
                "this database holds scans not made by the demo; use --force to add demo scans anyway")
        defects, first_order = await _catalogue(cur)
    rows = _scans(random.Random(seed), scans, days, shifts.timezone, user_id, defects, first_order)
    done = 0
    while done < scans:
        batch = [next(rows) for _ in range(min(BATCH, scans - done))]
        async with db.transaction() as cur:
            await cur.executemany(_INSERT, batch)
        done += len(batch)
        if progress:
            progress(done, scans)
    await rebuild_counters(db)
    # Demo scans are hours old, so the summary can take them in at once.
    await summarise_all(db, shifts)
    return user_id


async def rebuild_counters(db: Database) -> None:
    """piece_verdicts and order_counts from the scans: each piece's latest scan
    per station, and per order the pieces by that latest verdict. Scans are
    read in id order and each overwrites its piece's verdict, so the latest
    wins without sorting a million rows in a temporary table."""
    async with db.transaction() as cur:
        await cur.execute("DELETE FROM piece_verdicts")
        await cur.execute(
            "INSERT INTO piece_verdicts (station, piece_code, order_code, approved, last_scan_id)"
            " SELECT station, piece_code, order_code, approved, id FROM scans ORDER BY id"
            " ON DUPLICATE KEY UPDATE order_code = VALUES(order_code), approved = VALUES(approved),"
            " last_scan_id = VALUES(last_scan_id)")
        await cur.execute("DELETE FROM order_counts")
        await cur.execute(
            "INSERT INTO order_counts (station, order_code, approved, rejected)"
            " SELECT station, order_code, SUM(approved), SUM(1 - approved) FROM piece_verdicts"
            " GROUP BY station, order_code")


async def _demo_user(db: Database) -> int:
    async with db.transaction() as cur:
        await cur.execute("SELECT id FROM users WHERE username = %s", (DEMO_USER,))
        found = await cur.fetchone()
    if found:
        return found[0]
    # Nobody signs in as it: a random password no one knows.
    return await create_user(db, DEMO_USER, secrets.token_urlsafe(24), "operator", "Demo data")


async def _catalogue(cur: Cursor) -> tuple[list[str], int]:
    """The active defect codes, and the next free order number."""
    await cur.execute("SELECT code FROM defect_codes WHERE active AND code <> %s ORDER BY code", (APPROVED,))
    defects = [code for (code,) in await cur.fetchall()]
    await cur.execute("SELECT MAX(order_code) FROM scans WHERE order_code LIKE 'CP________'")
    (highest,) = await cur.fetchone() or (None,)
    first = int(highest[2:]) + 1 if highest and highest[2:].isdigit() else 10_000_000
    return defects, first


def _scans(rng: random.Random, count: int, days: float, timezone: ZoneInfo, user_id: int,
           defects: list[str], first_order: int) -> Iterator[tuple]:
    """Scan rows in time order, evenly spread (with jitter) over the last `days` days."""
    end = utc_now()
    step = timedelta(days=days) / max(count, 1)
    at = end - timedelta(days=days)
    # Each day has its own mood: some days go well, some badly.
    day_factor: dict[int, float] = {}
    # Each shift favours some defects; the weights are drawn once.
    defect_weights = [[rng.uniform(0.2, 3.0) for _ in defects] for _ in _CREWS]
    order = first_order
    pending: list[tuple[str, str, str]] = []  # (station, piece, order) waiting for a re-scan
    queue: Iterator[tuple[str, str, str]] = iter(())
    for _ in range(count):
        at += step * rng.uniform(0.5, 1.5)
        at = min(at, end)
        local = to_plant(at, timezone)
        shift = _SHIFT_OF_HOUR[local.hour]
        crew = _CREWS[shift]
        factor = day_factor.setdefault(local.toordinal(), rng.uniform(0.5, 1.8))
        rescan = bool(pending) and rng.random() < 0.03
        if rescan:
            station, piece, order_code = pending.pop(rng.randrange(len(pending)))
        else:
            item = next(queue, None)
            if item is None:
                queue = _order_pieces(rng, order)
                order += 1
                item = next(queue)
            station, piece, order_code = item
        reject_rate = _BASE_REJECT_RATE * _SHIFT_REJECT_FACTOR[shift] * factor
        if rescan:
            reject_rate /= 4  # reworked pieces mostly pass
        approved = rng.random() >= reject_rate
        defect = APPROVED if approved else rng.choices(defects, defect_weights[shift])[0]
        if not approved and not rescan and rng.random() < _RESCAN_SHARE:
            pending.append((station, piece, order_code))
        checker1, checker2 = rng.sample(crew.checkers, 2)
        yield (station, os.urandom(16), rng.choice(crew.operators), piece, order_code,
               checker1, checker2, defect, approved, rescan, at, user_id)


def _order_pieces(rng: random.Random, number: int) -> Iterator[tuple[str, str, str]]:
    order_code = f"CP{number:08d}"
    station = "quality" if rng.random() < 0.8 else "fg"
    for piece in range(1, rng.randint(50, 500) + 1):
        yield station, f"{order_code}-{piece:04d}", order_code


def describe_progress(done: int, total: int) -> str:
    return f"\r{done:>11,} / {total:,} scans ({100 * done // max(total, 1)}%)"
