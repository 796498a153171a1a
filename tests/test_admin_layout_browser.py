"""Issue 21 in Chromium at 1280x900: the permission matrix and the admin forms
fit their boxes in English and Romanian; the matrix saves every row's ticks
with its one button, marks unsaved rows and asks before they are lost;
disabling a user asks first; the admin index leads to an audit log read as
sentences, filtered by an action from its list, refusing an inverted range."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Page, expect

from quality.settings import Settings
from tests.admin_support import query
from tests.conftest import LiveServer, browser_login
from tests.test_admin_users import user_id

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1280, "height": 900}

# How far the matrix's table reaches past its box, and each header's text.
MATRIX = """() => {
    const wrap = document.querySelector('[data-testid=matrix] .table-wrap');
    const table = wrap.querySelector('table');
    const first = table.querySelector('tbody th[scope=row]');
    return {overflow: table.scrollWidth - wrap.clientWidth,
            sticky: getComputedStyle(first).position,
            headers: Array.from(table.querySelectorAll('th[data-permission]'), th => th.innerText.trim()),
            areas: Array.from(table.querySelectorAll('th.area'), th => th.innerText.trim())};
}"""

# Each form field's label beside its box (same row, label left), box and button
# widths, and each checkbox's gap to its label's text, on the current page.
FORMS = """() => {
    const box = el => el.getBoundingClientRect();
    const fields = Array.from(document.querySelectorAll('.form-side .field'), field => {
        const label = box(field.querySelector('span')), input = box(field.querySelector('input, select'));
        return {name: field.htmlFor, beside: label.right <= input.left && label.top < input.bottom
                && input.top < label.bottom, width: input.width};
    });
    const buttons = Array.from(document.querySelectorAll('.form-side button'), b => box(b).width);
    const checks = Array.from(document.querySelectorAll('.form-side .check'), label => {
        const range = document.createRange();
        range.selectNodeContents(label.lastChild);
        return range.getBoundingClientRect().left - box(label.querySelector('input')).right;
    });
    return {fields, buttons, checks, overflow: document.documentElement.scrollWidth - innerWidth};
}"""


async def check_forms(page: Page, url: str) -> None:
    await page.goto(url)
    found = await page.evaluate(FORMS)
    assert found["fields"], url
    assert [field["name"] for field in found["fields"] if not field["beside"]] == [], url
    assert max(field["width"] for field in found["fields"]) <= 460, (url, found["fields"])
    assert max(found["buttons"]) <= 360, (url, found["buttons"])
    assert all(0 <= gap <= 16 for gap in found["checks"]), (url, found["checks"])
    assert found["overflow"] <= 0, url


@pytest.mark.parametrize("language", ["en", "ro"])
async def test_the_matrix_and_the_admin_forms_fit_at_1280(
    settings: Settings, browser: Any, make_user: Any, language: str
) -> None:
    make_user("ada", "admin")
    make_user("olga", "operator")
    query(settings, f"UPDATE users SET language = '{language}' WHERE username = 'ada'")
    server = LiveServer(settings)
    await asyncio.to_thread(server.start)
    try:
        page = await (await browser.new_context(viewport=VIEWPORT)).new_page()
        await browser_login(page, server, "ada")
        await page.goto(server.url + "/admin/roles")
        matrix = await page.evaluate(MATRIX)
        assert matrix["overflow"] <= 0, matrix
        assert matrix["sticky"] == "sticky"
        header, area = {"en": ("Manage users", "Administration"),
                        "ro": ("Administrarea utilizatorilor", "Administrare")}[language]
        assert header in matrix["headers"] and area in matrix["areas"]
        assert not [header for header in matrix["headers"] if "." in header.split()[0]]  # no raw ids
        for url in ("/admin/users", f"/admin/users/{user_id(settings, 'olga')}", "/admin/defects",
                    "/admin/defects/101", "/admin/roles"):
            await check_forms(page, server.url + url)
    finally:
        server.stop()


async def test_the_matrix_saves_two_rows_at_once_and_warns_before_unsaved_ticks_are_lost(
    settings: Settings, browser: Any, make_user: Any
) -> None:
    make_user("ada", "admin")
    make_user("olga", "operator")
    server = LiveServer(settings)
    await asyncio.to_thread(server.start)
    try:
        page = await (await browser.new_context(viewport=VIEWPORT)).new_page()
        dialogs: list[str] = []

        async def stay(dialog: Any) -> None:
            dialogs.append(dialog.type)
            await dialog.dismiss()

        page.on("dialog", lambda dialog: asyncio.ensure_future(stay(dialog)))
        await browser_login(page, server, "ada")
        await page.goto(server.url + "/admin/roles")
        operator, supervisor = page.get_by_test_id("role-operator"), page.get_by_test_id("role-supervisor")
        await expect(page.get_by_test_id("unsaved-summary")).to_be_hidden()
        await operator.get_by_label("operator: View reports").check()
        await expect(operator.get_by_test_id("unsaved")).to_be_visible()
        await expect(supervisor.get_by_test_id("unsaved")).to_be_hidden()
        await supervisor.get_by_label("supervisor: Export scan lists as CSV and XLSX").uncheck()
        await expect(supervisor.get_by_test_id("unsaved")).to_be_visible()
        await expect(page.get_by_test_id("unsaved-summary")).to_be_visible()
        await page.get_by_role("button", name="Save permissions").click()
        await expect(page.get_by_test_id("notice")).to_have_text("Permissions saved.")
        assert dialogs == []  # saving is not leaving

        await page.reload()
        await expect(operator.get_by_label("operator: View reports")).to_be_checked()
        exports = supervisor.get_by_label("supervisor: Export scan lists as CSV and XLSX")
        await expect(exports).not_to_be_checked()
        await expect(page.get_by_test_id("unsaved-summary")).to_be_hidden()

        await operator.get_by_label("operator: View reports").uncheck()
        async with page.expect_event("dialog"):
            await page.locator("a.brand").click()  # leave with a row unsaved
        await asyncio.sleep(0)  # let the handler record and dismiss it
        assert dialogs == ["beforeunload"]
        assert "/admin/roles" in page.url  # dismissed: still here, the tick still there
        await expect(operator.get_by_label("operator: View reports")).not_to_be_checked()

        await operator.get_by_label("operator: View reports").check()  # as saved: leaving is free
        await page.goto(f"{server.url}/admin/users/{user_id(settings, 'olga')}")
        await page.get_by_role("link", name="Disable user…").click()
        await expect(page.get_by_role("heading", name="Disable olga?")).to_be_visible()
        assert query(settings, "SELECT active FROM users WHERE username = 'olga'") == [(1,)]
        await page.get_by_role("button", name="Disable user").click()
        await expect(page.get_by_test_id("notice")).to_have_text("User disabled. Their sessions have ended.")
        assert query(settings, "SELECT active FROM users WHERE username = 'olga'") == [(0,)]
        assert dialogs == ["beforeunload"]
    finally:
        server.stop()


async def test_the_admin_index_leads_to_an_audit_log_read_as_sentences_and_filtered_by_action(
    settings: Settings, browser: Any, make_user: Any
) -> None:
    make_user("ada", "admin")
    make_user("olga", "operator")
    server = LiveServer(settings)
    await asyncio.to_thread(server.start)
    try:
        page = await (await browser.new_context(viewport=VIEWPORT)).new_page()
        await browser_login(page, server, "olga", "not her password")  # a failed sign-in to filter out
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        await browser_login(page, server, "ada")
        await page.goto(server.url + "/admin")
        tiles = page.get_by_test_id("admin-pages").get_by_role("link")
        await expect(tiles).to_have_count(5)
        assert [await tile.get_attribute("href") for tile in await tiles.all()] == [
            "/admin/users", "/admin/roles", "/admin/defects", "/admin/audit", "/admin/alerts"]
        await tiles.filter(has_text="Audit log").click()
        await expect(page).to_have_url(server.url + "/admin/audit")
        sentences = page.get_by_test_id("audit-row").locator(".sentence")
        await expect(sentences).to_contain_text([  # newest first, then the users' creations
            "ada signed in.", "Someone failed to sign in as olga: wrong user name or password.",
            "system created the user olga with the role operator."])

        await page.get_by_label("What").select_option(label="Signed in")
        await page.get_by_role("button", name="Filter").click()
        await expect(sentences).to_have_text(["ada signed in."])
        await expect(page.get_by_label("What")).to_have_value("sign-in.ok")

        await page.get_by_label("From", exact=True).fill("2026-06-10")
        await page.get_by_label("To", exact=True).fill("2026-06-01")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.get_by_test_id("until-error")).to_have_text(
            "The last day is before the first: choose a range that runs forward.")
        await expect(page.locator("#until")).to_have_attribute("aria-invalid", "true")
        await expect(sentences).to_have_count(0)
    finally:
        server.stop()
