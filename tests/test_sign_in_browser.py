"""Sign-in as a person does it, in Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.conftest import LiveServer, browser_login

pytestmark = pytest.mark.browser


async def test_admin_signs_in_sees_home_and_signs_out(
    live_server: LiveServer, browser: Any, make_user: Any
) -> None:
    make_user("chief", "admin")
    page = await browser.new_page()
    await page.goto(live_server.url + "/")
    await expect(page).to_have_url(live_server.url + "/login?next=/")

    await browser_login(page, live_server, "chief", "not-the-password")
    await expect(page.get_by_test_id("login-error")).to_have_text("Wrong user name or password.")

    await browser_login(page, live_server, "chief")
    await expect(page).to_have_url(live_server.url + "/")
    await expect(page.get_by_test_id("who")).to_contain_text("chief")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Hello, chief")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(live_server.url + "/login")
    await page.goto(live_server.url + "/")
    await expect(page).to_have_url(live_server.url + "/login?next=/")
