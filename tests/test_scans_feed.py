"""The in-memory live tables and the one watcher per process that feeds them."""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import replace
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
from markupsafe import Markup

from quality.clock import utc_now
from quality.db import Database
from quality.http.slots import STREAMS_PER_USER
from quality.http.templates import Renderer
from quality.scans.feed import TABLE_SIZE, RenderedRow, ScanWatcher, StationFeed, TableMarkup
from quality.scans.store import Saved, ScanRow
from quality.session_cache import SessionCache
from quality.settings import DatabaseURL, Settings
from tests.conftest import LiveServer, csrf_token_in, database_for, execute


def saved(scan_id: int, order: str = "CP00000001", approved: int = 1, rejected: int = 0,
          station: str = "quality") -> Saved:
    row = ScanRow(scan_id, station, utc_now(), "OP01", f"{order}-{scan_id:04d}", order,
                  "OC01", "OC02", "000", "Approved", "Aprobat", True, False)
    return Saved(row, approved, rejected)


class PlainMarkup:
    """The table's pieces as plain text: `v<version>:<id>:<approved>/<rejected>,...`."""

    def __init__(self) -> None:
        self.rendered: list[str] = []

    def table(self, rows: str, version: int, language: str) -> str:
        self.rendered.append(f"table {version}")
        return f"v{version}:" + rows.rstrip(",")

    def row(self, scan: ScanRow, language: str) -> RenderedRow:
        self.rendered.append(f"row {scan.id}")
        return RenderedRow(f"{scan.id}:", ",")

    def counts(self, order_code: str, approved: int, rejected: int, language: str) -> str:
        self.rendered.append(f"counts {order_code}")
        return f"{approved}/{rejected}"


def test_keeps_the_newest_rows_newest_first() -> None:
    feed = StationFeed("quality", PlainMarkup())
    feed.add(saved(i) for i in range(1, TABLE_SIZE + 11))
    ids = [int(part.split(":")[0]) for part in feed.table_html("en").split(":", 1)[1].split(",")]
    assert ids == list(range(TABLE_SIZE + 10, 10, -1))
    assert feed.version == TABLE_SIZE + 10


def test_older_counts_never_overwrite_newer_ones() -> None:
    feed = StationFeed("quality", PlainMarkup())
    feed.add([saved(5, approved=3, rejected=2)])
    feed.add([saved(4, approved=2, rejected=2)])  # read earlier, arrived later
    assert feed.table_html("en") == "v5:5:3/2,4:3/2"
    feed.add([saved(6, approved=3, rejected=3)])
    assert feed.table_html("en") == "v6:6:3/3,5:3/3,4:3/3"


def test_html_is_rendered_once_per_change() -> None:
    markup = PlainMarkup()
    feed = StationFeed("quality", markup)
    feed.add([saved(1)])
    first = feed.event_frame("en")
    assert feed.table_html("en") and feed.event_frame("en") is first
    assert markup.rendered == ["row 1", "counts CP00000001", "table 1"]
    feed.add([saved(1)])  # nothing new
    assert feed.event_frame("en") is first
    markup.rendered.clear()
    feed.add([saved(2, approved=2)])
    assert feed.table_html("en") == "v2:2:2/0,1:2/0"
    # the new row and its order's new counts are rendered; the old row is reused
    assert markup.rendered == ["row 2", "counts CP00000001", "table 2"]
    assert first.startswith(b"event: table\nid: 1\ndata: ")


def test_each_language_is_rendered_once_per_change_and_only_when_viewed() -> None:
    markup = PlainMarkup()
    feed = StationFeed("quality", markup)
    feed.add([saved(1)])
    feed.table_html("en")
    assert markup.rendered == ["row 1", "counts CP00000001", "table 1"]
    ro = feed.event_frame("ro")
    assert feed.event_frame("ro") is ro and feed.event_frame("en") is not ro
    assert markup.rendered.count("table 1") == 2  # one per language, not per viewer
    markup.rendered.clear()
    feed.add([saved(2, approved=2)])
    assert feed.table_html("ro") == "v2:2:2/0,1:2/0"
    assert markup.rendered == ["row 2", "counts CP00000001", "table 2"]


def test_the_real_table_speaks_the_viewers_language() -> None:
    feed = StationFeed("quality", TableMarkup(Renderer(ZoneInfo("Europe/Bucharest"))))
    feed.add([saved(1, approved=1234)])
    assert "Latest scans" in feed.table_html("en") and ">1,234</b>" in feed.table_html("en")
    romanian = feed.table_html("ro")
    assert "Ultimele scanări" in romanian and "Comandă: aprobate / respinse" in romanian
    assert ">1.234</b>" in romanian  # numbers written the Romanian way


def test_rows_of_the_real_template_are_whole_and_share_their_order_counts() -> None:
    feed = StationFeed("quality", TableMarkup(Renderer(ZoneInfo("UTC"))))
    odd = saved(2, approved=2)
    # a value that looks like the row's counts slot is escaped like any other
    feed.add([saved(1), Saved(replace(odd.row, defect_name="<!--counts-->"), 2, 0)])
    body = feed.table_html("en").split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr\b.*?</tr>", body, re.S)
    assert len(rows) == body.count("<tr") == 2
    assert [row.count("<td") for row in rows] == [6, 6]
    assert all('<b class="ok">2</b>' in row for row in rows)
    assert "&lt;!--counts--&gt;" in rows[0]


def test_the_tables_frame_is_the_templates_own() -> None:
    """The frame around the rows is rendered once per language and filled in;
    it reads as the template's macro would write it, and so does the empty table."""
    renderer = Renderer(ZoneInfo("UTC"))
    markup = TableMarkup(renderer)
    for language in ("en", "ro"):
        macros = renderer.macros("stations/_table.html", language)
        rows = "<tr><td>one</td></tr>"
        for version in (7, 8):
            assert markup.table(rows, version, language) == str(macros.table(Markup(rows), version))
        assert markup.table("", 9, language) == str(macros.table(Markup(""), 9))


async def record(db: Database, piece: str) -> int:
    now = utc_now()
    hour = now.replace(minute=0, second=0, microsecond=0)  # any shift holding the scan
    async with db.transaction() as cur:
        await cur.execute(
            "CALL record_scan('quality', %s, 'OP01', %s, %s, 'OC01', 'OC02', '000', TRUE, 1, %s,"
            " %s, %s)",
            (secrets.token_bytes(16), piece, piece[:10], now, hour, hour + timedelta(hours=1)),
        )
        (scan_id, *_) = await cur.fetchone()
        await cur.nextset()
    return scan_id


async def record_slowly(db: Database, piece: str, commit: asyncio.Event) -> int:
    """The same rows as record_scan writes, in a transaction left open until `commit`."""
    async with db.transaction() as cur:
        await cur.execute(
            "INSERT INTO scans (station, submission_id, operator_code, piece_code, order_code,"
            " checker1_code, checker2_code, defect_code, approved, created_at, created_by)"
            " VALUES ('quality', %s, 'OP01', %s, %s, 'OC01', 'OC02', '000', TRUE, %s, 1)",
            (secrets.token_bytes(16), piece, piece[:10], utc_now()),
        )
        scan_id = cur.lastrowid
        await cur.execute(
            "INSERT INTO order_counts (station, order_code, approved, rejected)"
            " VALUES ('quality', %s, 1, 0)", (piece[:10],))
        await commit.wait()
    return scan_id


async def test_a_scan_committed_late_under_a_lower_id_is_not_missed(
    db: Database, db_url: DatabaseURL, make_user: Any
) -> None:
    make_user("writer", "operator")
    watcher = ScanWatcher(db, PlainMarkup(), SessionCache())
    await watcher.load()
    other = database_for(db_url, maxsize=2)
    commit = asyncio.Event()
    slow = asyncio.create_task(record_slowly(other, "CP00000001-0001", commit))
    while not await _uncommitted_id_taken(db):  # noqa: ASYNC110 - polling the server
        await asyncio.sleep(0.01)
    fast_id = await record(other, "CP00000002-0001")
    await watcher.poll()
    feed = watcher.feeds["quality"]
    assert feed.table_html("en") == f"v{fast_id}:{fast_id}:1/0"

    commit.set()
    slow_id = await slow
    assert slow_id < fast_id
    await watcher.poll()
    assert feed.table_html("en") == f"v{fast_id}:{fast_id}:1/0,{slow_id}:1/0"
    await other.close()


async def _uncommitted_id_taken(db: Database) -> bool:
    async with db.transaction() as cur:
        await cur.execute("SELECT AUTO_INCREMENT FROM information_schema.TABLES"
                          " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'scans'")
        (next_id,) = await cur.fetchone()
    return next_id > 1


async def test_open_pages_cost_no_database_work(settings: Settings, make_user: Any) -> None:
    viewers = [make_user(f"viewer{n}", "supervisor") for n in range(30 // STREAMS_PER_USER)]
    server = LiveServer(settings)
    await asyncio.to_thread(server.start)
    try:
        async def signed_in(username: str) -> httpx2.AsyncClient:
            http = httpx2.AsyncClient(base_url=server.url, timeout=30)
            page = await http.get("/login")
            await http.post("/login", data={"username": username, "password": "correct-horse-42",
                                            "csrf_token": csrf_token_in(page.text)})
            return http

        clients = [await signed_in(username) for username in viewers]

        async def acquired() -> float:
            text = (await clients[0].get("/metrics")).text
            return float(re.search(r"^quality_db_pool_acquired_total (\S+)$", text, re.M)[1])

        async def watch(http: httpx2.AsyncClient, ready: asyncio.Event, stop: asyncio.Event) -> None:
            async with http.stream("GET", "/scan/stream") as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("event: table"):
                        ready.set()
                        await stop.wait()
                        return

        stop = asyncio.Event()
        ready = [asyncio.Event() for _ in range(30)]
        streams = [asyncio.create_task(watch(clients[n % len(clients)], r, stop))
                   for n, r in enumerate(ready)]
        async with asyncio.timeout(60):
            await asyncio.gather(*(r.wait() for r in ready))
        before = await acquired()
        await asyncio.sleep(2.0)  # about four watcher polls
        during = await acquired() - before
        stop.set()
        await asyncio.gather(*streams)
        for http in clients:
            await http.aclose()
    finally:
        server.stop()
    # 30 open pages for two seconds: only the process's own watcher touched the
    # database (one acquire per poll, every 0.5 s), plus the /metrics read itself;
    # the pages' session re-checks were answered by the process's trusted sessions.
    assert during <= 8, during


async def test_each_poll_confirms_the_session_revocation_counter(
    db: Database, db_url: DatabaseURL, make_user: Any
) -> None:
    sessions = SessionCache()
    watcher = ScanWatcher(db, PlainMarkup(), sessions)
    await watcher.load()
    loaded = sessions.version
    assert loaded is not None
    make_user("rita", "operator")
    await execute(db_url, "UPDATE users SET active = FALSE WHERE username = 'rita'")
    await watcher.poll()
    assert sessions.version is not None and sessions.version > loaded
