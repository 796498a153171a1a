"""Sign-outs through two Galera nodes at once: how often they lose certification.

    .venv/bin/python bench/cluster_revocations.py           # 30 per node, 5 rounds

Every sign-out (and every change to a user or a role) bumps the revocation
counter in the same transaction, through a trigger. Starts the suite's 3-node
Galera cluster on loopback (tests/cluster.py: needs `scripts/setup --test`)
and, in a scratch database, runs N transactions through each of two nodes at
once, each deleting a row of its own and bumping the counter, as a sign-out
does, with the app's own retry policy (`Database.run`: up to `RUN_TRIES`
tries, then a 503). Two layouts of the counter: one row that every server
bumps (migration 0006) and a row per server (0019, `CONCAT(@@hostname, ':',
@@port)`, as its triggers write it). For each: transactions, how many went
through at the first try, reruns, the most tries one needed, and how many
gave up (a 503 for the user).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quality.db import Contended, Cursor, Database  # noqa: E402
from tests.cluster import AppDatabase, Galera, open_connections  # noqa: E402

LAYOUTS = {
    "one row (0006)": "1",
    "a row per server (0019)": "CONCAT(@@hostname, ':', @@port)",
}


async def sign_out(cur: Cursor, item: int, row: str, tries: Counter[int]) -> None:
    tries[item] += 1
    await cur.execute("DELETE FROM items WHERE id = %s", (item,))
    await cur.execute(f"INSERT INTO counter (server, version) VALUES ({row}, 1)"
                      " ON DUPLICATE KEY UPDATE version = version + 1")


async def one_round(dbs: list[Database], row: str, per_node: int) -> tuple[Counter[int], int]:
    """Each sign-out's tries, and how many gave up."""
    count = len(dbs) * per_node
    async with dbs[0].transaction() as cur:
        await cur.execute("DELETE FROM items")
        await cur.execute("INSERT INTO items (id) VALUES " + ", ".join(f"({n})" for n in range(count)))
    await asyncio.sleep(1)  # applied on every node before the round starts
    tries: Counter[int] = Counter()
    answers = await asyncio.gather(
        *(dbs[n % len(dbs)].run(sign_out, n, row, tries) for n in range(count)), return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException) and not isinstance(answer, Contended):
            raise answer
    return tries, sum(isinstance(answer, Contended) for answer in answers)


async def figures(dbs: list[Database], row: str, per_node: int, rounds: int) -> dict[str, int]:
    done: Counter[str] = Counter()
    most = 0
    for _ in range(rounds):
        tries, gave_up = await one_round(dbs, row, per_node)
        done.update({"transactions": len(tries), "first try": sum(n == 1 for n in tries.values()),
                     "reruns": sum(tries.values()) - len(tries), "gave up (503)": gave_up})
        most = max(most, *tries.values())
    return {**done, "most tries": most}


async def main(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="qcr-", dir="/tmp"))
    cluster = Galera(base / "galera")
    try:
        cluster.start()
        print(f"Galera cluster (3 nodes) started in {cluster.started_in:.1f} s", flush=True)
        with cluster.app_database() as app:
            await run(app, [node.port for node in cluster.nodes[:2]], args)
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


async def run(app: AppDatabase, ports: list[int], args: argparse.Namespace) -> None:
    dbs = [Database(app.url(port).connect_kwargs(), minsize=0, maxsize=args.per_node, timeout=30.0,
                    query_timeout=60.0) for port in ports]
    try:
        async with dbs[0].transaction() as cur:
            await cur.execute("CREATE TABLE items (id INT PRIMARY KEY)")
            await cur.execute("CREATE TABLE counter (server VARCHAR(300) CHARACTER SET ascii PRIMARY KEY,"
                              " version BIGINT UNSIGNED NOT NULL)")
        await asyncio.sleep(1)
        await asyncio.gather(*(open_connections(db, args.per_node) for db in dbs))
        print(f"{args.per_node} sign-outs through each of 2 nodes at once, {args.rounds} rounds")
        for name, row in LAYOUTS.items():
            measured = await figures(dbs, row, args.per_node, args.rounds)
            print(f"  {name:24}" + "  ".join(f"{key} {value:,}" for key, value in measured.items()),
                  flush=True)
    finally:
        await asyncio.gather(*(db.close() for db in dbs))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-node", type=int, default=30, help="sign-outs through each node at once")
    parser.add_argument("--rounds", type=int, default=5)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
