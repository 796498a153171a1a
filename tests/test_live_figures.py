"""Figures that follow the floor: a list's totals and an open report are asked
again as scans arrive, and pages open on the same filter share one reading,
so the database's work does not grow with the number of pages open. Also the
wall-screen report."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import expect
from starlette.testclient import TestClient

from quality.answers import SharedAnswers
from quality.demo import fill
from quality.pages.reports import views as report_views
from quality.scans.store import save_scan
from quality.settings import Settings
from tests.conftest import (
    LiveServer,
    app_services,
    browser_login,
    database_for,
    execute,
    login,
    run_async,
)
from tests.database_outage import app_behind_relay, until_health, until_refused
from tests.test_scan_list import PLANT_SHIFTS, plant_settings, seed_through
from tests.test_scans_store import scan_input


@pytest.fixture
def settings(db_url: Any) -> Settings:
    return plant_settings(db_url)


async def test_pages_asking_at_once_share_one_reading() -> None:
    answers = SharedAnswers()
    started = asyncio.Event()

    async def ask() -> int:
        started.set()
        await asyncio.sleep(0.05)
        return 42

    def get(key: str, told: int, ask: Any = ask) -> Any:  # asked by pages that wrote nothing
        return answers.get(key, told, lambda mark, _age: mark >= told, ask,
                           holds=time.time(), written_at=None)

    found = await asyncio.gather(*(get("totals", 7) for _ in range(100)))
    assert {answer.value for answer in found} == {42} and answers.asked == 1
    await get("totals", 7)
    assert answers.asked == 1  # kept while nothing newer is asked for
    await get("totals", 9)
    assert answers.asked == 2  # a newer scan: read again
    # A page leaving does not cancel the reading the others wait for.
    started.clear()
    leaving = asyncio.create_task(get("totals", 11))
    staying = asyncio.create_task(get("totals", 11))
    await started.wait()
    leaving.cancel()
    assert (await staying).value == 42 and answers.asked == 3

    async def fails() -> int:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError):
        await get("broken", 1, fails)
    assert (await get("broken", 1)).value == 42  # an error is not kept


async def test_an_answer_serves_a_client_that_wrote_only_if_it_holds_that_write() -> None:
    answers = SharedAnswers()
    readings: list[float | None] = []

    def get(holds: float, written_at: float | None) -> Any:
        async def ask() -> float | None:
            readings.append(written_at)  # as `Database.read` would for this client alone
            await asyncio.sleep(0.05)
            return written_at

        return answers.get("totals", 7, lambda _mark, _age: True, ask, holds=holds, written_at=written_at)

    # Read (on a replica) holding the writes before 100: a write at 150 is not
    # in it, neither while it is being read nor once kept; one at 50 is.
    others, writer = await asyncio.gather(get(100.0, None), get(100.0, 150.0))
    assert (others.value, writer.value) == (None, 150.0) and readings == [None, 150.0]
    # The newest reading is kept (holding what was committed before 100 at least).
    assert (await get(120.0, 50.0)).value == 150.0 and len(readings) == 2
    assert (await get(120.0, 160.0)).value == 160.0 and readings == [None, 150.0, 160.0]


def save(db_url: Any, piece: str, defect: str = "104") -> int:
    async def work() -> int:
        db = database_for(db_url)
        try:
            async with db.transaction() as cur:
                await cur.execute("SELECT MIN(id) FROM users")
                (user_id,) = await cur.fetchone()
            return (await save_scan(db, "quality", scan_input(piece, defect), user_id, PLANT_SHIFTS)).row.id
        finally:
            await db.close()

    return run_async(work())


def until_seen(client: TestClient, scan_id: int) -> None:
    """Until the app's scan watcher (a poll every 0.5 s) has seen this scan."""
    deadline = time.monotonic() + 10
    while app_services(client).scan_watcher.newest < scan_id:
        assert time.monotonic() < deadline, "the watcher never saw the scan"
        time.sleep(0.05)


def settled(client: TestClient, db_url: Any) -> None:
    """Until the app's watcher has seen every scan stored so far."""
    (rows,) = run_async(execute(db_url, "SELECT MAX(id) FROM scans"))
    until_seen(client, rows[0][0])


def scans_total(html: str) -> int:
    found = re.search(r'data-testid="total-scans">([\d,]+)<', html)
    assert found, html
    return int(found[1].replace(",", ""))


def test_totals_are_read_once_per_new_scan_however_many_pages_ask(
        client: TestClient, make_user: Any, db_url: Any) -> None:
    seed_through(db_url, 200)
    make_user("sue", "supervisor")
    login(client, "sue")
    settled(client, db_url)
    answers = app_services(client).answers
    before = answers.asked
    # A page just opened reads its own (its rows may be newer than what the watcher saw).
    counted = scans_total(client.get("/scans/totals", params={"station": "quality"}).text)
    assert answers.asked == before + 1
    new_id = save(db_url, "CP00000077-0001")
    until_seen(client, new_id)
    # Every page told of the new scan asks with it; one reading serves them all.
    again = [client.get("/scans/totals", params={"station": "quality", "v": str(new_id)}) for _ in range(20)]
    assert {scans_total(page.text) for page in again} == {counted + 1}
    assert answers.asked == before + 2
    assert client.get("/scans/totals", params={"station": "quality", "v": "x1"}).status_code == 400


def test_an_open_report_is_sent_again_only_when_the_floor_moved(
        client: TestClient, make_user: Any, db_url: Any, monkeypatch: Any) -> None:
    seed_through(db_url, 200)
    make_user("sue", "supervisor")
    login(client, "sue")
    settled(client, db_url)
    answers = app_services(client).answers
    page = client.get("/reports")
    etag = re.search(r'data-etag="([^"]+)"', page.text)
    assert page.status_code == 200 and etag and 'hx-trigger="every 20s"' in page.text
    refresh = {"HX-Request": "true", "If-None-Match": etag[1].replace("&#34;", '"')}
    asked = answers.asked
    for _ in range(10):  # nothing new: nothing read, nothing sent
        assert client.get("/reports", headers=refresh).status_code == 304
    assert answers.asked == asked
    until_seen(client, save(db_url, "CP00000078-0001"))
    # Within FRESH_SECONDS of the last reading, every page is served that one.
    assert client.get("/reports", headers=refresh).status_code == 304 and answers.asked == asked
    reads = Counter[str]()
    for name in ("catalogue", "filter_choices"):
        monkeypatch.setattr(report_views, name, counted(reads, name, getattr(report_views, name)))
    monkeypatch.setattr(report_views, "FRESH_SECONDS", 0)
    fresh = client.get("/reports", headers=refresh)
    assert fresh.status_code == 200 and answers.asked == asked + 1
    assert fresh.text.lstrip().startswith('<div id="report-body"') and "<form" not in fresh.text
    # The refresh read its report and the defects' categories once, as one shared
    # answer, and no pick lists: a page served that answer reads nothing.
    assert reads == {"catalogue": 1}
    monkeypatch.setattr(report_views, "FRESH_SECONDS", 15)
    again = client.get("/reports", headers=refresh)
    assert again.status_code == 200 and answers.asked == asked + 1 and reads == {"catalogue": 1}
    assert 'data-testid="p-chart"' in again.text or "UCL" in again.text
    # A past range never changes: it does not ask again.
    past = client.get("/reports", params={"from": "2020-01-01", "to": "2020-01-02"})
    assert past.status_code == 200 and "hx-trigger" not in past.text.split('id="report-body"')[1][:300]


def test_the_wall_screen_shows_today_in_large_type_without_navigation(
        client: TestClient, make_user: Any, db_url: Any) -> None:
    seed_through(db_url, 200)
    make_user("sue", "supervisor")
    login(client, "sue")
    wall = client.get("/reports", params={"wall": "1"})
    assert wall.status_code == 200
    assert '<body class="wall"' in wall.text
    assert "<nav" not in wall.text and 'class="topbar"' not in wall.text and 'id="filters"' not in wall.text
    assert re.search(r'data-testid="range-words">Today, since ', wall.text)
    assert 'data-testid="wall-scans"' in wall.text and 'hx-trigger="every 20s"' in wall.text
    shift = client.get("/reports", params={"wall": "1", "range": "shift"})
    assert 'data-testid="range-words">This shift, since ' in shift.text
    assert 'data-testid="wall-link"' in client.get("/reports").text
    assert client.get("/reports", params={"wall": "1", "range": "week"}).status_code == 400



@pytest.mark.browser
async def test_totals_and_an_open_report_follow_the_floor_in_chromium(
        settings: Settings, browser: Any, make_user: Any) -> None:
    assert settings.database_url
    db = database_for(settings.database_url, query_timeout=60)
    try:
        await fill(db, 600, 3, PLANT_SHIFTS, seed=21)
    finally:
        await db.close()
    make_user("sven", "supervisor")
    server = LiveServer(settings, {"QUALITY_TIMEZONE": "Europe/Bucharest"})
    server.start()
    try:
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        await browser_login(page, server, "sven")
        await page.goto(server.url + "/scans?station=quality")
        total = page.get_by_test_id("total-scans")
        await expect(total).not_to_have_text("")
        before = int((await total.inner_text()).replace(",", ""))
        await asyncio.to_thread(save, settings.database_url, "CP00000079-0001")
        await expect(total).to_have_text(f"{before + 1:,}", timeout=5000)  # without a reload

        await page.goto(server.url + "/reports")
        summary = page.get_by_test_id("report-total")
        shown = await summary.inner_text()
        await page.evaluate("window.scrollTo(0, 700)")
        assert await page.evaluate("window.scrollY") == 700
        await asyncio.to_thread(save, settings.database_url, "CP00000079-0002")
        await expect(summary).not_to_have_text(shown, timeout=45_000)  # refreshed by itself
        assert abs(await page.evaluate("window.scrollY") - 700) <= 2  # where the reader was
        await context.close()
    finally:
        server.stop()


def counted(reads: Counter[str], name: str, read: Callable[..., Any]) -> Callable[..., Any]:
    """`read`, counting its calls under `name`."""
    async def counting(*args: Any, **kwargs: Any) -> Any:
        reads[name] += 1
        return await read(*args, **kwargs)
    return counting


# -- a refresh that fails ------------------------------------------------------------

NOT_REFRESHED = re.compile(r"^Not refreshed since \d{2}:\d{2}\. Retrying…$")


async def until_answered(context: Any, url: str, status: int, etag: str | None = None) -> None:
    """Until a refresh of `url` in this browser's session (showing version
    `etag`) is answered `status`: once the app's trust in the session lapses, it
    checks the session in the database."""
    headers = {"HX-Request": "true", **({"If-None-Match": etag} if etag else {})}
    for _ in range(300):
        if (await context.request.get(url, headers=headers)).status == status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered {status}")


@pytest.mark.browser
async def test_an_open_report_and_the_wall_screen_ride_out_a_database_outage_in_chromium(
        settings: Settings, browser: Any, make_user: Any) -> None:
    assert settings.database_url
    make_user("sven", "supervisor")
    await asyncio.to_thread(save, settings.database_url, "CP00000079-0001")
    async with app_behind_relay(settings) as (server, relay):
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        await context.clock.install()  # the refreshes' timer, moved on by the test
        report = await context.new_page()
        await browser_login(report, server, "sven")
        await report.goto(server.url + "/reports")
        wall = await context.new_page()
        await wall.goto(server.url + "/reports?wall=1")
        figures = {report: report.get_by_test_id("report-total"), wall: wall.get_by_test_id("wall-scans")}
        shown = {page: await figure.inner_text() for page, figure in figures.items()}

        await relay.cut()
        # Asked with the version shown, a refresh needs the database only to check the session.
        etag = await report.locator("#report-body").get_attribute("data-etag")
        await until_answered(context, server.url + "/reports", 503, etag)
        await context.clock.fast_forward(report_views.REFRESH_SECONDS * 1000)
        for page, figure in figures.items():
            # The last good report stays, still asking, and says since when it is not refreshed.
            await expect(page.get_by_test_id("refresh-note")).to_have_text(NOT_REFRESHED)
            await expect(figure).to_have_text(shown[page])
            await expect(page.locator("#report-body[hx-trigger]")).to_have_count(1)

        await relay.restore()
        await until_health(server, 200)
        await asyncio.to_thread(save, settings.database_url, "CP00000079-0002")
        for page, figure in figures.items():
            await refreshed(context, figure, shown[page])
            await expect(page.get_by_test_id("refresh-note")).to_be_hidden()
        await context.close()


async def refreshed(context: Any, figure: Any, shown: str) -> None:
    """Until a refresh shows other figures (the first may come before the app's
    watcher saw the new scan, and be told nothing changed)."""
    for _ in range(10):
        await context.clock.fast_forward(report_views.REFRESH_SECONDS * 1000)
        with contextlib.suppress(AssertionError):
            await expect(figure).not_to_have_text(shown, timeout=2000)
            return
    raise AssertionError(f"never refreshed from {shown!r}")


@pytest.mark.browser
async def test_a_lists_totals_and_rows_ride_out_a_database_outage_in_chromium(
        settings: Settings, browser: Any, make_user: Any) -> None:
    assert settings.database_url
    make_user("sven", "supervisor")
    async with app_behind_relay(settings) as (server, relay):
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        await context.clock.install()  # the list's timers, moved on by the test
        page = await context.new_page()
        await browser_login(page, server, "sven")
        await page.goto(server.url + "/scans?station=quality")
        total, rows = page.get_by_test_id("total-scans"), page.locator("#list-table tbody tr:not(.empty)")
        await expect(total).to_have_text("0")

        # The totals asked after a new row are held until the database is gone: the app answers them 503.
        held, release = asyncio.Event(), asyncio.Event()

        async def hold(route: Any) -> None:
            held.set()
            await release.wait()
            await route.continue_()

        await page.route("**/scans/totals?*", hold)
        await asyncio.to_thread(save, settings.database_url, "CP00000079-0001")
        await expect(rows).to_have_count(1)
        await asyncio.wait_for(held.wait(), 10)
        await relay.cut()
        await until_answered(context, server.url + "/scans/totals?station=quality", 503)
        # The live rows' stream is refused too, and the browser's stream gives up on it.
        await until_refused(server, "/scans/stream")
        release.set()
        await expect(page.get_by_test_id("refresh-note")).to_have_text(NOT_REFRESHED)
        await expect(total).to_have_text("0")
        await page.unroute("**/scans/totals?*")

        await relay.restore()
        await until_health(server, 200)
        await context.clock.fast_forward(60_000)  # the list's retries come round
        await expect(total).to_have_text("1")
        await expect(page.get_by_test_id("refresh-note")).to_be_hidden()
        await asyncio.to_thread(save, settings.database_url, "CP00000079-0002")
        await expect(rows).to_have_count(2)  # live again, each row once
        await context.clock.fast_forward(2_000)
        await expect(total).to_have_text("2")
        await context.close()
