"""Alerts (issue 20): app CPU per scan of evaluating the rules; the banner's latency.

CPU (the default): what every saved scan costs the process that saves it,
and every other process through its scan watcher, of evaluating the rules
(quality/alerts/engine.py). In process, no server, no database: the rules'
windows are the engine's own, fed the way the watcher feeds them. The scans
never cross a rule's threshold here (each rule asks for more than the stream
ever gives), so every scan runs the whole evaluation, including the breach
check, and none starts the firing transaction: that one runs once per
breach, beside the save, and is database work.

Banner (--banner N): how soon a scan that breaches a rule shows as a banner
on another process's open page. Two `quality serve` processes on a private
MariaDB, a rule that fires on one rejected scan, a supervisor's /scans open
in Chromium on the second process. N times: after a pause of a random part
of the alert poll (so the scans land at any moment of the other process's
poll), a rejected scan is saved on the first process; the figure is the time
from its answer to the banner listing the alert (a MutationObserver on the
banner calls back into the bench). The alert is then acknowledged, an
approved scan re-arms the rule and the banner empties before the next round.
One round first, to open the page's stream, is not counted. 127.0.0.1 and a
unix socket only; each wait is bounded, and it stops by itself.

    .venv/bin/python bench/alerts_bench.py [--scans 200000] [--rules 10]
    .venv/bin/python bench/alerts_bench.py --banner 20
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scan_load import PASSWORD, App, prepare, scan_form, signed_in  # noqa: E402

from quality import audit  # noqa: E402
from quality.accounts import create_user  # noqa: E402
from quality.alert_changes import acknowledge  # noqa: E402
from quality.alert_changes import add as add_rule  # noqa: E402
from quality.alerts.engine import AlertBoard, AlertEngine, Channels  # noqa: E402
from quality.alerts.rules import RATE, REPEATED, Rule, check  # noqa: E402
from quality.alerts.windows import window_for  # noqa: E402
from quality.db import Database  # noqa: E402
from quality.localdb import LocalMariaDB  # noqa: E402
from quality.scans.store import Saved, ScanRow  # noqa: E402
from quality.settings import CodePatterns, DatabaseURL  # noqa: E402
from quality.shifts import Shifts  # noqa: E402
from tests.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

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


# -- the banner: scan saved on one process, shown on another's open page ---------------

# How often a process reads the open alerts for its banners (AlertEngine's default).
ALERT_POLL = inspect.signature(AlertEngine).parameters["interval"].default
BANNER_WAIT = 30.0  # seconds a round waits for the page before the bench gives up
# Calls the bench with the number of alerts the banner lists, whenever it changes.
OBSERVE_BANNER = """() => {
  const banner = document.getElementById("alert-banner");
  new MutationObserver(() => window.bannerLists(banner.querySelectorAll("li").length))
    .observe(banner, {childList: true, subtree: true});
}"""


class Banner:
    """What the open page's banner lists, as its observer reports it."""

    def __init__(self) -> None:
        self.count = 0
        self.at = 0.0
        self._changed = asyncio.Event()

    def lists(self, count: int) -> None:
        self.count, self.at = count, time.monotonic()
        self._changed.set()

    async def listing(self, count: int) -> float:
        """When the banner came to list `count` alerts."""
        async with asyncio.timeout(BANNER_WAIT):
            while self.count != count:
                self._changed.clear()
                await self._changed.wait()
        return self.at


async def prepare_banner(url: DatabaseURL) -> None:
    """The bench's operator, a supervisor, and a rule firing on one rejected scan."""
    await prepare(url, seed=0, pages=0)
    draft = check({"kind": RATE, "station": "quality", "order": "", "defect": "", "threshold": "50",
                   "pieces": "1", "recipients": "", "mail_language": "en"}, CodePatterns(), False)
    assert draft.ok, draft.errors
    db = Database(url.connect_kwargs(), minsize=0, maxsize=1)
    try:
        await create_user(db, "watcher", PASSWORD, "supervisor")
        await db.run(add_rule, audit.terminal(), draft)
    finally:
        await db.close()


async def open_page(browser: Any, base: str, banner: Banner) -> None:
    """The supervisor's /scans, its banner reporting to `banner`."""
    page = await browser.new_page()
    await page.expose_function("bannerLists", banner.lists)
    await page.goto(base + "/login")
    await page.get_by_label("User name").fill("watcher")
    await page.get_by_label("Password").fill(PASSWORD)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Sign in").click()
    await page.goto(base + "/scans")
    await page.evaluate(OBSERVE_BANNER)


async def banner_rounds(url: DatabaseURL, saving: App, banner: Banner, rounds: int) -> list[float]:
    """Seconds from each breaching scan's answer to the banner listing its alert."""
    operator, csrf = await signed_in(saving.base)
    db = Database(url.connect_kwargs(), minsize=0, maxsize=1)
    rng = random.Random(7)
    latencies = []
    try:
        for n in range(rounds + 1):
            await asyncio.sleep(rng.uniform(0, ALERT_POLL))
            answer = await operator.post("/scan", data={**scan_form(2 * n, 0), "defect_code": "104"},
                                         headers={"HX-Request": "true", "X-CSRF-Token": csrf})
            saved = time.monotonic()
            assert answer.status_code == 200, answer.text
            shown = await banner.listing(1)
            if n:  # the first round opened the page's stream
                latencies.append(shown - saved)
            async with db.transaction() as cur:
                await cur.execute("SELECT id FROM alerts WHERE acknowledged_at IS NULL")
                open_ids = [alert_id for (alert_id,) in await cur.fetchall()]
            for alert_id in open_ids:
                await db.run(acknowledge, audit.terminal(), alert_id, "bench")
            answer = await operator.post("/scan", data={**scan_form(2 * n + 1, 0), "defect_code": "000"},
                                         headers={"HX-Request": "true", "X-CSRF-Token": csrf})
            assert answer.status_code == 200, answer.text
            await banner.listing(0)
    finally:
        await operator.aclose()
        await db.close()
    return latencies


async def measure_banner(rounds: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="qbench-", dir="/tmp"))
    server = LocalMariaDB(base)
    server.ensure_running()
    apps: list[App] = []
    try:
        url = server.url()
        await prepare_banner(url)
        apps = [App(url, pool_max=5), App(url, pool_max=5)]
        saving, showing = apps
        await asyncio.gather(*(app.wait_ready() for app in apps))
        banner = Banner()
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                await open_page(browser, showing.base, banner)
                latencies = await banner_rounds(url, saving, banner, rounds)
            finally:
                await browser.close()
    finally:
        for app in apps:
            app.stop()
        server.release()
        shutil.rmtree(base, ignore_errors=True)
    print(f"banner: a breaching scan saved on one process, its alert listed on another's open page"
          f" (which reads the open alerts every {ALERT_POLL:g} s), {rounds} rounds")
    print(f"        min {min(latencies) * 1000:.0f} ms, median {statistics.median(latencies) * 1000:.0f} ms,"
          f" max {max(latencies) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=200_000)
    parser.add_argument("--rules", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--banner", type=int, metavar="N",
                        help="measure the banner's latency over N rounds instead (MariaDB, two app"
                             " processes, Chromium)")
    args = parser.parse_args()
    if args.banner:
        asyncio.run(measure_banner(args.banner))
        return
    for count in sorted({1, args.rules, args.rules * 5}):
        asyncio.run(measure(args.scans, count, args.repeat))


if __name__ == "__main__":
    main()
