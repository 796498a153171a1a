"""Soak: the old system's failure, replayed. Operators auto-submit scans for a
long time while the database is occasionally cut off; every interval this
prints what would show a leak — connections the server sees, the pool's
figures, the app's memory — and at the end whether every scan was saved once.

    .venv/bin/python bench/soak.py                  # 10 stations, 30 minutes
    .venv/bin/python bench/soak.py --minutes 3 --stations 5

Each station posts a scan every --pace seconds (the old system failed after
20-30 minutes of auto-submits every ~30 s; default here is far faster). Every
--kill-every seconds all the app's connections are KILLed from another
session, as a restart or wait_timeout would. A failed POST is retried with the
same submission id, as the browser does. 127.0.0.1 and a unix socket only;
bounded by --minutes; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import asyncmy.errors
import httpx2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from scan_load import App, prepare, query, scan_form, signed_in  # noqa: E402

from quality.localdb import LocalMariaDB  # noqa: E402
from quality.settings import DatabaseURL  # noqa: E402

UNKNOWN_THREAD = 1094


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status)[1]) / 1024


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found[1]) if found else 0.0


async def main(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="qsoak-", dir="/tmp"))
    server = LocalMariaDB(base)
    server.ensure_running()
    url = server.url()
    admin = server.url(maintenance=True, database="mysql")
    try:
        await prepare(url, 0)
        app = App(url, args.pool_max)
        await app.wait_ready()
        try:
            await soak(app, url, admin, args)
        finally:
            app.stop()
    finally:
        server.release()
        shutil.rmtree(base, ignore_errors=True)


async def soak(app: App, url: DatabaseURL, admin: DatabaseURL, args: argparse.Namespace) -> None:
    sessions = [await signed_in(app.base) for _ in range(args.stations)]
    sent: set[str] = set()
    retries = 0
    deadline = time.monotonic() + args.minutes * 60
    peak = 0

    async def station(index: int, http: httpx2.AsyncClient, csrf: str) -> None:
        nonlocal retries
        n = 0
        while time.monotonic() < deadline:
            form = scan_form(n, index)
            while True:  # the browser's queue: same submission id until answered
                try:
                    answer = await http.post("/scan", data=form, headers={
                        "HX-Request": "true", "X-CSRF-Token": csrf})
                    if answer.status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                retries += 1
                await asyncio.sleep(1.0)
            sent.add(form["submission_id"])
            n += 1
            await asyncio.sleep(args.pace)

    async def killer() -> None:
        while time.monotonic() < deadline - args.kill_every:
            await asyncio.sleep(args.kill_every)
            rows = await query(admin, "SELECT ID FROM information_schema.PROCESSLIST"
                                      f" WHERE DB = '{url.database}'")
            killed = 0
            for (connection_id,) in rows:
                try:
                    await query(admin, f"KILL {connection_id}")
                    killed += 1
                except asyncmy.errors.OperationalError as exc:
                    if exc.args[0] != UNKNOWN_THREAD:  # closed by the pool meanwhile
                        raise
            print(f"  killed {killed} app connections")

    async def report() -> None:
        nonlocal peak
        started = time.monotonic()
        async with httpx2.AsyncClient(base_url=app.base) as http:
            while time.monotonic() < deadline:
                await asyncio.sleep(min(args.report_every, max(0.1, deadline - time.monotonic())))
                (count,) = (await query(
                    admin, "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                           f" WHERE DB = '{url.database}'"))[0]
                peak = max(peak, count)
                text = (await http.get("/metrics")).text
                print(f"{(time.monotonic() - started) / 60:5.1f} min: {len(sent):6d} scans, "
                      f"server sees {count:2d} connections, pool size "
                      f"{metric(text, 'quality_db_pool_size'):.0f} in use "
                      f"{metric(text, 'quality_db_pool_in_use'):.0f} waiting "
                      f"{metric(text, 'quality_db_pool_waiting'):.0f}, discarded "
                      f"{metric(text, 'quality_db_pool_discarded_total'):.0f}, timeouts "
                      f"{metric(text, 'quality_db_pool_timeouts_total'):.0f}, "
                      f"app RSS {rss_mib(app.process.pid):.0f} MiB, retries {retries}")

    print(f"{args.stations} stations, a scan every {args.pace:g} s each, "
          f"{args.minutes:g} minutes, pool max {args.pool_max}, "
          f"all app connections killed every {args.kill_every:g} s")
    await asyncio.gather(*(station(i, h, c) for i, (h, c) in enumerate(sessions)),
                         killer(), report())
    for http, _ in sessions:
        await http.aclose()
    (saved,) = (await query(url, "SELECT COUNT(*) FROM scans"))[0]
    (distinct,) = (await query(url, "SELECT COUNT(DISTINCT submission_id) FROM scans"))[0]
    print(f"\nconfirmed to clients: {len(sent)}, rows saved: {saved}, distinct submissions: "
          f"{distinct}, peak server-side connections: {peak} (pool max {args.pool_max})")
    print("lost: " + str(len(sent) - distinct) + ", doubled: " + str(saved - distinct))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--stations", type=int, default=10)
    parser.add_argument("--pace", type=float, default=0.5, help="seconds between a station's scans")
    parser.add_argument("--pool-max", type=int, default=5)
    parser.add_argument("--kill-every", type=float, default=60.0)
    parser.add_argument("--report-every", type=float, default=30.0)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
