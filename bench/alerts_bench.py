"""App CPU per scan of evaluating the alert rules (quality/alerts/engine.py):
what every saved scan costs the process that saves it, and every other
process through its scan watcher. In process, no server, no database: the
rules' windows are the engine's own, fed the way the watcher feeds them.

The scans never cross a rule's threshold here (each rule asks for more than
the stream ever gives), so every scan runs the whole evaluation, including
the breach check, and none starts the firing transaction: that one runs
once per breach, beside the save, and is database work.

    .venv/bin/python bench/alerts_bench.py [--scans 200000] [--rules 10]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from quality.alerts.engine import AlertBoard, AlertEngine, Channels
from quality.alerts.rules import RATE, REPEATED, Rule
from quality.alerts.windows import window_for
from quality.scans.store import Saved, ScanRow
from quality.shifts import Shifts

ORDERS = [f"CP{number:08d}" for number in range(12340, 12360)]
DEFECTS = ["000"] * 17 + ["101", "102", "104"]


def rules(count: int) -> list[Rule]:
    """A plant's mix: rates per station and per order, runs of one defect or any."""
    made = []
    for number in range(count):
        station = ("quality", "fg", None)[number % 3]
        order = None if station else ORDERS[number % len(ORDERS)]
        if number % 2 == 0:
            made.append(Rule(number + 1, RATE, station, order, None, Decimal("99.5"), 20 + number * 5,
                             False, (), "en"))
        else:
            made.append(Rule(number + 1, REPEATED, station, order, None if number % 4 == 1 else "104",
                             None, 1000, False, (), "en"))
    return made


def scans(count: int) -> list[Saved]:
    rng = random.Random(7)
    at = datetime(2026, 12, 4, 10)
    return [
        Saved(ScanRow(number, rng.choice(("quality", "fg")), at, "OP07", f"{order}-{number:04d}", order,
                      "OC12", "OC13", defect, "", "", defect == "000", False), 0, 0)
        for number in range(1, count + 1)
        for order, defect in [(rng.choice(ORDERS), rng.choice(DEFECTS))]
    ]


async def measure(scan_count: int, rule_count: int, repeat: int) -> None:
    shifts = Shifts((360, 840, 1320), ZoneInfo("Europe/Bucharest"))
    engine = AlertEngine(None, AlertBoard(), Channels(webhook=False, email=False),  # type: ignore[arg-type]
                         shifts)
    engine._windows = [window_for(rule, shifts) for rule in rules(rule_count)]
    stream = scans(scan_count)
    best = float("inf")
    for _ in range(repeat):
        began = time.process_time()
        for item in stream:  # one at a time, as each save hands its scan to the watcher
            engine.observe((item,), own=True)
        best = min(best, time.process_time() - began)
    assert not engine._work, "a rule fired: the bench measures evaluation only"
    print(f"alert rules: {rule_count}, scans: {scan_count:,}, best of {repeat}")
    print(f"app CPU per scan evaluating every rule: {best / scan_count * 1e6:.2f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=200_000)
    parser.add_argument("--rules", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for count in sorted({1, args.rules, args.rules * 5}):
        asyncio.run(measure(args.scans, count, args.repeat))


if __name__ == "__main__":
    main()
