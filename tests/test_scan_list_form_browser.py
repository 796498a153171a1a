"""The list's filter form in Chromium as a supervisor types into it: what is
typed stays, the focus stays, the results and the address follow the filter,
back and forward bring both back, and a shared link opens the same view."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import expect

from quality.clock import to_plant, to_utc
from quality.demo import fill
from quality.settings import Settings
from tests.conftest import LiveServer, browser_login, database_for
from tests.test_scan_list import PLANT_SHIFTS, ZONE, plant_settings

pytestmark = pytest.mark.browser

KEY_DELAY_MS = 80  # an ordinary typist


@pytest.fixture
def settings(db_url: Any) -> Settings:
    return plant_settings(db_url)


async def _seed(settings: Settings) -> tuple[str, str, str, int]:
    """Demo scans, and a From, To and Operator that pick some of them (with their count)."""
    assert settings.database_url
    db = database_for(settings.database_url, query_timeout=60)
    try:
        await fill(db, 600, 3, PLANT_SHIFTS, seed=19)
        async with db.transaction() as cur:
            await cur.execute("SELECT MIN(created_at), MAX(created_at) FROM scans")
            first, last = await cur.fetchone()
            start = to_plant(first + (last - first) / 4, ZONE).replace(minute=0, second=0, microsecond=0)
            end = start + timedelta(hours=30)
            await cur.execute("SELECT operator_code, COUNT(*) FROM scans"
                              " WHERE created_at >= %s AND created_at < %s GROUP BY operator_code"
                              " ORDER BY COUNT(*) DESC, operator_code LIMIT 1",
                              (to_utc(start), to_utc(end)))
            operator, scans = await cur.fetchone()
    finally:
        await db.close()
    return f"{start:%Y-%m-%dT%H:%M}", f"{end:%Y-%m-%dT%H:%M}", operator, scans


async def test_typing_three_fields_keeps_every_value_the_focus_and_the_address(
        settings: Settings, browser: Any, make_user: Any) -> None:
    start, end, operator, scans = await _seed(settings)
    make_user("sven", "supervisor")
    server = LiveServer(settings, {"QUALITY_TIMEZONE": "Europe/Bucharest"})
    server.start()
    try:
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        await browser_login(page, server, "sven")
        await expect(page).to_have_url(server.url + "/scans")
        fields = {name: page.locator(f'form.filters input[name="{name}"]')
                  for name in ("from", "to", "operator")}
        for name, value in (("from", start), ("to", end), ("operator", operator)):
            await fields[name].click()
            await fields[name].press_sequentially(value, delay=KEY_DELAY_MS)
        # Every value as typed, the caret still at the end of the last field.
        for name, value in (("from", start), ("to", end), ("operator", operator)):
            await expect(fields[name]).to_have_value(value)
        await expect(page).to_have_url(re.compile(rf"operator={operator}"))
        assert await page.evaluate("[document.activeElement.name, document.activeElement.selectionStart]") \
            == ["operator", len(operator)]
        # The results and the address are those of the final filter.
        await expect(page.get_by_test_id("total-scans")).to_have_text(f"{scans:,}")
        assert set(await page.locator("#list-table tbody td:nth-child(3)").all_inner_texts()) == {operator}
        query = parse_qs(urlsplit(page.url).query)
        assert query == {"from": [start], "to": [end], "operator": [operator]}
        shared_url, first_id = page.url, await page.locator("#list-table tbody tr").first.get_attribute(
            "data-scan-id")

        # Back: the filter before the operator, form and results; forward: again with it.
        await page.go_back()
        await expect(page).not_to_have_url(re.compile("operator="))
        await expect(fields["operator"]).not_to_have_value(operator)
        await expect(page.get_by_test_id("total-scans")).not_to_have_text(f"{scans:,}")
        await page.go_forward()
        await expect(fields["operator"]).to_have_value(operator)
        await expect(fields["from"]).to_have_value(start)
        await expect(page.get_by_test_id("total-scans")).to_have_text(f"{scans:,}")

        # A bad date: told beside the field, and the results stay those of the last valid filter.
        await fields["to"].fill("")
        await fields["to"].press_sequentially("2026-02-30", delay=KEY_DELAY_MS)
        await expect(page.get_by_test_id("to-error")).to_be_visible()
        await expect(fields["to"]).to_have_attribute("aria-invalid", "true")
        await expect(fields["to"]).to_have_accessible_name("To")  # the error is said once, as below
        await expect(fields["to"]).to_have_accessible_description(re.compile(r"\S"))
        await expect(page).to_have_url(shared_url)
        await expect(page.get_by_test_id("total-scans")).to_have_text(f"{scans:,}")
        assert await page.evaluate("document.activeElement.name") == "to"

        # The shared link opens the same view in another browser.
        other = await (await browser.new_context()).new_page()
        await browser_login(other, server, "sven")
        await other.goto(shared_url)
        await expect(other.locator('form.filters input[name="operator"]')).to_have_value(operator)
        await expect(other.get_by_test_id("total-scans")).to_have_text(f"{scans:,}")
        await expect(other.locator("#list-table tbody tr").first).to_have_attribute(
            "data-scan-id", first_id or "")
        await context.close()
    finally:
        server.stop()


async def test_a_preset_and_the_calendar_in_romanian_on_the_list_and_the_report(
        settings: Settings, browser: Any, make_user: Any) -> None:
    await _seed(settings)
    make_user("sven", "supervisor")
    server = LiveServer(settings, {"QUALITY_TIMEZONE": "Europe/Bucharest"})
    server.start()
    try:
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        await browser_login(page, server, "sven")
        await page.goto(server.url + "/scans?station=quality")
        await page.get_by_test_id("language").select_option("ro")
        await page.get_by_role("button", name="Change language").click()
        await expect(page).to_have_url(server.url + "/scans?station=quality")  # the page kept
        words = page.get_by_test_id("range-words")
        await expect(words).to_have_text("Oricând")

        # The calendar writes its choice the Romanian way, and the list follows.
        await page.locator('.date-picker[data-for="from"]').fill("2026-11-20T06:00")
        await expect(page.locator('form.filters input[name="from"]')).to_have_value("20.11.2026 06:00")
        await expect(page).to_have_url(re.compile(r"from=20\.11\.2026\+06%3A00"))
        await expect(words).to_have_text("De la 20.11.2026 06:00")

        # A preset empties the dates, and is said back.
        await page.get_by_test_id("range").select_option("yesterday")
        await expect(page).to_have_url(re.compile(r"range=yesterday"))
        await expect(page.locator('form.filters input[name="from"]')).to_have_value("")
        await expect(words).to_contain_text("Ieri, ")

        # The report takes the same preset from its form.
        await page.goto(server.url + "/reports")
        await expect(page.get_by_test_id("range-words")).to_contain_text("Ultimele 14 zile, de la")
        await page.get_by_test_id("range").select_option("shift")
        await expect(page).to_have_url(re.compile(r"/reports\?.*range=shift"))
        await expect(page.get_by_test_id("range-words")).to_contain_text("Tura curentă, de la")
        await context.close()
    finally:
        server.stop()
