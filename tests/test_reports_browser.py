"""A supervisor's report in Chromium: the orders table shown whole, the charts
passed by keyboard one link each (nothing focusable inside an image), and
the list and report as printed: the filter and range in every table's
repeated header row, chart text of at least 8 pt, times and codes unwrapped."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from quality.demo import fill
from quality.scans.store import save_scan
from quality.settings import Settings
from tests.conftest import UTC_SHIFTS, LiveServer, browser_login, database_for
from tests.test_scan_list import PLANT_SHIFTS, plant_settings
from tests.test_scans_store import scan_input

pytestmark = pytest.mark.browser

# Everything the browser would stop at on Tab.
FOCUSABLE = "a[href], button, input, select, textarea, [tabindex]:not([tabindex='-1'])"


@pytest.fixture
def settings(db_url: Any) -> Settings:
    return plant_settings(db_url)


async def test_report_tables_charts_by_keyboard_and_print(settings: Settings, browser: Any,
                                                           make_user: Any) -> None:
    assert settings.database_url
    make_user("sven", "supervisor")
    db = database_for(settings.database_url, query_timeout=60)
    try:
        await fill(db, 500, 3, PLANT_SHIFTS, seed=6)
        for n in range(25):  # more orders than a page of the table
            await save_scan(db, "quality", scan_input(f"CP4{n:07d}-0001", "104"), 1, UTC_SHIFTS)
    finally:
        await db.close()
    server = LiveServer(settings, {"QUALITY_TIMEZONE": "Europe/Bucharest"})
    server.start()
    try:
        # A4 at 96 dpi less its margins: the width a printed page lays out in.
        page = await browser.new_page(viewport={"width": 720, "height": 1000})
        await browser_login(page, server, "sven")
        await page.goto(server.url + "/reports?station=quality&rejected=1")

        # The orders table: twenty, then all of them.
        orders = page.locator('[data-testid="by-order"] tbody tr')
        await expect(orders).to_have_count(20)
        shown = await page.get_by_test_id("by-order-pages-shown").inner_text()
        total = int(re.search(r"of ([\d,]+)", shown)[1].replace(",", ""))
        assert total > 20
        await page.get_by_test_id("by-order-pages-all").click()
        await expect(orders).to_have_count(total)
        await expect(page.get_by_test_id("by-order-pages-shown")).to_have_text(f"All {total}")

        # Nothing focusable inside a chart; Tab goes from one chart's data link to the next.
        for chart in ("rate-by-day", "top-defects", "heat-map"):
            svg = page.get_by_test_id(chart)
            await expect(svg).to_have_attribute("role", "img")
            assert await svg.locator(FOCUSABLE).count() == 0, chart
        first = page.get_by_test_id("rate_by_day-data")
        await first.focus()
        await page.keyboard.press("Tab")
        await expect(page.get_by_test_id("top_defects-data")).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(page.get_by_test_id("heat_map-data")).to_be_focused()
        await page.keyboard.press("Enter")  # opens the chart's data table
        await expect(page).to_have_url(re.compile(r"#by-shift-table$"))
        await expect(page.locator("#by-shift-table")).to_be_in_viewport()
        # A pointer still follows a mark to its scans.
        await page.goto(server.url + "/reports?station=quality&rejected=1")
        await page.locator("#top-defects [data-href] rect").first.click()
        await expect(page).to_have_url(re.compile(r"/scans\?.*defect=\d{3}&rejected=1"))
        await expect(page.get_by_test_id("total-scans")).not_to_have_text("0")

        # Printed: the filter and range head every table; charts' text at least 8 pt.
        await page.goto(server.url + "/reports?station=quality&rejected=1")
        await page.emulate_media(media="print")
        headers = page.locator('[data-testid="by-order"] [data-testid="print-filter"]')
        await expect(headers).to_be_visible()
        await expect(headers).to_contain_text("Station: quality · Rejected only · From ")
        assert await page.locator("thead").first.evaluate("e => getComputedStyle(e).display") == \
            "table-header-group"
        for chart in ("rate-by-day", "top-defects", "heat-map"):
            smallest = await page.get_by_test_id(chart).evaluate(
                "svg => Math.min(...[...svg.querySelectorAll('text')].map("
                " t => t.getBoundingClientRect().height))")
            # A text's box is some 1.2 times its size; 8 pt is 10.7 px.
            assert smallest / 1.2 >= 8 * 96 / 72 * 0.95, (chart, smallest)
        await expect(page.locator(".filters")).to_be_hidden()

        await page.goto(server.url + "/scans?station=quality&rejected=1")
        await expect(page.locator("#list-table tbody tr").first).to_be_visible()
        await page.emulate_media(media="print")
        await expect(page.get_by_test_id("print-filter")).to_have_text(
            "Filter: Station: quality · Rejected only")
        for cell in ("time", "td.piece a", ".code"):
            assert await page.locator(f"#list-table tbody {cell}").first.evaluate(
                "e => getComputedStyle(e).whiteSpace") == "nowrap", cell
        await page.emulate_media(media="screen")
        await expect(page.get_by_test_id("print-filter")).to_be_hidden()
    finally:
        server.stop()
