"""Demo data at scale: realistic scans written in batches, then the per-piece and
per-order counters rebuilt once from them (the facts record_scan keeps).

Several operators and checkers per shift, orders of 50-500 pieces, re-scans of
reworked pieces, and a rejection rate and defect mix that vary by shift and
day; and two excursions for the control charts and alerts to show: a bad hour
at one station (45 % rejected) a day or so before the end, and an
order in the last days whose rejected pieces all have the same defect, with a
run of them in a row where a feeder failed. Every
demo scan is made by the `demo-data` user, which is how a database
holding real scans is recognised (and refused without `force`).
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from quality import alert_changes
from quality.accounts import create_user
from quality.alerts.engine import Channels, fire, rearm
from quality.alerts.rules import RATE, REPEATED, check
from quality.alerts.rules import find as find_rule
from quality.alerts.windows import window_for
from quality.audit import Actor
from quality.clock import to_plant, utc_now
from quality.codes import APPROVED
from quality.db import Cursor, Database
from quality.settings import CodePatterns
from quality.shifts import Shifts
from quality.summary.writer import summarise_all

DEMO_USER = "demo-data"
DEMO_ACTOR = Actor(None, "demo-data", "terminal")  # who made the demo's alert rules, in the audit log
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


_BAD_HOUR_REJECT_RATE = 0.45
_RECURRING_REJECT_RATE = 0.3
_RECURRING_DEFECT = "104"  # Missing component, when the catalogue has it
# The feeder fault on the recurring order: from its 10th piece, 12 rejected in a
# row, so the demo's "same defect 3 times in a row" rule fires whatever the
# random draws (a time of day that drew no three in a row once left it silent).
_FAULT_PIECES = range(10, 22)


@dataclass(frozen=True)
class Excursions:
    """Where the demo's line went wrong, for the walk-through."""

    bad_hour: datetime  # its start, UTC
    bad_station: str  # "" when no scan fell in that hour
    recurring_order: str  # "" when the scans ended before the order began
    recurring_defect: str


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
               progress: Callable[[int, int], None] | None = None, seed: int | None = None) -> Excursions:
    """Add `scans` demo scans spread over the last `days` days; returns where they went wrong."""
    user_id = await _demo_user(db)
    async with db.transaction() as cur:
        await cur.execute("SELECT 1 FROM scans WHERE created_by <> %s LIMIT 1", (user_id,))
        if await cur.fetchone() and not force:
            raise DemoDataRefused(
                "this database holds scans not made by the demo; use --force to add demo scans anyway")
        defects, first_order = await _catalogue(cur)
    plan = _Plan(utc_now(), days, defects)
    rows = _scans(random.Random(seed), scans, plan, shifts.timezone, user_id, defects, first_order)
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
    went_wrong = Excursions(plan.bad_start, plan.bad_station, plan.recurring_order, plan.recurring_defect)
    await _demo_alerts(db, went_wrong, user_id, shifts)
    return went_wrong


async def _demo_alerts(db: Database, went_wrong: Excursions, user_id: int, shifts: Shifts) -> None:
    """On a database without alert rules: two rules that catch the excursions,
    and the alerts they would have fired, found by running their windows over
    the demo's scans of the last days in order (no notifications are sent)."""
    async with db.transaction() as cur:
        await cur.execute("SELECT 1 FROM alert_rules LIMIT 1")
        if await cur.fetchone():
            return
    forms = []
    if went_wrong.bad_station:
        forms.append({"kind": RATE, "station": went_wrong.bad_station, "threshold": "30", "pieces": "20"})
    if went_wrong.recurring_order:
        forms.append({"kind": REPEATED, "order": went_wrong.recurring_order,
                      "defect": went_wrong.recurring_defect, "pieces": "3"})
    since = min(went_wrong.bad_hour, utc_now() - timedelta(days=3)) - timedelta(hours=1)
    async with db.transaction() as cur:
        windows = []
        for form in forms:
            draft = check(form, CodePatterns(), at_station=True)  # the demo's own order codes
            assert draft.ok, draft.errors
            rule_id = await alert_changes.add(cur, DEMO_ACTOR, draft)
            rule = await find_rule(cur, rule_id)
            assert rule is not None
            windows.append(window_for(rule, shifts))
        await cur.execute("SELECT id, station, order_code, defect_code, created_at FROM scans"
                          " WHERE created_by = %s AND created_at >= %s ORDER BY id", (user_id, since))
        scans = await cur.fetchall()
        silent = Channels(webhook=False, email=False)
        for scan_id, station, order_code, defect_code, created_at in scans:
            for window in windows:
                if not window.rule.matches(station, order_code):
                    continue
                window.add(scan_id, defect_code, created_at)
                if window.breached and not window.noted_breached:
                    snapshot = (window.value, window.limit, window.scan_ids, station, order_code)
                    await fire(cur, window.rule, snapshot, silent, created_at)
                elif window.noted_breached and not window.breached:
                    await rearm(cur, window.rule.id)
                window.noted_breached = window.breached


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


class _Plan:
    """When the excursions happen: the bad hour a day before the end (or half way,
    for a shorter run) at the station scanning as it begins, the recurring defect
    on the first order begun in the last three days (or last third)."""

    def __init__(self, end: datetime, days: float, defects: list[str]) -> None:
        self.end, self.days = end, days
        span = timedelta(days=days)
        self.bad_start = (end - min(timedelta(hours=26), span / 2)).replace(minute=0, second=0, microsecond=0)
        self.recurring_from = end - min(timedelta(days=3), span / 3)
        self.recurring_order = ""
        self.recurring_defect = _RECURRING_DEFECT if _RECURRING_DEFECT in defects else defects[0]
        self.bad_station = ""  # the station of the hour's first scan: a station sure to be scanning

    def in_bad_hour(self, at: datetime, station: str) -> bool:
        if not self.bad_start <= at < self.bad_start + timedelta(hours=1):
            return False
        self.bad_station = self.bad_station or station
        return station == self.bad_station


def _scans(rng: random.Random, count: int, plan: _Plan, timezone: ZoneInfo, user_id: int,
           defects: list[str], first_order: int) -> Iterator[tuple]:
    """Scan rows in time order, evenly spread (with jitter) over the last `days` days."""
    end = plan.end
    step = timedelta(days=plan.days) / max(count, 1)
    at = end - timedelta(days=plan.days)
    # Each day has its own mood: some days go well, some badly.
    day_factor: dict[int, float] = {}
    # Each shift favours some defects; the weights are drawn once.
    defect_weights = [[rng.uniform(0.2, 3.0) for _ in defects] for _ in _CREWS]
    order = first_order
    pending: list[tuple[str, str, str]] = []  # (station, piece, order) waiting for a re-scan
    recurring_scanned = 0  # first scans of the recurring order's pieces so far
    queue: Iterator[tuple[str, str, str]] = iter(())
    for _ in range(count):
        at += step * rng.uniform(0.5, 1.5)
        at = min(at, end)
        local = to_plant(at, timezone)
        shift = _SHIFT_OF_HOUR[local.hour]
        crew = _CREWS[shift]
        factor = day_factor.setdefault(local.toordinal(), rng.uniform(0.5, 1.8))
        # No rework while the feeder fault runs: the run stays unbroken.
        in_fault = recurring_scanned in _FAULT_PIECES
        rescan = bool(pending) and not in_fault and rng.random() < 0.03
        if rescan:
            station, piece, order_code = pending.pop(rng.randrange(len(pending)))
        else:
            item = next(queue, None)
            if item is None:
                queue = _order_pieces(rng, order)
                order += 1
                item = next(queue)
                if not plan.recurring_order and at >= plan.recurring_from:
                    plan.recurring_order = item[2]
            station, piece, order_code = item
        reject_rate = _BASE_REJECT_RATE * _SHIFT_REJECT_FACTOR[shift] * factor
        recurring = order_code == plan.recurring_order
        if recurring:
            reject_rate = _RECURRING_REJECT_RATE
        if plan.in_bad_hour(at, station):
            reject_rate = _BAD_HOUR_REJECT_RATE
        if recurring and not rescan:
            reject_rate = 1.0 if in_fault else reject_rate
            recurring_scanned += 1
        if rescan:
            reject_rate /= 4  # reworked pieces mostly pass
        approved = rng.random() >= reject_rate
        if approved:
            defect = APPROVED
        elif recurring:
            defect = plan.recurring_defect
        else:
            defect = rng.choices(defects, defect_weights[shift])[0]
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
