"""A Romanian operator sees the defect's Romanian name in Chromium: in the
result after a scan and in the station's latest-scans table (issue 21)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from quality.settings import Settings
from tests.conftest import LiveServer, browser_login, execute
from tests.scanner import scan, type_code

pytestmark = pytest.mark.browser


async def test_a_romanian_operator_sees_the_romanian_defect_name_after_a_scan(
    live_server: LiveServer, browser: Any, make_user: Any, settings: Settings
) -> None:
    assert settings.database_url
    make_user("ioana", "operator")
    await execute(settings.database_url, "UPDATE users SET language = 'ro' WHERE username = 'ioana'")
    page = await browser.new_page()
    await browser_login(page, live_server, "ioana")
    await page.goto(live_server.url + "/scan")
    await expect(page.locator("html")).to_have_attribute("lang", "ro")
    await expect(page.locator("#operator_code")).to_be_focused()

    await scan(page, "OP07", "CP00012345-0001", "OC12", "OC13")
    await type_code(page, "104", enter=False)  # a complete defect code submits itself
    await expect(page.get_by_test_id("scan-result")).to_have_attribute("data-outcome", "rejected")
    await expect(page.get_by_test_id("saved-defect")).to_have_text("104 Componentă lipsă")
    row = page.locator("#scan-table tbody tr").first
    await expect(row).to_contain_text("104 Componentă lipsă")
    await expect(page.locator("#scan-table")).not_to_contain_text("Missing component")
