"""Supervisors' reads with and without a read replica, and with one that lags.

    .venv/bin/python bench/replica_reads.py             # 8 readers, 12 s per phase, 50,000 scans

Starts the suite's primary and GTID replica on loopback (tests/cluster.py
`ReplicaPair`), fills the primary with scans (they replicate), and runs one
`quality serve` per phase while N supervisors read back to back what a
replica may serve: the list's second page, its totals and the report (14
days). Phases: the app on the primary alone; the same app with
QUALITY_REPLICA_URL; and with the replica's SQL thread stopped while a
station writes on the primary (QUALITY_REPLICA_MAX_LAG=2), so the replica
falls behind and reads go back to the primary. For each: reads/s, median and
p99, the primary's and the replica's mariadbd CPU per 100 reads (from
/proc), reads the replica served and fallbacks to the primary (the app's
/metrics). Everything shares the machine's cores: compare the phases.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from scan_load import PASSWORD, App, cpu_seconds, prepare, scan_form, signed_in  # noqa: E402

from quality.accounts import create_user  # noqa: E402
from quality.db import Database  # noqa: E402
from tests.cluster import AppDatabase, ReplicaPair  # noqa: E402

TOKEN = "bench-metrics-token"
READS = ("second page", "totals", "report")


async def _supervisor(url: Any) -> None:
    db = Database(url.connect_kwargs(), minsize=0, maxsize=1)
    try:
        await create_user(db, "supervisor", PASSWORD, "admin")
    finally:
        await db.close()


async def _reader(base: str) -> httpx2.AsyncClient:
    http, _ = await signed_in(base, "supervisor")
    await asyncio.sleep(1.5)  # signing in is a write: its reads go to the primary for a moment
    return http


async def _second_page(http: httpx2.AsyncClient) -> str:
    first = (await http.get("/scans")).text
    return re.search(r'rel="next" href="([^"]+)"', first)[1].replace("&amp;", "&")


async def _figures(base: str) -> Counter[str]:
    async with httpx2.AsyncClient(base_url=base) as http:
        text = (await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).text
    found: Counter[str] = Counter()
    for name, reason, value in re.findall(
            r'^quality_db_replica_(reads|fallbacks)_total(?:\{reason="(\w+)"\})? (\S+)$', text, re.M):
        found[reason or name] += int(float(value))
    return found


async def load(app: App, readers: int, seconds: float, pair: ReplicaPair,
               writer: Any = None) -> dict[str, Any]:
    clients = [await _reader(app.base) for _ in range(readers)]
    urls = {"second page": await _second_page(clients[0]), "totals": "/scans/totals", "report": "/reports"}
    latencies: list[float] = []
    answers: Counter[int] = Counter()
    before = await _figures(app.base)
    cpu = [cpu_seconds(server._pid()) for server in (pair.primary, pair.replica)]
    deadline = time.monotonic() + seconds
    started = time.monotonic()

    async def read(index: int, http: httpx2.AsyncClient) -> None:
        n = index
        while time.monotonic() < deadline:
            began = time.perf_counter()
            answer = await http.get(urls[READS[n % len(READS)]])
            latencies.append(time.perf_counter() - began)
            answers[answer.status_code] += 1
            n += 1

    tasks = [read(i, http) for i, http in enumerate(clients)]
    if writer is not None:
        tasks.append(writer(deadline))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    used = [cpu_seconds(server._pid()) - then for server, then in zip((pair.primary, pair.replica), cpu,
                                                                       strict=True)]
    after = await _figures(app.base)
    for http in clients:
        await http.aclose()
    latencies.sort()
    count = len(latencies)
    return {
        "per_second": count / elapsed, "median_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[max(0, int(count * 0.99) - 1)],
        "primary_cpu": 100 * used[0] / count, "replica_cpu": 100 * used[1] / count,
        "not_200": {key: value for key, value in answers.items() if key != 200},
        "served": {key: after[key] - before[key] for key in after if after[key] != before[key]},
    }


async def phase(name: str, app_db: AppDatabase, pair: ReplicaPair, args: argparse.Namespace,
                settings: dict[str, str], writer: Any = None) -> None:
    app = App(app_db.url(pair.primary.port), 20, {"QUALITY_METRICS_TOKEN": TOKEN, **settings})
    try:
        await app.wait_ready()
        result = await load(app, args.readers, args.seconds, pair, writer)
    finally:
        app.stop()
    print(f"{name:<38} {result['per_second']:6.1f} reads/s  median {result['median_ms']:6.1f} ms"
          f"  p99 {result['p99_ms']:7.1f} ms  CPU per 100 reads: primary {result['primary_cpu']:.2f} s,"
          f" replica {result['replica_cpu']:.2f} s  served: {result['served'] or 'primary only'}"
          f"  not 200: {result['not_200'] or 'none'}", flush=True)


async def main(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="qrb-", dir="/tmp"))
    pair = ReplicaPair(base)
    try:
        await asyncio.to_thread(pair.start)
        with pair.app_database() as app_db:
            primary = app_db.url(pair.primary.port)
            pair.primary.query("SET GLOBAL log_bin_trust_function_creators = 1")
            await prepare(primary, args.scans, 0)
            await _supervisor(primary)
            await asyncio.to_thread(pair.wait_caught_up, 120.0)
            print(f"{args.readers} readers, {args.seconds:g} s per phase, {args.scans:,} scans;"
                  f" reads: {', '.join(READS)} in turn", flush=True)
            replica = {"QUALITY_REPLICA_URL": app_db.url(pair.replica.port).as_url()}
            await phase("primary only", app_db, pair, args, {})
            await phase("with the replica", app_db, pair, args, replica)

            station, station_csrf = None, ""

            async def writer(deadline: float) -> None:
                # A station scanning on the primary while the replica applies nothing.
                nonlocal station, station_csrf
                n = 0
                while time.monotonic() < deadline:
                    await station.post("/scan", data=scan_form(n, 99),
                                       headers={"HX-Request": "true", "X-CSRF-Token": station_csrf})
                    n += 1
                    await asyncio.sleep(0.2)

            lagging = App(primary, 5)
            try:
                await lagging.wait_ready()
                station, station_csrf = await signed_in(lagging.base)
                pair.replica.query("STOP SLAVE SQL_THREAD")
                try:
                    await phase("replica lagging (SQL thread stopped)", app_db, pair, args,
                                {**replica, "QUALITY_REPLICA_MAX_LAG": "2"}, writer)
                finally:
                    pair.replica.query("START SLAVE SQL_THREAD")
                    await station.aclose()
            finally:
                lagging.stop()
    finally:
        pair.stop()
        shutil.rmtree(base, ignore_errors=True)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--scans", type=int, default=50_000)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
