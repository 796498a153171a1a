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
from tests.scanner import scan, type_code

pytestmark = pytest.mark.browser


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
        await type_code(operator, "104", enter=False)  # no Enter, no click: it submits itself
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

        # a wrong code sent by hand: the server names it beside its field,
        # nothing is saved, what was typed stays
        await scan(operator, "OC12", "OC13", "XX00012345")
        await operator.get_by_role("button", name="Save scan").click()
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


async def until_signed_out(page: Page, server: LiveServer) -> None:
    """Until the server acts on a session's end (within the second it may trust a
    session it checked); bounded, generous for a loaded machine."""
    for _ in range(150):
        answer = await page.request.get(server.url + "/", max_redirects=0)
        if answer.status == 303:
            return
        await page.wait_for_timeout(100)
    raise AssertionError("the server never saw the session end")


async def test_expired_session_keeps_the_scan_until_signed_in_again(
    live_server: LiveServer, browser: Any, make_user: Any, settings: Settings
) -> None:
    make_user("nina", "operator")
    page = await browser.new_page()
    await browser_login(page, live_server, "nina")
    await page.goto(live_server.url + "/scan")
    assert settings.database_url
    await execute(settings.database_url, "DELETE FROM sessions")  # the shift's session ends
    await until_signed_out(page, live_server)

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


async def test_pending_scans_stay_with_the_user_who_made_them(
    live_server: LiveServer, browser: Any, make_user: Any, settings: Settings
) -> None:
    make_user("amy", "operator")
    make_user("bob", "operator")
    page = await browser.new_page()
    await browser_login(page, live_server, "amy")
    await page.goto(live_server.url + "/scan")

    async def unreachable(route: Any) -> None:
        if route.request.method == "POST":
            await route.abort()
        else:
            await route.continue_()

    await page.route("**/scan", unreachable)  # amy's scan cannot be sent
    await scan(page, "OP01", "CP00000001-0001", "OC01", "OC02", "000")
    await expect(page.locator("#pending li")).to_have_count(1, timeout=5000)
    warnings: list[str] = []

    async def answer(dialog: Any) -> None:
        warnings.append(dialog.message)
        await dialog.accept()

    page.on("dialog", answer)
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(live_server.url + "/login")
    assert warnings and "not saved yet" in warnings[0]
    page.remove_listener("dialog", answer)
    await page.unroute("**/scan", unreachable)

    # bob at the same terminal: his own scan is sent, amy's is not
    await browser_login(page, live_server, "bob")
    await page.goto(live_server.url + "/scan")
    await expect(page.get_by_test_id("pending")).to_be_hidden()
    await scan(page, "OP02", "CP00000002-0001", "OC01", "OC02", "000")
    await expect(page.get_by_test_id("saved-piece")).to_have_text("CP00000002-0001", timeout=10000)
    await page.get_by_role("button", name="Sign out").click()  # nothing pending: no question
    await expect(page).to_have_url(live_server.url + "/login")

    # amy again: her scan is sent, under her name
    await browser_login(page, live_server, "amy")
    await page.goto(live_server.url + "/scan")
    await expect(page.get_by_test_id("saved-piece")).to_have_text("CP00000001-0001", timeout=10000)
    assert settings.database_url
    (rows,) = await execute(
        settings.database_url,
        "SELECT s.piece_code, u.username FROM scans s JOIN users u ON u.id = s.created_by"
        " ORDER BY s.id")
    assert rows == [("CP00000002-0001", "bob"), ("CP00000001-0001", "amy")]
    await page.close()


# -- scanning mistakes: codes go where they belong -------------------------------

SCAN_COLUMNS = "operator_code, piece_code, checker1_code, checker2_code, defect_code"


async def open_station(browser: Any, server: LiveServer, make_user: Any) -> Page:
    make_user("oscar", "operator")
    page = await browser.new_page()
    await browser_login(page, server, "oscar")
    await page.goto(server.url + "/scan")
    await expect(page.locator("#operator_code")).to_be_focused()
    return page


async def saved_scans(settings: Settings) -> list[tuple[Any, ...]]:
    assert settings.database_url
    (rows,) = await execute(settings.database_url, f"SELECT {SCAN_COLUMNS} FROM scans ORDER BY id")
    return rows


async def expect_clean_form(page: Page, operator_code: str) -> None:
    """Ready for the next piece: operator kept, the rest empty and unmarked, focus on the piece."""
    await expect(page.locator("#operator_code")).to_have_value(operator_code)
    for field in ("piece_code", "checker1_code", "checker2_code", "defect_code"):
        await expect(page.locator(f"#{field}")).to_have_value("")
    await expect(page.locator("#scan-form [aria-invalid]")).to_have_count(0)
    await expect(page.locator("#piece_code")).to_be_focused()


async def test_a_badge_scanned_where_the_piece_belongs_goes_to_its_field(
    live_server: LiveServer, browser: Any, make_user: Any, settings: Settings
) -> None:
    page = await open_station(browser, live_server, make_user)
    await scan(page, "OP07")
    await scan(page, "OC12")  # the checker's badge, where the piece code belongs
    await expect(page.locator("#checker1_code")).to_have_value("OC12")
    await expect(page.locator("#piece_code")).to_have_value("")
    await expect(page.locator("#piece_code")).to_be_focused()

    # the operator scans the intended sequence all the same, badge included
    await scan(page, "CP00012345-0001", "OC12", "OC13", "000")
    await expect(page.get_by_test_id("saved-piece")).to_have_text("CP00012345-0001")
    await expect_clean_form(page, "OP07")
    await expect(page.get_by_test_id("pending")).to_be_hidden()
    assert await saved_scans(settings) == [("OP07", "CP00012345-0001", "OC12", "OC13", "000")]

    # an operator badge where the piece belongs replaces the operator code
    await scan(page, "OP08")
    await expect(page.locator("#operator_code")).to_have_value("OP08")
    await expect(page.locator("#piece_code")).to_have_value("")
    await expect(page.locator("#piece_code")).to_be_focused()
    await page.close()


async def test_codes_scanned_in_any_order_save_the_same_scan(
    live_server: LiveServer, browser: Any, make_user: Any, settings: Settings
) -> None:
    page = await open_station(browser, live_server, make_user)
    await scan(page, "000", "OC12", "CP00012345-0001", "OC13")
    await expect(page.get_by_test_id("scan-result")).to_have_attribute("data-outcome", "")
    await expect(page.locator("#operator_code")).to_be_focused()  # the one still missing
    await scan(page, "op07")
    await expect(page.get_by_test_id("saved-piece")).to_have_text("CP00012345-0001")
    await expect_clean_form(page, "OP07")

    await scan(page, "104", "OC12", "OC13", "CP00012345-0002")
    await expect(page.get_by_test_id("saved-piece")).to_have_text("CP00012345-0002")
    await expect_clean_form(page, "OP07")
    assert await saved_scans(settings) == [
        ("OP07", "CP00012345-0001", "OC12", "OC13", "000"),
        ("OP07", "CP00012345-0002", "OC12", "OC13", "104"),
    ]
    await page.close()


async def test_a_code_no_field_takes_stays_marked_until_the_next_scan_replaces_it(
    live_server: LiveServer, browser: Any, make_user: Any, settings: Settings
) -> None:
    make_user("oscar", "operator")
    page = await browser.new_page()
    # count the tones played, to hear the error sound without a speaker
    await page.add_init_script(
        "window.tones = 0;"
        "const create = AudioContext.prototype.createOscillator;"
        "AudioContext.prototype.createOscillator = function () {"
        "  window.tones += 1; return create.call(this); };"
    )
    await browser_login(page, live_server, "oscar")
    await page.goto(live_server.url + "/scan")
    await page.locator("#beep").check()
    await page.locator("#operator_code").focus()
    piece = page.locator("#piece_code")

    await scan(page, "OP07", "XX12-34")
    await expect(piece).to_have_value("XX12-34")
    await expect(piece).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_test_id("piece_code-error")).to_have_text(
        "Not a code any field takes. Piece code looks like CP00012345-0001.")
    await expect(piece).to_be_focused()
    assert await piece.evaluate("field => [field.selectionStart, field.selectionEnd]") == [0, 7]
    assert await page.evaluate("window.tones") == 1

    await scan(page, "CP00012345-0001")  # replaces the marked code
    await expect(piece).to_have_value("CP00012345-0001")
    await expect(page.get_by_test_id("piece_code-error")).to_have_count(0)
    await expect(page.locator("#checker1_code")).to_be_focused()

    # a third checker badge has no field left: marked where it was scanned
    await scan(page, "OC12", "OC13", "OC14")
    defect = page.locator("#defect_code")
    await expect(defect).to_have_value("OC14")
    await expect(page.get_by_test_id("defect_code-error")).to_have_text(
        "Every field for this code already holds one.")
    await scan(page, "000")
    await expect(page.get_by_test_id("saved-piece")).to_have_text("CP00012345-0001")
    await expect_clean_form(page, "OP07")
    assert await saved_scans(settings) == [("OP07", "CP00012345-0001", "OC12", "OC13", "000")]
    await page.close()


async def test_scans_made_after_focus_left_the_form_are_saved(
    live_server: LiveServer, browser: Any, make_user: Any, settings: Settings
) -> None:
    page = await open_station(browser, live_server, make_user)
    await scan(page, "OP07")
    await page.get_by_role("heading", name="Quality scan").click()  # focus leaves the form
    await expect(page.locator("body")).to_be_focused()
    await scan(page, "OC12")
    await expect(page.locator("#checker1_code")).to_have_value("OC12")
    await expect(page.locator("#piece_code")).to_be_focused()  # back to the first empty field

    await page.locator("#scan-table-wrap").click()
    await scan(page, "CP00012345-0001", "OC13")
    await page.locator("#beep").focus()  # inside the form, but not a field
    await scan(page, "000")
    await expect(page.get_by_test_id("saved-piece")).to_have_text("CP00012345-0001")
    await expect_clean_form(page, "OP07")
    assert await page.locator("#beep").is_checked() is False
    assert await saved_scans(settings) == [("OP07", "CP00012345-0001", "OC12", "OC13", "000")]
    await page.close()


async def test_a_person_typing_slowly_is_not_hijacked(
    live_server: LiveServer, browser: Any, make_user: Any, settings: Settings
) -> None:
    page = await open_station(browser, live_server, make_user)
    piece, checker1 = page.locator("#piece_code"), page.locator("#checker1_code")
    await scan(page, "OP07")
    # a checker code typed by hand into the piece field: nothing moves before Enter
    await page.keyboard.type("oc12", delay=150)
    await page.wait_for_timeout(500)
    await expect(piece).to_have_value("oc12")
    await expect(checker1).to_have_value("")
    await expect(piece).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(checker1).to_have_value("OC12")
    await expect(piece).to_be_focused()

    # slow keys outside the form are a person's, not a scan: nothing caught
    await page.get_by_role("heading", name="Quality scan").click()
    await page.keyboard.type("CP00012345-0001", delay=150)
    await page.keyboard.press("Enter")
    await page.wait_for_timeout(300)
    await expect(piece).to_have_value("")
    await expect(page.locator("body")).to_be_focused()

    await piece.click()
    await page.keyboard.type("CP00012345-0001", delay=150)
    await page.keyboard.press("Enter")
    await expect(page.locator("#checker2_code")).to_be_focused()
    await page.keyboard.type("OC13", delay=150)
    await page.keyboard.press("Enter")
    await page.keyboard.type("104", delay=150)  # a whole scan: sent without Enter
    await expect(page.get_by_test_id("saved-piece")).to_have_text("CP00012345-0001")
    assert await saved_scans(settings) == [("OP07", "CP00012345-0001", "OC12", "OC13", "104")]
    await page.close()
