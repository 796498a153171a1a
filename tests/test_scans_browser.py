"""An operator's shift in Chromium: scanner keys, auto-submit, live tables, outages."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from quality.accounts import create_user
from quality.localdb import LocalMariaDB
from quality.migrate import migrate
from quality.settings import Settings
from tests.conftest import LiveServer, browser_login, database_for, execute

pytestmark = pytest.mark.browser


async def scan(page: Page, *codes: str) -> None:
    """Type like a keyboard-wedge scanner: each code, then Enter."""
    for code in codes:
        await page.keyboard.type(code, delay=5)
        await page.keyboard.press("Enter")


async def test_scanner_flow_and_live_table_across_processes(
    settings: Settings, browser: Any, make_user: Any
) -> None:
    make_user("olivia", "operator")
    make_user("sven", "supervisor")
    first, second = LiveServer(settings), LiveServer(settings)
    await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
    try:
        operator_context, watcher_context = await browser.new_context(), await browser.new_context()
        operator = await operator_context.new_page()
        watcher = await watcher_context.new_page()
        await browser_login(operator, first, "olivia")
        await operator.goto(first.url + "/scan")
        await browser_login(watcher, second, "sven")  # another process entirely
        await watcher.goto(second.url + "/scan")
        await expect(operator.locator("#operator_code")).to_be_focused()

        await scan(operator, "op07", "CP00012345-0001", "OC12", "OC13")
        await operator.keyboard.type("104", delay=5)  # no Enter, no click: it submits itself
        result = operator.get_by_test_id("scan-result")
        await expect(result).to_have_attribute("data-outcome", "rejected")
        await expect(operator.get_by_test_id("order-counts")).to_have_text(
            "Order CP00012345: 0 approved · 1 rejected")
        await expect(operator.locator("#operator_code")).to_have_value("OP07")
        for field in ("piece_code", "checker1_code", "checker2_code", "defect_code"):
            await expect(operator.locator(f"#{field}")).to_have_value("")
        await expect(operator.locator("#piece_code")).to_be_focused()

        row = watcher.locator("#scan-table tbody tr").first
        await expect(row).to_contain_text("CP00012345-0001", timeout=2000)
        await expect(row).to_contain_text("104 Missing component")

        # the next piece straight away, then a re-scan
        await scan(operator, "CP00012345-0002", "OC12", "OC13", "000")
        await expect(operator.get_by_test_id("saved-piece")).to_have_text("CP00012345-0002")
        await scan(operator, "CP00012345-0001", "OC12", "OC13", "000")
        await expect(operator.get_by_test_id("order-counts")).to_have_text(
            "Order CP00012345: 2 approved · 0 rejected")
        await expect(watcher.locator("#scan-table tbody tr")).to_have_count(3, timeout=2000)
        await expect(watcher.locator("#scan-table tbody tr").first).to_contain_text("re-scan")

        # a wrong code: named beside its field, nothing saved, what was typed stays
        await scan(operator, "XX00012345", "OC12", "OC13", "000")
        await expect(operator.get_by_test_id("piece_code-error")).to_have_text(
            "Piece code must look like CP00012345-0001.")
        await expect(result).to_have_attribute("data-outcome", "invalid")
        await expect(operator.locator("#piece_code")).to_have_value("XX00012345")
        await expect(operator.locator("#piece_code")).to_be_focused()
        assert settings.database_url
        (rows,) = await execute(settings.database_url, "SELECT COUNT(*) FROM scans")
        assert rows == [(3,)]
        await operator_context.close()
        await watcher_context.close()
    finally:
        first.stop()
        second.stop()


async def test_scans_survive_a_database_outage_and_save_once_in_order(
    tmp_path: Path, browser: Any
) -> None:
    server = LocalMariaDB(tmp_path, buffer_pool="32M")
    await asyncio.to_thread(server.ensure_running)
    url = server.url()
    db = database_for(url, maxsize=1)
    await migrate(db)
    await create_user(db, "olga", "correct-horse-42", "operator")
    await db.close()
    settings = Settings(database_url=url, secret_key="outage-test-secret-0123456789",
                        pool_max=3, pool_timeout=1.0)
    app = LiveServer(dataclasses.replace(settings))
    await asyncio.to_thread(app.start)
    try:
        page = await browser.new_page()
        await browser_login(page, app, "olga")
        await page.goto(app.url + "/scan")
        await scan(page, "OP01", "CP00000001-0001", "OC01", "OC02", "000")
        await expect(page.get_by_test_id("scan-result")).to_have_attribute("data-outcome", "approved")

        await asyncio.to_thread(server.stop)
        for piece in ("CP00000001-0002", "CP00000001-0003", "CP00000001-0004"):
            await scan(page, piece, "OC01", "OC02", "104")
            await expect(page.locator("#piece_code")).to_be_focused()
        pending = page.locator("#pending li")
        await expect(pending).to_have_count(3, timeout=5000)
        await expect(pending.first).to_contain_text("CP00000001-0002 · 104 — pending, retrying")
        await expect(page.get_by_test_id("pending")).to_be_visible()

        await page.reload()  # pending scans survive a reload
        await expect(pending).to_have_count(3, timeout=5000)

        await asyncio.to_thread(server.ensure_running)
        await expect(page.get_by_test_id("pending")).to_be_hidden(timeout=20000)
        await expect(page.get_by_test_id("order-counts")).to_have_text(
            "Order CP00000001: 1 approved · 3 rejected")
        (rows,) = await execute(url, "SELECT piece_code FROM scans ORDER BY id")
        assert rows == [("CP00000001-0001",), ("CP00000001-0002",), ("CP00000001-0003",),
                        ("CP00000001-0004",)]
        await page.close()
    finally:
        app.stop()
        await asyncio.to_thread(server.release)


async def test_expired_session_keeps_the_scan_until_signed_in_again(
    live_server: LiveServer, browser: Any, make_user: Any, settings: Settings
) -> None:
    make_user("nina", "operator")
    page = await browser.new_page()
    await browser_login(page, live_server, "nina")
    await page.goto(live_server.url + "/scan")
    assert settings.database_url
    await execute(settings.database_url, "DELETE FROM sessions")  # the shift's session ends

    await scan(page, "OP02", "CP00000002-0001", "OC01", "OC02", "000")
    await expect(page.locator("#pending li")).to_have_count(1, timeout=5000)
    await expect(page.get_by_test_id("pending-note")).to_contain_text("Your session has ended.")
    await page.get_by_role("link", name="sign in again").click()
    await page.get_by_label("User name").fill("nina")
    await page.get_by_label("Password").fill("correct-horse-42")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(live_server.url + "/scan")
    await expect(page.get_by_test_id("saved-piece")).to_have_text("CP00000002-0001", timeout=10000)
    await expect(page.get_by_test_id("pending")).to_be_hidden()
    (rows,) = await execute(settings.database_url, "SELECT COUNT(*) FROM scans")
    assert rows == [(1,)]
    await page.close()
