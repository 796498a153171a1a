"""`quality import` speed: a CSV file of the scan list export's columns (newest
first, as the export writes it; a fifth of the rows re-scans, both stations,
times with the plant's offset) imported into an empty database by the command
itself, then the same file again (every row a duplicate): rows per second.

    .venv/bin/python bench/import_bench.py                 # 100,000 rows
    .venv/bin/python bench/import_bench.py --rows 20000 --batch 500

Starts its own private MariaDB in a temporary directory and stops it after.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quality.clock import to_plant, utc_now  # noqa: E402
from quality.db import Database  # noqa: E402
from quality.localdb import LocalMariaDB  # noqa: E402
from quality.migrate import migrate  # noqa: E402
from quality.scans.csv_columns import COLUMNS  # noqa: E402
from quality.settings import DatabaseURL  # noqa: E402

DEFECTS = ("101", "102", "103", "104", "105", "201", "301")


def write_file(path: Path, rows: int, zone: ZoneInfo, seed: int = 7) -> None:
    """`rows` scans over the last 60 days, newest first; a fifth re-scan a piece scanned before."""
    rng = random.Random(seed)
    end = utc_now() - timedelta(minutes=5)
    step = timedelta(days=60) / rows
    scans = []
    scanned: list[tuple[str, str]] = []
    for n in range(rows):
        at = end - timedelta(days=60) + step * n
        if scanned and rng.random() < 0.2:
            station, piece = scanned[rng.randrange(len(scanned))]
        else:
            station = "quality" if rng.random() < 0.8 else "fg"
            piece = f"CP{10_000_000 + n // 200:08d}-{n % 200 + 1:04d}"
            scanned.append((station, piece))
        defect = "000" if rng.random() < 0.9 else rng.choice(DEFECTS)
        scans.append([to_plant(at, zone).isoformat(timespec="seconds"), station, f"OP{rng.randrange(10, 20)}",
                      piece, piece[:10], "OC01", "OC02", defect, "", "", ""])
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([[str(column) for column in COLUMNS], *reversed(scans)])


async def prepare(url: DatabaseURL) -> None:
    db = Database(url.connect_kwargs(), minsize=0, maxsize=1)
    try:
        await migrate(db)
    finally:
        await db.close()


def timed_import(url: DatabaseURL, path: Path, zone: ZoneInfo, batch: int) -> tuple[float, str]:
    env = {**os.environ, "QUALITY_DATABASE_URL": url.as_url(),
           "QUALITY_SECRET_KEY": "bench-secret-0123456789", "QUALITY_TIMEZONE": zone.key,
           "QUALITY_LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "quality", "import", str(path), "--batch", str(batch)],
                          env=env, capture_output=True, text=True, cwd=ROOT, check=True, timeout=600)
    return time.perf_counter() - started, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the file (100,000)")
    parser.add_argument("--batch", type=int, default=1000, help="quality import --batch (1,000)")
    parser.add_argument("--timezone", default="Europe/Bucharest", help="the plant's zone (Europe/Bucharest)")
    args = parser.parse_args()
    zone = ZoneInfo(args.timezone)
    base = Path(tempfile.mkdtemp(prefix="qimport-", dir="/tmp"))
    server = LocalMariaDB(base, buffer_pool="512M")
    server.ensure_running()
    try:
        url = server.url()
        asyncio.run(prepare(url))
        path = base / "history.csv"
        write_file(path, args.rows, zone)
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f};"
              f" {args.rows:,} rows, --batch {args.batch}, plant zone {zone.key}")
        for label in ("import into an empty database", "the same file again (all duplicates)"):
            seconds, said = timed_import(url, path, zone, args.batch)
            print(f"{label}: {seconds:.1f} s, {args.rows / seconds:,.0f} rows/s\n  {said}")
    finally:
        server.release()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
