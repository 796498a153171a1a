"""The scan flow in Romanian, in Chromium: the header's selector, labels, the
script's and the server's inline errors, the result; and the sign-in page in
the browser's language."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from quality.settings import Settings
from tests.conftest import LiveServer, browser_login
from tests.scanner import scan, type_code

pytestmark = pytest.mark.browser


async def test_an_operator_scans_in_romanian(settings: Settings, browser: Any, make_user: Any) -> None:
    make_user("ioana", "operator")
    server = LiveServer(settings)
    server.start()
    try:
        page = await (await browser.new_context(locale="en-US")).new_page()
        await browser_login(page, server, "ioana")
        await page.goto(server.url + "/scan")
        await page.get_by_test_id("language").select_option("ro")
        await page.get_by_role("button", name="Change language").click()

        await expect(page.locator("html")).to_have_attribute("lang", "ro")
        await expect(page.get_by_role("heading", name="Scanare calitate")).to_be_visible()
        await expect(page.get_by_label("Cod piesă")).to_be_visible()
        await expect(page.get_by_text("Încă nu există scanări la acest post.")).to_be_visible()
        await expect(page.locator("#operator_code")).to_be_focused()

        # the script's own message, from the page's translated texts
        await scan(page, "OP07", "ZZ1")
        await expect(page.get_by_test_id("piece_code-error")).to_have_text(
            "Codul nu se potrivește niciunui câmp. „Cod piesă” arată ca CP00012345-0001.")

        await scan(page, "CP00012345-0001", "OC12", "OC13")
        await type_code(page, "000", enter=False)
        await expect(page.get_by_test_id("scan-result")).to_have_attribute("data-outcome", "approved")
        await expect(page.get_by_test_id("scan-result").locator(".verdict")).to_have_text("Aprobat")
        await expect(page.get_by_test_id("order-counts")).to_have_text(
            "Comanda CP00012345: aprobate 1 · respinse 0")
        await expect(page.locator("#scan-table thead")).to_contain_text("Comandă: aprobate / respinse")

        # the server's inline error, in the user's language
        await scan(page, "OC12", "OC13", "XX00012345")
        await page.get_by_role("button", name="Salvează scanarea").click()
        await expect(page.get_by_test_id("piece_code-error")).to_have_text(
            "„Cod piesă” trebuie să arate ca CP00012345-0001.")
        await expect(page.get_by_test_id("scan-result")).to_have_text("Nesalvat — corectați câmpul marcat.")
    finally:
        server.stop()


async def test_the_sign_in_page_speaks_the_browsers_language(
    settings: Settings, browser: Any, make_user: Any
) -> None:
    make_user("ioana", "operator")
    server = LiveServer(settings)
    server.start()
    try:
        context = await browser.new_context(locale="ro-RO", extra_http_headers={"Accept-Language": "ro"})
        page = await context.new_page()
        await page.goto(server.url + "/login")
        await expect(page.locator("html")).to_have_attribute("lang", "ro")
        await page.get_by_label("Nume de utilizator").fill("ioana")
        await page.get_by_label("Parola").fill("not the password")
        await page.get_by_role("button", name="Autentificare").click()
        await expect(page.get_by_test_id("login-error")).to_have_text(
            "Nume de utilizator sau parolă greșite.")
    finally:
        server.stop()
