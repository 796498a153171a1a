"""/scans and /reports on a 1024 px tablet, in English and Romanian: a
supervisor's header takes at most two lines, an administrator's (every
navigation link) three, within the screen, and the main table needs no
sideways scrolling."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from quality.demo import fill
from quality.settings import Settings
from tests.conftest import LiveServer, browser_login, database_for
from tests.test_scan_list import PLANT_SHIFTS, plant_settings

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(db_url: Any) -> Settings:
    return plant_settings(db_url)


async def test_lists_and_reports_fit_a_tablet_in_both_languages(
        settings: Settings, browser: Any, make_user: Any) -> None:
    assert settings.database_url
    db = database_for(settings.database_url, query_timeout=60)
    try:
        await fill(db, 300, 3, PLANT_SHIFTS, seed=24)
    finally:
        await db.close()
    make_user("supervizor", "supervisor")  # a long name in the header too
    make_user("administrator", "admin")  # every navigation link
    server = LiveServer(settings, {"QUALITY_TIMEZONE": "Europe/Bucharest"})
    server.start()
    try:
        for username in ("supervizor", "administrator"):
            context = await browser.new_context(viewport={"width": 1024, "height": 768})
            page = await context.new_page()
            await browser_login(page, server, username)
            for language in ("en", "ro"):
                await page.goto(server.url + "/scans")
                await page.get_by_test_id("language").select_option(language)
                await page.locator("form.language button").click()
                for address, table in (("/scans", "#list-table"), ("/reports", '[data-testid="by-shift"]')):
                    await page.goto(server.url + address)
                    await expect(page.locator("html")).to_have_attribute("lang", language)
                    where = (username, language, address)
                    # The header's lines: its items' rows (the brand, each link, the two forms).
                    rows = await page.evaluate(
                        "(() => { const tops = [...document.querySelectorAll("
                        "'header.topbar > .brand, header.topbar nav a, header.topbar > form')]"
                        ".map((item) => item.getBoundingClientRect()); const lines = [];"
                        " for (const box of tops)"
                        " if (!lines.some((top) => Math.abs(top - box.top) < box.height / 2))"
                        " lines.push(box.top); const header = document.querySelector('header.topbar');"
                        " return [lines.length, header.getBoundingClientRect().height,"
                        " header.scrollWidth, header.clientWidth]; })()")
                    # The brand and the forms, then the links: one line of them, two for an administrator.
                    lines, height = (2, 80) if username == "supervizor" else (3, 110)
                    assert rows[0] <= lines and rows[1] <= height, (where, rows)
                    assert rows[2] <= rows[3], (where, rows)  # every header item within the screen
                    fits = await page.evaluate(
                        f"(() => {{ const t = document.querySelector('{table}');"
                        " const box = t.closest('.table-wrap');"
                        " return [t.scrollWidth, box.clientWidth, document.documentElement.scrollWidth,"
                        " window.innerWidth]; })()")
                    assert fits[0] <= fits[1], (where, fits)  # the table within its box
                    assert fits[2] <= fits[3], (where, fits)  # nor the page itself
            await context.close()
    finally:
        server.stop()
