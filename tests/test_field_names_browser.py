"""A field's spoken name is its label alone; its error is said once, as its
description (labels wrap their fields, errors included, so without an explicit
name a screen reader would read the error as part of the name and again as
the description)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.conftest import LiveServer, browser_login
from tests.scanner import scan
from tests.test_stations_browser import open_station

pytestmark = pytest.mark.browser


async def test_a_scan_fields_error_is_its_description_not_its_name(
    live_server: LiveServer, browser: Any, make_user: Any
) -> None:
    page = await open_station(browser, live_server, make_user)
    await scan(page, "OP07", "CP00012345-0001", "OC12", "OC13")
    await page.get_by_role("button", name="Save scan").click()
    defect = page.locator("#defect_code")
    await expect(defect).to_have_attribute("aria-invalid", "true")
    await expect(defect).to_have_accessible_name("Defect code")
    await expect(defect).to_have_accessible_description("Defect code is missing: scan or type it.")
    await expect(page.locator("#piece_code")).to_have_accessible_name("Piece code")


async def test_an_admin_forms_error_is_its_description_not_its_name(
    live_server: LiveServer, browser: Any, make_user: Any
) -> None:
    make_user("ada", "admin")
    page = await browser.new_page()
    await browser_login(page, live_server, "ada")
    await page.goto(live_server.url + "/admin/audit?since=2026-12-04&until=2026-12-01")
    until = page.locator("#until")
    await expect(until).to_have_attribute("aria-invalid", "true")
    await expect(until).to_have_accessible_name("To")
    await expect(until).to_have_accessible_description(
        "The last day is before the first: choose a range that runs forward.")
    await expect(page.locator("#since")).to_have_accessible_name("From")


async def test_an_alert_rules_choice_says_its_error_once(
    live_server: LiveServer, browser: Any, make_user: Any
) -> None:
    make_user("ada", "admin")
    page = await browser.new_page()
    await browser_login(page, live_server, "ada")
    await page.goto(live_server.url + "/admin/alerts")
    await page.locator("#kind").select_option("p_chart")
    await page.locator("#station").select_option("fg")
    await page.get_by_role("button", name="Add rule").click()
    period = page.locator("#period")
    await expect(period).to_have_attribute("aria-invalid", "true")
    await expect(period).to_have_accessible_name("Points per")
    await expect(period).to_have_accessible_description(
        "Choose the p-chart's points: per shift or per production day.")
    await expect(page.locator("#kind")).to_have_accessible_name("Kind")
