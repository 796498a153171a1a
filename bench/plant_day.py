"""A plant's day on one app process: stations scanning at a working pace, live
lists open, reports every minute, admins browsing, and then four exports of
the whole (large) table at once; scan latency without and with the exports,
in the same run.

    .venv/bin/python bench/plant_day.py                      # 100,000 demo scans, 30 s without and 30 s with
    .venv/bin/python bench/plant_day.py --scans 1000000 --data-dir /tmp/plantday   # a million, kept
    .venv/bin/python bench/plant_day.py --minute 20          # a report's "minute" scaled down to 20 s

Throughout: `--stations` operators each saving a scan every `--scan-every`
seconds (give or take a third), `--lists` live scan lists (server-sent event
streams) open, `--reporters` supervisors each opening /reports and the list's
totals once a `--minute`, `--admins` administrators opening an admin page or
the list every few seconds, and /healthz asked every 0.25 s. After a warm-up,
quiet windows and export windows take turns (`--rounds` of each, `--seconds`
of each kind in all); in an export window a separate process keeps
`--exports` exports of every row running (CSV and XLSX, one per supervisor,
each started again a second after it ends), reading them as fast as it can.

Printed: scan POST median and p99 without and with the exports and their
ratio, /healthz's slowest answer, the app's resident memory before the first
exports, at their peak and a few seconds after the last, and every error (any
answer but the expected one).
Demo data comes from `quality demo-data`'s own code (`--data-dir` reuses a
local database filled before). Everything runs on 127.0.0.1 / a unix socket,
is bounded by `--seconds`, and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from lists_bench import prepare, rss_kib, shifts_summarised  # noqa: E402
from scan_load import PASSWORD, App, scan_form, signed_in  # noqa: E402

from quality.accounts import AccountError, create_user  # noqa: E402
from quality.db import Database  # noqa: E402
from quality.http.slots import STREAMS_PER_USER  # noqa: E402
from quality.localdb import LocalMariaDB  # noqa: E402
from quality.settings import DatabaseURL  # noqa: E402

WARM_UP_SECONDS = 3.0
SETTLE_SECONDS = 3.0  # after the exports, before memory is read again
HEALTH_EVERY = 0.25
ADMIN_PAGES = ("/admin/users", "/admin/defects", "/admin/audit", "/admin/roles", "/scans")


@dataclass
class Day:
    """What the clients saw, per phase (warm-up, quiet, exports, after)."""

    phase: str = "warm-up"
    scans: dict[str, list[float]] = field(default_factory=dict)
    health: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    rss_peak: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def scan(self, seconds: float) -> None:
        self.scans.setdefault(self.phase, []).append(seconds)

    def healthz(self, seconds: float) -> None:
        self.health.setdefault(self.phase, []).append(seconds)

    def error(self, kind: str, what: object) -> None:
        self.errors[kind] += 1
        if self.errors[kind] <= 3:
            print(f"  error ({self.phase}): {kind}: {what}", flush=True)


def users(args: argparse.Namespace) -> dict[str, list[str]]:
    """Account names by what they do; roles: operator, supervisor, admin."""
    return {
        "operator": [f"station{n:02d}" for n in range(args.stations)],
        "viewer": [f"viewer{n}" for n in range(-(-args.lists // STREAMS_PER_USER))],
        "reporter": [f"reporter{n}" for n in range(args.reporters)],
        "admin": [f"admin{n}" for n in range(args.admins)],
        "exporter": [f"exporter{n}" for n in range(args.exports)],
    }


ROLES = {"operator": "operator", "viewer": "supervisor", "reporter": "supervisor", "admin": "admin",
         "exporter": "supervisor"}


async def add_users(url: DatabaseURL, args: argparse.Namespace) -> None:
    db = Database(url.connect_kwargs(), minsize=0, maxsize=1)
    try:
        for kind, names in users(args).items():
            for name in names:
                with contextlib.suppress(AccountError):  # a reused database has them already
                    await create_user(db, name, PASSWORD, ROLES[kind])
    finally:
        await db.close()


# -- the floor -------------------------------------------------------------------------


async def signed_in_one_by_one(base: str, names: list[str]) -> list[tuple[httpx2.AsyncClient, str]]:
    """Sessions for these users, signed in one after another: sign-ins in flight
    at once from one address count as attempts until checked (the throttle)."""
    return [await signed_in(base, name) for name in names]


async def station(day: Day, session: tuple[httpx2.AsyncClient, str], index: int, every: float) -> None:
    http, csrf = session
    n = 0
    try:
        await asyncio.sleep(random.uniform(0, every))  # stations don't start in step
        while not day.stop.is_set():
            started = time.perf_counter()
            try:
                answer = await http.post("/scan", data=scan_form(n, index),
                                         headers={"HX-Request": "true", "X-CSRF-Token": csrf})
                if answer.status_code != 200:
                    day.error("scan", answer.status_code)
            except httpx2.HTTPError as exc:
                day.error("scan", exc)
            day.scan(time.perf_counter() - started)
            n += 1
            await asyncio.sleep(random.uniform(every * 2 / 3, every * 4 / 3))
    finally:
        await http.aclose()


async def live_list(day: Day, base: str, viewer: httpx2.AsyncClient) -> None:
    """One open scan list: its stream (on a connection of its own, as a browser
    tab's), reopened if it ends as streams do."""
    while not day.stop.is_set():
        try:
            async with httpx2.AsyncClient(base_url=base, cookies=viewer.cookies, timeout=None) as http, \
                    http.stream("GET", "/scans/stream") as stream:
                if stream.status_code != 200:
                    day.error("list stream", stream.status_code)
                    await asyncio.sleep(1)
                    continue
                async for _ in stream.aiter_lines():
                    if day.stop.is_set():
                        return
        except httpx2.HTTPError as exc:
            if not day.stop.is_set():
                day.error("list stream", exc)


async def reporter(day: Day, http: httpx2.AsyncClient, minute: float, offset: float) -> None:
    try:
        await asyncio.sleep(offset)
        while not day.stop.is_set():
            for address in ("/reports", "/scans/totals"):
                try:
                    answer = await http.get(address, timeout=60)
                    if answer.status_code != 200:
                        day.error(address, answer.status_code)
                except httpx2.HTTPError as exc:
                    day.error(address, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(day.stop.wait(), minute)
    finally:
        await http.aclose()


async def admin(day: Day, http: httpx2.AsyncClient) -> None:
    try:
        while not day.stop.is_set():
            address = random.choice(ADMIN_PAGES)
            try:
                answer = await http.get(address)
                if answer.status_code != 200:
                    day.error(address, answer.status_code)
            except httpx2.HTTPError as exc:
                day.error(address, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(day.stop.wait(), random.uniform(2, 6))
    finally:
        await http.aclose()


async def health(day: Day, base: str) -> None:
    async with httpx2.AsyncClient(base_url=base, timeout=10) as http:
        while not day.stop.is_set():
            started = time.perf_counter()
            try:
                answer = await http.get("/healthz")
                if answer.status_code != 200:
                    day.error("/healthz", answer.text)
            except httpx2.HTTPError as exc:
                day.error("/healthz", exc)
            day.healthz(time.perf_counter() - started)
            await asyncio.sleep(HEALTH_EVERY)


async def memory(day: Day, pid: int) -> None:
    while not day.stop.is_set():
        if day.phase == "exports":
            day.rss_peak = max(day.rss_peak, rss_kib(pid))
        await asyncio.sleep(0.1)


# -- the exports (their own process: downloading is not the floor's CPU) ------------------


async def export_worker(base: str, names: list[str], seconds: float) -> dict[str, int]:
    """Keep one export per name running for `seconds`, reading every byte; then hang up."""
    deadline = time.monotonic() + seconds
    result: Counter[str] = Counter()

    async def exporter(index: int, http: httpx2.AsyncClient) -> None:
        cookie = "; ".join(f"{key}={value}" for key, value in http.cookies.items())
        await http.aclose()
        path = "/scans/export.csv" if index % 2 == 0 else "/scans/export.xlsx"
        while time.monotonic() < deadline:
            reader, writer = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
                             "Connection: close\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                if status != 200:
                    result[f"status {status}"] += 1
                    await asyncio.sleep(1)
                    continue
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    while chunk := await reader.read(1 << 20):
                        result["bytes"] += len(chunk)
                result["finished"] += 1
            except TimeoutError:
                result["unfinished at the end"] += 1
            finally:
                writer.close()
            await asyncio.sleep(1)  # a person clicks again

    sessions = await signed_in_one_by_one(base, names)
    await asyncio.gather(*(exporter(n, http) for n, (http, _) in enumerate(sessions)))
    return dict(result)


async def exports_phase(base: str, names: list[str], seconds: float) -> dict[str, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--export-worker", base, ",".join(names), str(seconds),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    return json.loads(out)


# -- orchestration -----------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def run_day(app: App, args: argparse.Namespace) -> dict:
    day = Day()
    base = app.base
    pid = app.process.pid
    people = users(args)
    sessions = {kind: await signed_in_one_by_one(base, people[kind])
                for kind in ("operator", "viewer", "reporter", "admin")}
    stagger = args.minute / max(1, args.reporters)  # reports spread over the minute
    tasks = [
        *(asyncio.create_task(station(day, session, n, args.scan_every))
          for n, session in enumerate(sessions["operator"])),
        *(asyncio.create_task(live_list(day, base, sessions["viewer"][n // STREAMS_PER_USER][0]))
          for n in range(args.lists)),
        *(asyncio.create_task(reporter(day, http, args.minute, n * stagger))
          for n, (http, _) in enumerate(sessions["reporter"])),
        *(asyncio.create_task(admin(day, http)) for http, _ in sessions["admin"]),
        asyncio.create_task(health(day, base)),
        asyncio.create_task(memory(day, pid)),
    ]
    exported: Counter[str] = Counter()
    window = args.seconds / args.rounds
    try:
        await asyncio.sleep(WARM_UP_SECONDS)
        # Quiet and export windows take turns, so a change in the machine's
        # load (it is shared) weighs on both alike.
        for round_ in range(args.rounds):
            day.phase = "quiet"
            await asyncio.sleep(window)
            if round_ == 0:
                rss_before = day.rss_peak = rss_kib(pid)
            day.phase = "exports"
            exported.update(await exports_phase(base, people["exporter"], window))
        day.phase = "after"
        await asyncio.sleep(SETTLE_SECONDS)
        rss_after = rss_kib(pid)
    finally:
        day.stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for http, _ in sessions["viewer"]:
            await http.aclose()
    for kind, count in exported.items():
        if kind.startswith("status"):
            day.errors[f"export {kind}"] += count
    return {"day": day, "exported": exported, "rss": (rss_before, day.rss_peak, rss_after)}


async def main(args: argparse.Namespace) -> None:
    os.environ["QUALITY_TIMEZONE"] = "UTC"  # the app's, as the demo data is made
    base = None
    if args.data_dir:
        server = LocalMariaDB(Path(args.data_dir))
    else:
        base = Path(tempfile.mkdtemp(prefix="qplant-", dir="/tmp"))
        server = LocalMariaDB(base, buffer_pool="512M")
    server.ensure_running()
    try:
        url = server.url()
        await prepare(url, args.scans)
        await add_users(url, args)
        app = App(url, args.pool_max)
        await app.wait_ready()
        try:
            await shifts_summarised(url)
            result = await run_day(app, args)
        finally:
            app.stop()
    finally:
        server.release()
        if base:
            shutil.rmtree(base, ignore_errors=True)
    report(args, result)


def report(args: argparse.Namespace, result: dict) -> None:
    day: Day = result["day"]
    print(f"\nmachine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f};"
          f" {args.scans:,} scans stored;"
          f" {args.stations} stations (a scan every {args.scan_every:g} s each), {args.lists} live lists,"
          f" {args.reporters} supervisors each opening /reports every {args.minute:g} s, {args.admins} admins"
          f" browsing; {args.seconds:g} s without exports and {args.seconds:g} s with,"
          f" in {args.rounds} turns; pool max {args.pool_max}")
    figures = {}
    for phase, label in (("quiet", "without exports"), ("exports", f"with {args.exports} exports")):
        scans = day.scans.get(phase, [])
        health = day.health.get(phase, [0.0])
        figures[phase] = (1000 * statistics.median(scans), 1000 * percentile(scans, 0.99))
        print(f"{label:18}: {len(scans):5,} scans, POST median {figures[phase][0]:6.1f} ms,"
              f" p99 {figures[phase][1]:6.1f} ms; /healthz slowest {1000 * max(health):6.1f} ms")
    print(f"ratio: scan p99 with exports / without = {figures['exports'][1] / figures['quiet'][1]:.2f}"
          " (goal <= 2)")
    exported = result["exported"]
    print(f"exports: {exported.get('finished', 0)} finished, {exported.get('unfinished at the end', 0)} still"
          f" running at the end, {exported.get('bytes', 0) / 2**20:,.0f} MiB read")
    before, peak, after = (kib / 1024 for kib in result["rss"])
    print(f"app resident memory: {before:.0f} MiB before the first exports, peak {peak:.0f} MiB,"
          f" {after:.0f} MiB {SETTLE_SECONDS:g} s after the last")
    slowest = max(max(values) for values in day.health.values())
    print(f"/healthz slowest answer in the whole run: {1000 * slowest:.1f} ms (goal < 1000)")
    details = ", ".join(f"{kind} {count}" for kind, count in sorted(day.errors.items()))
    print(f"errors: {sum(day.errors.values())}" + (f" ({details})" if details else ""))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=100_000, help="scans stored (demo data); 1000000 for a"
                        " million (about 5 minutes to fill once: use --data-dir)")
    parser.add_argument("--data-dir", help="reuse this local MariaDB data directory (filled once)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="seconds without exports, and as many with them")
    parser.add_argument("--rounds", type=int, default=3, help="turns of quiet and export windows")
    parser.add_argument("--stations", type=int, default=50)
    parser.add_argument("--scan-every", type=float, default=3.0, help="seconds between a station's scans")
    parser.add_argument("--lists", type=int, default=20, help="live scan lists open")
    parser.add_argument("--reporters", type=int, default=6)
    parser.add_argument("--minute", type=float, default=60.0, help="seconds between a supervisor's reports")
    parser.add_argument("--admins", type=int, default=2)
    parser.add_argument("--exports", type=int, default=4)
    parser.add_argument("--pool-max", type=int, default=20)
    parser.add_argument("--export-worker", nargs=3, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if arguments.export_worker:
        address, names, seconds = arguments.export_worker
        print(json.dumps(asyncio.run(export_worker(address, names.split(","), float(seconds)))))
    else:
        asyncio.run(main(arguments))
