"""Supervisors' pages on a million scans: the scan list (first page, each filter,
a page 1,000 pages deep), its totals, the reports for 14 and 90 days, and the
CSV/XLSX exports of every row (time and the app's peak memory).

    .venv/bin/python bench/lists_bench.py                        # 20,000 and 1,000,000 scans
    .venv/bin/python bench/lists_bench.py --data-dir /tmp/lqbench # reuse a filled local database
    .venv/bin/python bench/lists_bench.py --pages /reports --no-exports  # only some pages
    .venv/bin/python bench/lists_bench.py --timezone Europe/Bucharest     # a plant east of UTC

Each page is requested back to back by one client (`--repeat` times after a
warm-up) against `quality serve`, and timed as the client sees it; the same
pages on 20,000 scans give the ratio that shows whether a page's cost grows
with the table. Demo data comes from `quality demo-data`'s own code. Everything
runs on 127.0.0.1 / a unix socket and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scan_load import PASSWORD, SHIFTS, App, query  # noqa: E402

from quality.accounts import AccountError, create_user  # noqa: E402
from quality.db import Database  # noqa: E402
from quality.demo import fill  # noqa: E402
from quality.localdb import LocalMariaDB  # noqa: E402
from quality.migrate import migrate  # noqa: E402
from quality.settings import DatabaseURL, Settings  # noqa: E402
from quality.shifts import Shifts  # noqa: E402
from quality.summary.tables import layout_of  # noqa: E402


async def prepare(url: DatabaseURL, scans: int) -> None:
    """Migrate, add the bench user, and fill with demo scans up to `scans`."""
    db = Database(url.connect_kwargs(), minsize=0, maxsize=2, query_timeout=3600)
    try:
        await migrate(db)
        with contextlib.suppress(AccountError):  # a reused database has it already
            await create_user(db, "bench", PASSWORD, "supervisor")
        async with db.transaction() as cur:
            await cur.execute("SELECT COUNT(*) FROM scans")
            (stored,) = await cur.fetchone() or (0,)
        if stored < scans:
            started = time.monotonic()
            await fill(db, scans - stored, 90, SHIFTS, force=True, seed=1)
            print(f"filled {scans - stored:,} demo scans in {time.monotonic() - started:.0f} s")
    finally:
        await db.close()


async def pages_to_time(url: DatabaseURL) -> dict[str, str]:
    """Addresses of the pages to time, with filters that exist in this database."""
    [(operator, order, piece, checker)] = await query(
        url, "SELECT operator_code, order_code, piece_code, checker1_code FROM scans"
             " WHERE id = (SELECT MAX(id) DIV 2 FROM scans)")
    # 1,000 pages of 50 deep; half-way down a database too small for that.
    [(count,)] = await query(url, "SELECT COUNT(*) FROM scans")
    [(stamp, deep_id)] = await query(
        url, "SELECT DATE_FORMAT(created_at, '%Y%m%d%H%i%s%f'), id FROM scans"
             f" ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET {min(50_000, count // 2)}")
    operators = [code for (code,) in await query(
        url, "SELECT DISTINCT operator_code FROM scans ORDER BY operator_code LIMIT 3")]
    [(day,)] = await query(url, "SELECT DATE(MAX(created_at) - INTERVAL 30 DAY) FROM scans")
    [(last,)] = await query(url, "SELECT DATE(MAX(created_at)) FROM scans")
    filters = {
        "unfiltered": {},
        "station": {"station": "fg"},
        "from/to (one day)": {"from": str(day), "to": str(day)},
        "shift": {"shift": "3"},
        "operator": {"operator": operator},
        "order": {"order": order},
        "piece": {"piece": piece},
        "checker": {"checker": checker},
        "defect": {"defect": "104"},
        "rejected only": {"rejected": "1"},
        "re-scans only": {"rescans": "1"},
        "station+shift+rejected": {"station": "quality", "shift": "1", "rejected": "1"},
        # Prefixes and several values (issue 19).
        "operator prefix": {"operator": operator[:3]},
        "order prefix": {"order": order[:-1]},
        "piece prefix": {"piece": piece[:-2]},
        "3 operators": {"operator": ",".join(operators)},
        "2 defects": {"defect": "101,104"},
        "2 stations": {"station": "quality,fg"},
        "2 defects+operator prefix+rejected": {"defect": "101,104", "operator": operator[:3],
                                               "rejected": "1"},
    }
    pages = {f"/scans {name}": "/scans?" + urlencode(params) for name, params in filters.items()}
    pages["/scans 1,000 pages deep"] = f"/scans?before={stamp}-{deep_id}"
    for group in ("order", "operator", "defect", "shift"):
        pages[f"/scans grouped by {group}"] = f"/scans?group={group}"
        pages[f"/scans grouped by {group}, rejected"] = f"/scans?group={group}&rejected=1"
    pages["/scans grouped by order, page 20"] = "/scans?group=order&page=20"
    pages["/scans grouped by operator, prefix+1 day"] = "/scans?" + urlencode(
        {"group": "operator", "operator": operator[:3], "from": str(day), "to": str(day)})
    pages.update({f"totals {name}": "/scans/totals?" + urlencode(params) for name, params in filters.items()})
    pages["/reports 14 days (default)"] = "/reports"
    ninety = {"from": str(last - timedelta(days=89)), "to": str(last)}
    pages["/reports 90 days"] = "/reports?" + urlencode(ninety)
    return pages


async def signed_in(base: str) -> httpx2.AsyncClient:
    http = httpx2.AsyncClient(base_url=base, timeout=900)
    page = await http.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = await http.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token})
    assert answer.status_code in (200, 303), answer.status_code
    return http


async def time_pages(app: App, pages: dict[str, str], repeat: int) -> dict[str, tuple[float, float]]:
    http = await signed_in(app.base)
    results = {}
    try:
        for name, address in pages.items():
            times = []
            count = repeat if name.startswith(("/scans", "/reports")) else max(repeat // 3, 5)
            for attempt in range(count + 2):
                started = time.perf_counter()
                answer = await http.get(address)
                elapsed = (time.perf_counter() - started) * 1000
                assert answer.status_code == 200, (address, answer.status_code, answer.text[:300])
                if attempt >= 2:  # two warm-ups
                    times.append(elapsed)
            times.sort()
            results[name] = (statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))])
    finally:
        await http.aclose()
    return results


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def time_export(app: App, address: str) -> tuple[float, float, int, float, int]:
    """Seconds to the first byte and in all, bytes, and the app's peak and
    starting resident memory (MiB)."""
    http = await signed_in(app.base)
    pid = app.process.pid
    before = rss_kib(pid)
    peak = before
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kib(pid))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    size = 0
    first_byte = None
    started = time.perf_counter()
    try:
        async with http.stream("GET", address) as answer:
            assert answer.status_code == 200, answer.status_code
            async for chunk in answer.aiter_bytes():
                if first_byte is None:
                    first_byte = time.perf_counter() - started
                size += len(chunk)
    finally:
        done.set()
        await sampler
        await http.aclose()
    return first_byte or 0.0, time.perf_counter() - started, size, peak / 1024, before // 1024


async def shifts_summarised(url: DatabaseURL) -> None:
    """Wait until the app's summariser holds scan_shifts for the plant's shifts
    (another time zone's run a minute before can delay its rebuild)."""
    layout = layout_of(Shifts(Settings.shifts, ZoneInfo(os.environ["QUALITY_TIMEZONE"])))
    for _ in range(120):
        if await query(url, "SELECT layout FROM scan_shift_state") == [(layout,)]:
            return
        await asyncio.sleep(1)
    raise RuntimeError(f"scan_shifts was not built for {layout}")


async def run_on(url: DatabaseURL, scans: int, repeat: int, exports: bool, only: str) -> dict[str, Any]:
    await prepare(url, scans)
    pages = {name: address for name, address in (await pages_to_time(url)).items() if only in name}
    app = App(url, 10)
    await app.wait_ready()
    try:
        await asyncio.sleep(2)  # let the summariser see the newest scans settle
        await shifts_summarised(url)
        timings = await time_pages(app, pages, repeat)
        export_results = {}
        if exports:
            for kind in ("csv", "xlsx"):
                export_results[kind] = await time_export(app, f"/scans/export.{kind}")
        return {"pages": timings, "exports": export_results}
    finally:
        app.stop()


async def main(args: argparse.Namespace) -> None:
    os.environ["QUALITY_TIMEZONE"] = args.timezone  # the app's, and the days its pages ask for
    base = None
    if args.data_dir:
        server = LocalMariaDB(Path(args.data_dir))
    else:
        base = Path(tempfile.mkdtemp(prefix="qlists-", dir="/tmp"))
        server = LocalMariaDB(base, buffer_pool="512M")
    server.ensure_running()
    try:
        big_url = server.url()
        admin = server.url(maintenance=True, database="mysql")
        small_name = big_url.database + "_small"
        await query(admin, f"CREATE DATABASE IF NOT EXISTS `{small_name}`")
        await query(admin, f"GRANT ALL ON `{small_name}`.* TO '{big_url.user}'@'localhost'")
        small_url = DatabaseURL(big_url.user, big_url.password, small_name, big_url.host, big_url.port,
                                big_url.unix_socket)
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f};"
              f" plant time zone {args.timezone}")
        small = await run_on(small_url, args.small, args.repeat, False, args.pages)
        big = await run_on(big_url, args.scans, args.repeat, not args.no_exports, args.pages)
    finally:
        server.release()
        if base:
            shutil.rmtree(base, ignore_errors=True)

    print(f"\n{'page':42} {args.scans:>11,} scans: median / p99 ms   {args.small:,} scans: median   ratio")
    for name, (median, p99) in big["pages"].items():
        small_median = small["pages"][name][0]
        print(f"{name:42} {median:12.1f} / {p99:7.1f}         {small_median:10.1f}"
              f"      {median / small_median:5.2f}")
    for kind, (first_byte, seconds, size, peak, before) in big["exports"].items():
        print(f"export {kind}: {args.scans:,} rows in {seconds:.1f} s (first byte after {first_byte:.2f} s),"
              f" {size / 2**20:.0f} MiB;"
              f" app resident memory {before} MiB before, peak {peak:.0f} MiB")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=20_000, help="the small database, for the ratio")
    parser.add_argument("--repeat", type=int, default=30, help="timed requests per page")
    parser.add_argument("--data-dir", help="reuse this local MariaDB data directory (filled once)")
    parser.add_argument("--pages", default="", help="time only the pages whose names contain this")
    parser.add_argument("--no-exports", action="store_true", help="leave out the exports")
    parser.add_argument("--timezone", default="UTC", help="the plant's time zone (QUALITY_TIMEZONE)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
