"""Scan load through two app hosts against a Galera cluster, beside one server.

    .venv/bin/python bench/cluster_load.py                 # 10 clients, 15 s per phase

Starts, on loopback, a private MariaDB and the suite's 3-node Galera cluster
behind HAProxy (tests/cluster.py: needs `scripts/setup --test`), two
`quality serve` hosts per phase, and N stations posting scans back to back,
each re-sending a submission until it is acknowledged (as the scan page does).
Phases: both hosts on the one server; both through HAProxy (one writer node);
each host on its own node directly; and a failover: through HAProxy, the
writer node SIGKILLed a third of the way in. For each: scans saved per
second, POST latency median and p99, answers other than 200; for the
failover, the time from the kill to the first saved scan. The load generator
shares the machine's cores with everything else: compare phases with each
other, on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
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

from scan_load import App, prepare, scan_form, signed_in  # noqa: E402

from quality.localdb import LocalMariaDB  # noqa: E402
from quality.settings import DatabaseURL  # noqa: E402
from tests.cluster import Galera  # noqa: E402


async def load(hosts: list[App], clients: int, seconds: float,
               kill: Any = None) -> dict[str, Any]:
    """N stations split over the hosts for `seconds`; `kill` (a blocking
    callable) is run a third of the way in."""
    sessions = [await signed_in(hosts[n % len(hosts)].base) for n in range(clients)]
    latencies: list[float] = []
    answers: Counter[int | str] = Counter()
    saved_at: list[tuple[float, float]] = []  # (POST sent, answered) of each saved scan
    started = time.monotonic()
    deadline = started + seconds

    async def station(index: int, http: httpx2.AsyncClient, csrf: str) -> None:
        n = 0
        while time.monotonic() < deadline:
            form = scan_form(n, index)
            while True:  # the same submission until acknowledged
                began, sent_at = time.perf_counter(), time.monotonic()
                try:
                    answer = await http.post("/scan", data=form,
                                             headers={"HX-Request": "true", "X-CSRF-Token": csrf})
                except httpx2.TransportError as exc:
                    answers[type(exc).__name__] += 1
                else:
                    latencies.append(time.perf_counter() - began)
                    answers[answer.status_code] += 1
                    if answer.status_code == 200:
                        saved_at.append((sent_at, time.monotonic()))
                        break
                if time.monotonic() > deadline + 30:
                    return  # a bound: never acknowledged
                await asyncio.sleep(0.1)
            n += 1

    killed_at = None
    tasks = [asyncio.create_task(station(i, http, csrf)) for i, (http, csrf) in enumerate(sessions)]
    if kill is not None:
        await asyncio.sleep(seconds / 3)
        await asyncio.to_thread(kill)
        killed_at = time.monotonic()
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    for http, _ in sessions:
        await http.aclose()
    latencies.sort()
    result = {
        "saved": len(saved_at), "per_second": len(saved_at) / elapsed,
        "median_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
        "not_200": {key: count for key, count in answers.items() if key != 200},
    }
    if killed_at is not None:
        after = sorted(answered for sent, answered in saved_at if sent > killed_at)
        result["first_saved_after_kill_s"] = after[0] - killed_at if after else None
    return result


async def phase(name: str, urls: list[DatabaseURL], clients: int, seconds: float,
                kill: Any = None) -> dict[str, Any]:
    hosts = [App(url, 20) for url in urls]
    try:
        for host in hosts:
            await host.wait_ready()
        await load(hosts, 4, 2)  # warm-up, not reported
        result = await load(hosts, clients, seconds, kill)
    finally:
        for host in hosts:
            host.stop()
    line = (f"{name:<28} {result['per_second']:6.1f} scans/s  median {result['median_ms']:6.1f} ms"
            f"  p99 {result['p99_ms']:7.1f} ms  not 200: {result['not_200'] or 'none'}")
    if "first_saved_after_kill_s" in result:
        line += f"  first saved scan {result['first_saved_after_kill_s']:.1f} s after the kill"
    print(line, flush=True)
    return result


async def main(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="qcb-", dir="/tmp"))
    server = LocalMariaDB(base / "single", buffer_pool="256M")
    cluster = Galera(base / "galera")
    try:
        server.ensure_running()
        await asyncio.to_thread(cluster.start)
        print(f"{args.clients} stations over two hosts, {args.seconds:g} s per phase;"
              f" cluster started in {cluster.started_in:.1f} s", flush=True)
        single = server.url()
        await prepare(single, 0, 0)
        await phase("one server", [single, single], args.clients, args.seconds)

        for name, ports, kill in [
            ("Galera via HAProxy", [cluster.haproxy.port] * 2, None),
            ("Galera node-direct (1, 2)", [cluster.nodes[0].port, cluster.nodes[1].port], None),
            ("Galera failover (HAProxy)", [cluster.haproxy.port] * 2, cluster.writer.kill),
        ]:
            with cluster.app_database() as app:  # a database for the phase, as a DBA makes it
                cluster.set_trust_function_creators(True)
                await prepare(app.url(ports[0]), 0, 0)
                await phase(name, [app.url(port) for port in ports], args.clients, args.seconds, kill)
                if not cluster.writer.is_running():
                    await asyncio.to_thread(cluster.writer.start)  # back, to drop the database
    finally:
        cluster.stop()
        server.release()
        shutil.rmtree(base, ignore_errors=True)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=15.0)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
