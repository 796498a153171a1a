"""A supervisor's filters in Chromium: ticks two stations, picks two defects
from the catalogue's list, types an operator prefix, groups the list by
operator and follows a group to its scans."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from quality.demo import fill
from quality.settings import Settings
from tests.conftest import LiveServer, browser_login, database_for
from tests.test_scan_list import PLANT_SHIFTS, plant_settings

pytestmark = pytest.mark.browser


async def settled(page: Any) -> None:
    """Wait until htmx has swapped in the list (and its form) for the last change."""
    await page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")


@pytest.fixture
def settings(db_url: Any) -> Settings:
    return plant_settings(db_url)


async def test_supervisor_picks_several_values_groups_and_follows_a_group(
        settings: Settings, browser: Any, make_user: Any) -> None:
    assert settings.database_url
    db = database_for(settings.database_url, query_timeout=60)
    try:
        await fill(db, 600, 3, PLANT_SHIFTS, seed=4)
        async with db.transaction() as cur:
            # The two defects the first shift's crew (OPA1 ... OPA4) met most, so the filter finds scans.
            await cur.execute("SELECT defect_code FROM scans WHERE defect_code <> '000'"
                              " AND operator_code LIKE 'OPA%' GROUP BY defect_code"
                              " ORDER BY COUNT(*) DESC, defect_code LIMIT 2")
            defects = sorted(code for (code,) in await cur.fetchall())
    finally:
        await db.close()
    make_user("sven", "supervisor")
    server = LiveServer(settings, {"QUALITY_TIMEZONE": "Europe/Bucharest"})
    server.start()
    try:
        page = await browser.new_page()
        await browser_login(page, server, "sven")
        await page.goto(server.url + "/scans")

        # Both stations ticked: the list keeps both (one parameter, comma-separated).
        stations = page.get_by_test_id("stations")
        await stations.get_by_role("checkbox").nth(0).check()
        await expect(page).to_have_url(re.compile(r"station=quality$"))
        await settled(page)
        await stations.get_by_role("checkbox").nth(1).check()
        await expect(page).to_have_url(re.compile(r"station=quality(%2C|,)fg$"))
        await settled(page)
        # Two defects picked from the catalogue's list.
        await page.get_by_test_id("defects").select_option(defects)
        await expect(page).to_have_url(re.compile(rf"defect={defects[0]}(%2C|,){defects[1]}"))
        await settled(page)
        # An operator prefix, typed: the first shift's crew (OPA1 ... OPA4).
        operator = page.locator('input[name="operator"]')
        await operator.fill("opa")
        await operator.press("Enter")
        await expect(page).to_have_url(re.compile(r"operator=OPA(&|$)"))
        operators = page.locator("#list-table tbody tr td:nth-child(3)")
        await expect(operators.first).to_have_text(re.compile("^OPA"))
        codes = await operators.all_inner_texts()
        assert codes and all(code.startswith("OPA") for code in codes)
        shown_defects = await page.locator("#list-table tbody tr td:nth-child(7) .code").all_inner_texts()
        assert set(shown_defects) <= set(defects)
        assert await page.get_by_test_id("defects").evaluate(
            "select => [...select.selectedOptions].map(option => option.value)") == defects

        # Grouped by operator: one row per operator of the crew, each a link to its scans.
        await page.get_by_test_id("group").select_option("operator")
        groups = page.get_by_test_id("group-link")
        await expect(groups.first).to_be_visible()
        names = await groups.all_inner_texts()
        assert names and all(name.startswith("OPA") for name in names)
        first_row = page.locator('[data-testid="groups"] tbody tr').first
        first_scans = await first_row.locator("td").first.inner_text()
        await groups.first.click()
        await expect(page).to_have_url(re.compile(rf"operator={names[0]}(&|$)"))
        await expect(page.get_by_test_id("total-scans")).to_have_text(first_scans)
        assert set(await page.locator("#list-table tbody tr td:nth-child(3)").all_inner_texts()) == {names[0]}
    finally:
        server.stop()
