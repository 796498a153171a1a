"""The differential check of the figures people act on (issue 22): every figure
the pages show, computed again from the raw `scans` by this file's own SQL
and Python, independent of the summary code, and compared.

    .venv/bin/python bench/figures_check.py                     # in a private MariaDB, then stopped
    .venv/bin/python bench/figures_check.py --scans 4000 --filters 900 --reports 230 --exports 90
    .venv/bin/python bench/figures_check.py --database-url mysql://u:p@host/empty_db

What it compares, over random filters (any of station, dates or times, shift,
operator, order, piece, checker, defect, rejected only, re-scans only):
the scan list's totals (scans, approved and rejected pieces), each report's
every row (per production day and shift, the top orders and operators, the
defects) and total, the CSV export's rows, the stations' order counts, and
the operator counter of each operator at each station this shift.

When, and under what: history inserted by hand (as an import or a DBA would:
re-scans flagged as first scans), saves of the same pieces with different
verdicts through two connection pools at once, a transaction holding
inserted scans open while the summariser runs and then committing, a scan
dated in the future, a plant in Europe/Bucharest; then the settings changed
to Asia/Kolkata (a half-hour offset) with other shifts, between "restarts".
Prints the figures compared and every mismatch; exits 1 on any.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import secrets
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncmy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quality.accounts import AccountError, create_user  # noqa: E402
from quality.db import Database  # noqa: E402
from quality.migrate import migrate  # noqa: E402
from quality.pages.reports.report import TOP, build  # noqa: E402
from quality.pages.scan_list.queries import all_rows, totals  # noqa: E402
from quality.scan_filter import read_filter  # noqa: E402
from quality.scans.store import ScanInput, operator_scans, save_scan  # noqa: E402
from quality.settings import DatabaseURL, Settings  # noqa: E402
from quality.shifts import Shifts  # noqa: E402
from quality.summary.counters import follow_layout  # noqa: E402
from quality.summary.writer import summarise_all, summarise_once  # noqa: E402

DEFECTS = ("000", "000", "000", "104", "201", "301")
OPERATORS = ("OP01", "OP02", "OP03")
CHECKERS = ("OC01", "OC02", "OC03")
BUCHAREST = (ZoneInfo("Europe/Bucharest"), (6 * 60, 14 * 60, 22 * 60))
KOLKATA = (ZoneInfo("Asia/Kolkata"), (7 * 60, 19 * 60))


@dataclass(frozen=True)
class Raw:
    id: int
    station: str
    at: datetime
    operator: str
    piece: str
    order: str
    checker1: str
    checker2: str
    defect: str
    approved: bool
    rescan: bool


@dataclass
class Tally:
    """Figures of a set of scans, as this file counts them."""

    scans: int = 0
    approved: int = 0
    rejected: int = 0
    defects: Counter[str] = field(default_factory=Counter)

    def key(self) -> tuple:
        return self.scans, self.approved, self.rejected, dict(+self.defects)


@dataclass
class Result:
    compared: int = 0
    mismatches: list[str] = field(default_factory=list)

    def same(self, what: str, got: Any, want: Any) -> None:
        self.compared += 1
        if got != want:
            self.mismatches.append(f"{what}: the app shows {got}, the scans say {want}")


# -- the scans as stored, and what they add up to ----------------------------------


async def raw_scans(db: Database) -> list[Raw]:
    async with db.transaction() as cur:
        await cur.execute("SELECT id, station, created_at, operator_code, piece_code, order_code,"
                          " checker1_code, checker2_code, defect_code, approved, is_rescan"
                          " FROM scans ORDER BY id")
        return [Raw(*row[:9], bool(row[9]), bool(row[10])) for row in await cur.fetchall()]


def latest_ids(scans: list[Raw]) -> set[int]:
    """Each piece's latest scan at its station: the highest id."""
    latest: dict[tuple[str, str], int] = {}
    for scan in scans:
        latest[scan.station, scan.piece] = max(latest.get((scan.station, scan.piece), 0), scan.id)
    return set(latest.values())


def tally(scans: list[Raw], latest: set[int]) -> Tally:
    counted = Tally()
    for scan in scans:
        counted.scans += 1
        if scan.id in latest:
            if scan.approved:
                counted.approved += 1
            else:
                counted.rejected += 1
        if not scan.approved:
            counted.defects[scan.defect] += 1
    return counted


def shift_of(at: datetime, zone: ZoneInfo, starts: tuple[int, ...]) -> tuple[date, int]:
    """The production day and shift of a stored time, counted here."""
    local = at.replace(tzinfo=UTC).astimezone(zone)
    minutes = local.hour * 60 + local.minute
    if minutes < starts[0]:
        return local.date() - timedelta(days=1), len(starts) - 1
    return local.date(), max(i for i, start in enumerate(starts) if start <= minutes)


def local_to_utc(text: str, zone: ZoneInfo, end: bool) -> datetime:
    if "T" in text:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M").replace(tzinfo=zone)
    else:
        moment = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=zone) + timedelta(days=1 if end else 0)
    return moment.astimezone(UTC).replace(tzinfo=None)


def wanted(params: dict[str, str], zone: ZoneInfo, starts: tuple[int, ...]) -> Callable[[Raw], bool]:
    """The filter's test of a scan, written here from the parameters."""
    start = local_to_utc(params["from"], zone, False) if "from" in params else None
    end = local_to_utc(params["to"], zone, True) if "to" in params else None

    def test(s: Raw) -> bool:
        return all((
            params.get("station", s.station) == s.station,
            params.get("operator", s.operator) == s.operator,
            params.get("order", s.order) == s.order,
            params.get("piece", s.piece) == s.piece,
            params.get("defect", s.defect) == s.defect,
            "checker" not in params or params["checker"] in (s.checker1, s.checker2),
            "rejected" not in params or not s.approved,
            "rescans" not in params or s.rescan,
            start is None or s.at >= start,
            end is None or s.at < end,
            "shift" not in params or shift_of(s.at, zone, starts)[1] == int(params["shift"]) - 1,
        ))
    return test


def random_filter(rng: random.Random, scans: list[Raw], zone: ZoneInfo, starts: tuple[int, ...]
                  ) -> dict[str, str]:
    pick = rng.choice(scans)
    params: dict[str, str] = {}
    for name, value in (("station", pick.station), ("operator", pick.operator), ("order", pick.order),
                        ("piece", pick.piece), ("checker", rng.choice(CHECKERS)), ("defect", pick.defect),
                        ("rejected", "1"), ("rescans", "1"),
                        ("shift", str(rng.randint(1, len(starts))))):
        if rng.random() < (0.08 if name == "piece" else 0.2):
            params[name] = value
    if rng.random() < 0.6:
        first = min(s.at for s in scans) - timedelta(hours=2)
        span = (max(s.at for s in scans) - first).total_seconds()
        a, b = sorted(first + timedelta(seconds=rng.uniform(0, span + 7200)) for _ in range(2))
        for name, moment in (("from", a), ("to", b)):
            local = moment.replace(tzinfo=UTC).astimezone(zone)
            params[name] = local.strftime("%Y-%m-%d" if rng.random() < 0.3 else "%Y-%m-%dT%H:%M")
        if params["from"] >= params["to"]:
            del params["to"]
    return params


def ranked(groups: dict[str, Tally]) -> list[tuple[str, tuple]]:
    order = sorted(groups.items(), key=lambda item: (-item[1].rejected, -item[1].scans, item[0]))
    return [(name, (t.scans, t.approved, t.rejected)) for name, t in order[:TOP]]


# -- comparing what the pages show ----------------------------------------------------


async def compare_totals(db: Database, settings: Settings, params: dict[str, str], scans: list[Raw],
                         latest: set[int], result: Result) -> None:
    zone, starts = settings.timezone, settings.shifts
    async with db.bulk.transaction(snapshot=True) as cur:
        shown = await totals(cur, read_filter(params, settings).filter)
    want = tally([s for s in scans if wanted(params, zone, starts)(s)], latest)
    result.same(f"totals {params}", (shown.scans, shown.approved, shown.rejected),
                (want.scans, want.approved, want.rejected))


async def compare_export(db: Database, settings: Settings, params: dict[str, str], scans: list[Raw],
                         result: Result) -> None:
    scan_filter = read_filter(params, settings).filter
    rows = [row async for batch in all_rows(db, scan_filter, batch=97) for row in batch]
    test = wanted(params, settings.timezone, settings.shifts)
    result.same(f"export rows {params}", sorted(row[0] for row in rows), [s.id for s in scans if test(s)])


async def compare_report(db: Database, settings: Settings, params: dict[str, str], scans: list[Raw],
                         latest: set[int], result: Result) -> None:
    zone, starts = settings.timezone, settings.shifts
    report = await build(db, read_filter(params, settings).filter)
    test = wanted({k: v for k, v in params.items() if k not in ("from", "to")}, zone, starts)
    inside = [s for s in scans if test(s) and report.start <= s.at < report.end]
    by_day: dict[date, list[Raw]] = defaultdict(list)
    by_shift: dict[tuple[date, int], list[Raw]] = defaultdict(list)
    by_order: dict[str, list[Raw]] = defaultdict(list)
    by_operator: dict[str, list[Raw]] = defaultdict(list)
    for scan in inside:
        day, index = shift_of(scan.at, zone, starts)
        by_day[day].append(scan)
        by_shift[day, index].append(scan)
        by_order[scan.order].append(scan)
        by_operator[scan.operator].append(scan)
    name = f"report {params}"
    for day in sorted(set(report.by_day) | set(by_day)):
        shown = report.by_day.get(day)
        result.same(f"{name} day {day}", None if shown is None else
                    (shown.scans, shown.approved, shown.rejected, dict(+shown.defects)),
                    tally(by_day[day], latest).key() if day in by_day else None)
    for key in sorted(set(report.by_shift) | set(by_shift)):
        shown = report.by_shift.get(key)
        result.same(f"{name} shift {key}", None if shown is None else
                    (shown.scans, shown.approved, shown.rejected, dict(+shown.defects)),
                    tally(by_shift[key], latest).key() if key in by_shift else None)
    total = tally(inside, latest)
    result.same(f"{name} total", (report.total.scans, report.total.approved, report.total.rejected),
                (total.scans, total.approved, total.rejected))
    result.same(f"{name} defects", {code: n for code, _, n in report.by_defect}, dict(+total.defects))
    for label, shown_groups, groups in (("orders", report.by_order, by_order),
                                        ("operators", report.by_operator, by_operator)):
        result.same(f"{name} {label}", [(g, (f.scans, f.approved, f.rejected)) for g, f in shown_groups],
                    ranked({g: tally(rows, latest) for g, rows in groups.items()}))


async def compare_counters(db: Database, settings: Settings, scans: list[Raw], latest: set[int],
                           result: Result) -> None:
    """The stations' order counts, and each operator's counter this shift."""
    async with db.transaction() as cur:
        await cur.execute("SELECT station, order_code, approved, rejected FROM order_counts"
                          " WHERE approved + rejected > 0")
        shown = {(station, order): (a, r) for station, order, a, r in await cur.fetchall()}
    want: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for scan in scans:
        if scan.id in latest:
            want[scan.station, scan.order][0 if scan.approved else 1] += 1
    for key in sorted(set(shown) | set(want)):
        result.same(f"order counts {key}", shown.get(key), tuple(want[key]) if key in want else None)
    shifts = Shifts.of_plant(settings)
    start, end = shifts.around(datetime.now(UTC).replace(tzinfo=None))
    for station in ("quality", "fg"):
        for operator in OPERATORS:
            result.same(f"operator counter {station} {operator}",
                        await operator_scans(db, station, operator, (start, end)),
                        sum(1 for s in scans if s.station == station and s.operator == operator
                            and start <= s.at < end))


async def compare_all(db: Database, settings: Settings, rng: random.Random, filters: int, reports: int,
                      exports: int, result: Result, counters: bool = True) -> None:
    """Random filters' totals, reports and exports; and with `counters` (once
    the summariser has had a turn since scans were stored by hand: it sets
    their counters right) the order counts and operator counters."""
    scans = await raw_scans(db)
    latest = latest_ids(scans)
    zone, starts = settings.timezone, settings.shifts
    for _ in range(filters):
        await compare_totals(db, settings, random_filter(rng, scans, zone, starts), scans, latest, result)
    for n in range(reports):
        params = {} if n == 0 else random_filter(rng, scans, zone, starts)
        if "from" in params and "to" not in params:
            del params["from"]
        await compare_report(db, settings, params, scans, latest, result)
    for _ in range(exports):
        await compare_export(db, settings, random_filter(rng, scans, zone, starts), scans, result)
    if counters:
        await compare_counters(db, settings, scans, latest, result)


# -- how the scans arrive ---------------------------------------------------------------


def raw_row(rng: random.Random, piece: str, at: datetime, user: int) -> tuple:
    defect = rng.choice(DEFECTS)
    checkers = rng.sample(CHECKERS, 2) if rng.random() < 0.8 else [CHECKERS[0]] * 2
    return ("quality" if piece[-1] in "01234567" else "fg", secrets.token_bytes(16), rng.choice(OPERATORS),
            piece, piece[:10], *checkers, defect, defect == "000", False, at, user)


_INSERT = ("INSERT INTO scans (station, submission_id, operator_code, piece_code, order_code, checker1_code,"
           " checker2_code, defect_code, approved, is_rescan, created_at, created_by)"
           " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")


def piece_codes(count: int) -> list[str]:
    return [f"CP{10_000_000 + n // 40:08d}-{n % 40:04d}" for n in range(count)]


async def saves(pools: list[Database], rng: random.Random, pieces: list[str], count: int,
                shifts: Shifts) -> None:
    """Saves through every pool at once, several of the same piece at a time
    with different verdicts."""
    async def save(n: int) -> None:
        piece = pieces[n // 4 % len(pieces)]
        defect = DEFECTS[(n * 7 + rng.randrange(6)) % len(DEFECTS)]
        scan = ScanInput(secrets.token_bytes(16), rng.choice(OPERATORS), piece, piece[:10],
                         CHECKERS[n % 3], CHECKERS[(n + 1) % 3], defect)
        station = "quality" if piece[-1] in "01234567" else "fg"
        await save_scan(pools[n % len(pools)], station, scan, 1, shifts)

    for first in range(0, count, 32):
        await asyncio.gather(*(save(n) for n in range(first, min(count, first + 32))))


async def scenario(url: DatabaseURL, scans: int, filters: int, reports: int, exports: int,
                   seed: int = 1) -> Result:
    """Fill an empty migrated database as the module's docstring says, and compare twice."""
    rng = random.Random(seed)
    result = Result()
    pools = [Database(url.connect_kwargs(), minsize=0, maxsize=8, timeout=30, query_timeout=120)
             for _ in range(2)]
    db = pools[0]
    try:
        with contextlib.suppress(AccountError):
            await create_user(db, "worker", "worker-password-1", "operator")
        base = Settings(database_url=url, secret_key="figures-check-secret-0123456789")
        plant = replace(base, timezone=BUCHAREST[0], shifts=BUCHAREST[1])
        shifts = Shifts.of_plant(plant)
        now = datetime.now(UTC).replace(tzinfo=None)
        pieces = piece_codes(max(8, scans // 5))
        # History by hand, nine days of it, re-scans flagged as first scans.
        history = [raw_row(rng, rng.choice(pieces), now - timedelta(days=9) * rng.random(), 1)
                   for _ in range(scans // 2)]
        async with db.transaction() as cur:
            await cur.executemany(_INSERT, sorted(history, key=lambda row: row[10]))
        await summarise_all(db, shifts)
        # A transaction holding inserted scans open while saves arrive and the summariser runs.
        late = await asyncmy.connect(**url.connect_kwargs())
        try:
            async with late.cursor() as cur:
                await cur.execute("BEGIN")
                await cur.executemany(_INSERT, [
                    raw_row(rng, rng.choice(pieces), now - timedelta(hours=30 + n), 1) for n in range(30)])
            await saves(pools, rng, pieces, scans // 2, shifts)
            while await summarise_once(db, shifts):
                pass
            await late.commit()
        finally:
            late.close()
        async with db.transaction() as cur:  # and a scan dated tomorrow
            await cur.execute(_INSERT, raw_row(rng, pieces[0], now + timedelta(days=1), 1))
        await follow_layout(db, shifts)  # as the app's start does
        await compare_all(db, plant, rng, filters // 2, reports // 2, exports // 2, result, counters=False)
        await summarise_all(db, shifts)
        await compare_all(db, plant, rng, filters // 4, reports // 4, exports // 4, result)
        # "Restarted" with a half-hour zone and other shifts; a few saves under them.
        moved = replace(base, timezone=KOLKATA[0], shifts=KOLKATA[1])
        await follow_layout(db, Shifts.of_plant(moved))
        await saves(pools, rng, pieces, 40, Shifts.of_plant(moved))
        await summarise_all(db, Shifts.of_plant(moved))
        await compare_all(db, moved, rng, filters - filters // 2 - filters // 4, reports - reports // 2
                          - reports // 4, exports - exports // 2 - exports // 4, result)
    finally:
        for pool in pools:
            await pool.close()
    return result


async def _prepared(url: DatabaseURL) -> None:
    db = Database(url.connect_kwargs(), minsize=0, maxsize=2, query_timeout=600)
    try:
        await migrate(db)
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=600)
    parser.add_argument("--filters", type=int, default=300)
    parser.add_argument("--reports", type=int, default=40)
    parser.add_argument("--exports", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", help="an empty database (default: a private MariaDB, then stopped)")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="figures-check-") as data:
        local = None
        if args.database_url:
            url = DatabaseURL.parse(args.database_url)
        else:
            from quality.localdb import LocalMariaDB

            local = LocalMariaDB(Path(data))
            local.ensure_running()
            url = local.url()
        try:
            asyncio.run(_prepared(url))
            result = asyncio.run(scenario(url, args.scans, args.filters, args.reports, args.exports,
                                          args.seed))
        finally:
            if local:
                local.stop()
    for mismatch in result.mismatches:
        print(mismatch)
    print(f"figures compared: {result.compared:,}; mismatches: {len(result.mismatches)};"
          f" {time.monotonic() - started:.0f} s")
    raise SystemExit(1 if result.mismatches else 0)


if __name__ == "__main__":
    main()
