"""Open lists and reports that follow the floor: database statements per second
with 0, 1, 10 and 100 pages open while a station scans 5 times a second.

    .venv/bin/python bench/live_pages_bench.py              # about 2 minutes
    .venv/bin/python bench/live_pages_bench.py --seconds 10 # shorter windows

Half the pages are scan lists (`/scans`, four filters: all, each station,
rejected only), each doing what `static/lists.js` does: its live stream, and
its totals asked again a second after new matching rows, naming the newest
(`v`). The other half are reports (`/reports`, today and this shift), each
asking again every REFRESH_SECONDS with the version it shows (If-None-Match),
as the page's htmx poll does. Every window is as long as one report refresh,
so each report page asks about once in it. `Questions` (SHOW GLOBAL STATUS)
is read before and after each window. Everything runs on 127.0.0.1 / a unix
socket and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scan_load import PASSWORD, App, query, scan_form, signed_in  # noqa: E402
from scan_load import prepare as prepare_scans  # noqa: E402

from quality.accounts import create_user  # noqa: E402
from quality.db import Database  # noqa: E402
from quality.localdb import LocalMariaDB  # noqa: E402
from quality.pages.reports.views import REFRESH_SECONDS  # noqa: E402
from quality.settings import DatabaseURL  # noqa: E402

LIST_FILTERS = ("", "station=quality", "station=fg", "rejected=1")
REPORT_FILTERS = ("range=today", "range=shift")
PAGES_PER_USER = 5  # under the per-user stream bound
RECOUNT_AFTER = 1.0  # static/lists.js RECOUNT_AFTER_MS


async def viewers(url: DatabaseURL, count: int) -> list[str]:
    names = [f"supervisor{n}" for n in range(count)]
    db = Database(url.connect_kwargs(), minsize=0, maxsize=1)
    try:
        for name in names:
            await create_user(db, name, PASSWORD, "supervisor")
    finally:
        await db.close()
    return names


async def supervisor(base: str, username: str) -> httpx2.AsyncClient:
    """A signed-in browser with room for its pages' streams and requests."""
    http = httpx2.AsyncClient(base_url=base, timeout=None,
                              limits=httpx2.Limits(max_connections=4 * PAGES_PER_USER))
    page = await http.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    await http.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    return http


class Pages:
    """Open pages and what they asked while open."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.asked: Counter[str] = Counter()
        # Pages are opened a few at a time, as people open them, not all in one instant.
        self.opening = asyncio.Semaphore(4)

    async def list_page(self, http: httpx2.AsyncClient, filter_query: str, opened: asyncio.Event) -> None:
        async with self.opening:
            page = await http.get(f"/scans?{filter_query}")
            live = html.unescape(re.search(r'data-live="([^"]+)"', page.text)[1])
            await http.get(f"/scans/totals?{filter_query}")
        recount: asyncio.Task[None] | None = None
        newest = ""

        async def ask() -> None:
            await asyncio.sleep(RECOUNT_AFTER)  # rows meanwhile join this question
            await http.get(f"/scans/totals?{filter_query}&v={newest}")
            self.asked["list totals"] += 1

        try:
            async with http.stream("GET", live) as stream:
                opened.set()
                rows = False
                async for line in stream.aiter_lines():
                    if self.stop.is_set():
                        break
                    if line.startswith("event: "):
                        rows = line == "event: rows"
                    elif line.startswith("id: ") and rows:
                        newest = line[4:]
                        if recount is None or recount.done():
                            recount = asyncio.create_task(ask())
        finally:
            if recount:
                recount.cancel()
                await asyncio.gather(recount, return_exceptions=True)

    async def report_page(self, http: httpx2.AsyncClient, filter_query: str, opened: asyncio.Event) -> None:
        async with self.opening:
            page = await http.get(f"/reports?{filter_query}")
        version = html.unescape(re.search(r'data-etag="([^"]+)"', page.text)[1])
        opened.set()
        # Pages opened at different moments poll at different moments.
        await asyncio.sleep(random.uniform(0, REFRESH_SECONDS))
        while not self.stop.is_set():
            answer = await http.get(f"/reports?{filter_query}",
                                    headers={"HX-Request": "true", "If-None-Match": version})
            self.asked[f"report {answer.status_code}"] += 1
            if answer.status_code == 200:
                version = html.unescape(re.search(r'data-etag="([^"]+)"', answer.text)[1])
            await asyncio.sleep(REFRESH_SECONDS)


async def window(app: App, admin: DatabaseURL, names: list[str], pages: int,
                 seconds: float) -> tuple[float, Counter[str]]:
    """Statements per second on the database while `pages` pages are open and a station scans."""
    station, csrf = await signed_in(app.base)
    users = [await supervisor(app.base, name) for name in names[: -(-pages // PAGES_PER_USER)]]
    open_pages = Pages()
    opened = [asyncio.Event() for _ in range(pages)]
    tasks = []
    for n in range(pages):
        http = users[n // PAGES_PER_USER]
        if n % 2 == 0:
            tasks.append(asyncio.create_task(open_pages.list_page(
                http, LIST_FILTERS[n // 2 % len(LIST_FILTERS)], opened[n])))
        else:
            tasks.append(asyncio.create_task(open_pages.report_page(
                http, REPORT_FILTERS[n // 2 % len(REPORT_FILTERS)], opened[n])))
    await asyncio.gather(*(event.wait() for event in opened))
    await asyncio.sleep(1)  # the pages' first reads done

    async def questions() -> int:
        return int((await query(admin, "SHOW GLOBAL STATUS LIKE 'Questions'"))[0][1])

    start = await questions()
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:  # a line scanning 5 times a second
        await station.post("/scan", data=scan_form(n, 7),
                           headers={"HX-Request": "true", "X-CSRF-Token": csrf})
        n += 1
        await asyncio.sleep(0.2)
    rate = (await questions() - start - 1) / seconds  # less the first status read
    open_pages.stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for client in [station, *users]:
        await client.aclose()
    return rate, open_pages.asked


async def main(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="qlive-", dir="/tmp"))
    server = LocalMariaDB(base, buffer_pool="256M")
    server.ensure_running()
    try:
        url = server.url()
        admin = server.url(maintenance=True, database="mysql")
        await prepare_scans(url, args.seed, 0)
        names = await viewers(url, -(-max(args.pages) // PAGES_PER_USER))
        app = App(url, 20)
        await app.wait_ready()
        try:
            print(f"{args.seed:,} scans stored; a station scanning 5/s; windows of {args.seconds:g} s; "
                  f"reports ask again every {REFRESH_SECONDS} s")
            for pages in (0, *args.pages):
                began = time.monotonic()
                rate, asked = await window(app, admin, names, pages, args.seconds)
                what = ", ".join(f"{name}: {count}" for name, count in sorted(asked.items())) or "-"
                print(f"{pages:>4} open pages: {rate:7.1f} database statements/s   (pages asked: {what};"
                      f" {time.monotonic() - began:.0f} s with opening)", flush=True)
        finally:
            app.stop()
    finally:
        with contextlib.suppress(Exception):
            server.release()
        shutil.rmtree(base, ignore_errors=True)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=REFRESH_SECONDS, help="each window")
    parser.add_argument("--seed", type=int, default=20_000, help="scans stored first")
    parser.add_argument("--pages", type=int, nargs="+", default=[1, 10, 100])
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
