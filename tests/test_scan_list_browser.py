"""A supervisor's day in Chromium: filter by order, page, export, watch a new
scan arrive on the first page, and follow a report's chart into the list."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from quality.demo import fill
from quality.settings import Settings
from tests.conftest import LiveServer, browser_login, database_for
from tests.scanner import scan, type_code
from tests.test_scan_list import PLANT_SHIFTS, plant_settings

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(db_url: Any) -> Settings:
    return plant_settings(db_url)


async def test_supervisor_filters_pages_exports_watches_live_and_follows_a_report(
        settings: Settings, browser: Any, make_user: Any, tmp_path: Any) -> None:
    assert settings.database_url
    db = database_for(settings.database_url, query_timeout=60)
    try:
        await fill(db, 400, 3, PLANT_SHIFTS, seed=8)
        async with db.transaction() as cur:
            await cur.execute("SELECT order_code, COUNT(*) FROM scans GROUP BY order_code"
                              " ORDER BY COUNT(*) DESC, order_code LIMIT 1")
            order, order_scans = await cur.fetchone()
    finally:
        await db.close()
    assert order_scans > 60  # more than one page
    make_user("sven", "supervisor")
    make_user("olivia", "operator")
    server = LiveServer(settings, {"QUALITY_TIMEZONE": "Europe/Bucharest"})
    server.start()
    try:
        context = await browser.new_context(accept_downloads=True)
        page = await context.new_page()
        await browser_login(page, server, "sven")
        await expect(page).to_have_url(server.url + "/scans")  # supervisors land on the list

        # Filter by order: the table is swapped in place and the address is shareable.
        await page.locator('input[name="order"]').fill(order)
        await page.locator('input[name="order"]').press("Enter")
        await expect(page).to_have_url(re.compile(rf"/scans\?order={order}$"))
        rows = page.locator("#list-table tbody tr")
        await expect(rows).to_have_count(50)
        await expect(page.get_by_test_id("total-scans")).to_have_text(f"{order_scans:,}")
        assert set(await page.locator('[data-testid="order-link"]').all_inner_texts()) == {order}

        # Page down and back up, with the browser's own back button too.
        first_id = await rows.first.get_attribute("data-scan-id")
        await page.get_by_test_id("older").click()
        await expect(page).to_have_url(re.compile(r"before="))
        await expect(rows.first).not_to_have_attribute("data-scan-id", first_id or "")
        await page.go_back()
        await expect(page).to_have_url(re.compile(rf"/scans\?order={order}$"))
        await expect(rows.first).to_have_attribute("data-scan-id", first_id or "")

        # Export exactly these rows.
        async with page.expect_download() as download_info:
            await page.get_by_test_id("export-csv").click()
        download = await download_info.value
        assert download.suggested_filename == "scans_all-stations_start_now.csv"
        path = tmp_path / "export.csv"
        await download.save_as(path)
        assert len(path.read_text(encoding="utf-8-sig").splitlines()) == order_scans + 1

        # A scan made at a station appears live at the top of the first page.
        station_context = await browser.new_context()
        station = await station_context.new_page()
        await browser_login(station, server, "olivia")
        await station.goto(server.url + "/scan")
        await scan(station, "OP07", f"{order}-0999", "OC12", "OC13")
        await type_code(station, "104", enter=False)
        await expect(station.get_by_test_id("scan-result")).to_have_attribute("data-outcome", "rejected")
        await expect(rows.first).to_contain_text(f"{order}-0999", timeout=5000)
        await expect(rows.first).to_contain_text("104 Missing component")
        await expect(rows).to_have_count(51)
        await station_context.close()

        # A report's chart leads to the list behind the figure.
        await page.goto(server.url + "/reports")
        cell = page.locator("#heat-map rect[data-href]").last
        tip = await cell.locator("title").text_content() or ""
        scans_in_cell = int(re.search(r", (\d+) scans", tip)[1])
        await cell.click()
        await expect(page).to_have_url(re.compile(r"/scans\?from=.+&to="))
        await expect(page.get_by_test_id("total-scans")).to_have_text(f"{scans_in_cell:,}")
        await context.close()
    finally:
        server.stop()
