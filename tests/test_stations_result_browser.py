"""What an operator sees at a glance in Chromium: the last verdict large with the
previous ones below, the operator's scans this shift, and the re-scan marker
before the save."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import Page, Route, expect

from quality.clock import utc_now
from quality.settings import Settings
from quality.shifts import Shifts
from tests.conftest import LiveServer, browser_login, execute
from tests.scanner import scan

pytestmark = pytest.mark.browser


async def open_station(browser: Any, server: LiveServer, make_user: Any, name: str) -> Page:
    make_user(name, "operator")
    page = await browser.new_page()
    await browser_login(page, server, name)
    await page.goto(server.url + "/scan")
    await expect(page.locator("#operator_code")).to_be_focused()
    return page


async def seed_scans(settings: Settings, rows: list[tuple[str, str, Any]]) -> None:
    """Scans written straight into the table, as another process or an import would."""
    assert settings.database_url
    await execute(settings.database_url, *(
        "INSERT INTO scans (station, submission_id, operator_code, piece_code, order_code,"
        " checker1_code, checker2_code, defect_code, approved, created_at, created_by)"
        f" VALUES ('{station}', UNHEX('{secrets.token_hex(16)}'), '{operator}',"
        f" 'CP00099999-{n:04d}', 'CP00099999', 'OC01', 'OC02', '000', TRUE, '{at}',"
        " (SELECT MIN(id) FROM users))"
        for n, (station, operator, at) in enumerate(rows)))


async def test_the_last_verdict_is_large_the_previous_stay_below_and_the_counter_rises(
    live_server: LiveServer, browser: Any, make_user: Any, settings: Settings
) -> None:
    make_user("seeder", "operator")
    start, _ = Shifts.of_plant(settings).around(utc_now())
    await seed_scans(settings, [
        ("quality", "OP07", start - timedelta(seconds=1)),  # the shift before: not counted
        ("quality", "OP08", start),  # another operator: not counted
        ("fg", "OP07", start),  # another station: not counted
        ("quality", "OP07", start),  # this operator, this shift, here: counted
    ])
    page = await open_station(browser, live_server, make_user, "vera")
    counter = page.get_by_test_id("operator-count")
    result = page.get_by_test_id("scan-result")
    previous = page.get_by_test_id("previous-result")

    await scan(page, "OP07")
    await expect(counter).to_have_text("1 scan this shift")
    await scan(page, "CP00012345-0001", "OC12", "OC13", "000")
    await expect(result).to_have_attribute("data-outcome", "approved")
    await expect(page.get_by_test_id("verdict")).to_have_text("Approved")
    await expect(counter).to_have_text("2 scans this shift")
    await expect(page.get_by_test_id("scan-history")).to_be_hidden()
    verdict = page.get_by_test_id("verdict")
    assert await verdict.evaluate("e => parseFloat(getComputedStyle(e).fontSize)") >= 40
    assert "✓" in await verdict.evaluate("e => getComputedStyle(e, '::before').content")

    await scan(page, "CP00012345-0002", "OC12", "OC13", "104")
    await expect(result).to_have_attribute("data-outcome", "rejected")
    await expect(page.get_by_test_id("verdict")).to_have_text("Rejected")
    await expect(page.get_by_test_id("saved-defect")).to_have_text("104 Missing component")
    assert "✗" in await verdict.evaluate("e => getComputedStyle(e, '::before').content")
    await expect(counter).to_have_text("3 scans this shift")
    await expect(previous).to_have_count(1)
    await expect(previous.first).to_contain_text("Approved")
    await expect(previous.first).to_contain_text("CP00012345-0001")
    smaller = await previous.first.locator(".verdict").evaluate(
        "e => parseFloat(getComputedStyle(e).fontSize)")
    assert smaller < await verdict.evaluate("e => parseFloat(getComputedStyle(e).fontSize)") / 2

    for piece, defect in (("CP00012345-0003", "000"), ("CP00012345-0004", "101"),
                          ("CP00012345-0005", "000")):
        await scan(page, piece, "OC12", "OC13", defect)
        await expect(page.get_by_test_id("saved-piece")).to_have_text(piece)
    await expect(counter).to_have_text("6 scans this shift")
    await expect(previous).to_have_count(3)  # the three before the last, newest first
    for index, piece in enumerate(("CP00012345-0004", "CP00012345-0003", "CP00012345-0002")):
        await expect(previous.nth(index)).to_contain_text(piece)
    await expect(page.get_by_test_id("saved-piece")).to_have_count(1)  # copies carry no test ids

    # another operator's badge: their own count, from the server
    await scan(page, "OP08")
    await expect(counter).to_have_text("1 scan this shift")
    assert settings.database_url
    (rows,) = await execute(
        settings.database_url,
        "SELECT operator_code, scans FROM operator_shift_scans WHERE station = 'quality'")
    assert rows == [("OP07", 6)]
    await page.close()


async def test_a_piece_scanned_before_is_marked_before_the_save(
    live_server: LiveServer, browser: Any, make_user: Any, settings: Settings
) -> None:
    page = await open_station(browser, live_server, make_user, "rita")
    notice = page.get_by_test_id("rescan-notice")
    await scan(page, "OP07")

    async def scan_piece(piece: str) -> None:
        """Scan a piece code and wait for the page's question about it."""
        async with page.expect_response(lambda answer: "/scan/piece?" in answer.url):
            await scan(page, piece)

    await scan_piece("CP00012345-0001")  # never scanned: nothing to say
    await expect(notice).to_be_hidden()
    await scan(page, "OC12", "OC13", "104")
    await expect(page.get_by_test_id("saved-piece")).to_have_text("CP00012345-0001")

    await scan(page, "CP00012345-0001")
    await expect(notice).to_have_text(
        "Re-scan of a rejected piece (104 Missing component) CP00012345-0001")
    await expect(notice).to_be_visible()
    await expect(page.locator("#defect_code")).to_have_value("")  # before the save
    await expect(page.locator("#checker1_code")).to_be_focused()
    await scan(page, "OC12", "OC13", "000")
    await expect(page.get_by_test_id("saved-rescan")).to_have_text(
        "Re-scan of a rejected piece (104 Missing component)")
    await expect(notice).to_be_hidden()  # the next piece has said nothing yet

    await scan_piece("CP00012345-0002")
    await expect(notice).to_be_hidden()
    await scan(page, "CP00012345-0001")  # replaces the piece in the form
    await expect(notice).to_have_text("Re-scan of an approved piece CP00012345-0001")
    await scan(page, "CP00012345-0003")  # and another one: the marker goes at once
    await expect(notice).to_be_hidden()
    await scan(page, "OC12", "OC13", "000")
    await expect(page.get_by_test_id("saved-piece")).to_have_text("CP00012345-0003")

    # An answer that comes late never holds up the scan, and is dropped once the
    # form holds another piece.
    release = asyncio.Event()

    async def late(route: Route) -> None:
        await release.wait()
        with contextlib.suppress(Exception):  # the page may have given up on it: as intended
            await route.continue_()

    asks_for_0001 = lambda url: url.endswith("/scan/piece?code=CP00012345-0001")  # noqa: E731
    await page.route(asks_for_0001, late)
    await scan(page, "CP00012345-0001", "OC12", "OC13", "104")
    await expect(page.get_by_test_id("saved-piece")).to_have_text("CP00012345-0001")
    await expect(page.get_by_test_id("saved-rescan")).to_have_text("Re-scan of an approved piece")
    await scan(page, "CP00012345-0004")
    release.set()
    await page.wait_for_timeout(500)
    await expect(notice).to_be_hidden()
    await page.unroute(asks_for_0001, late)

    # A server that cannot answer: nothing is shown, and the scan goes on as ever.
    async def busy(route: Route) -> None:
        await route.fulfill(status=503, body="")

    await page.route(lambda url: "/scan/piece?" in url, busy)
    await scan(page, "CP00012345-0003")
    await page.wait_for_timeout(500)
    await expect(notice).to_be_hidden()
    await scan(page, "OC12", "OC13", "000")
    await expect(page.get_by_test_id("saved-piece")).to_have_text("CP00012345-0003")
    await expect(page.get_by_test_id("saved-rescan")).to_have_text("Re-scan of an approved piece")
    assert settings.database_url
    (rows,) = await execute(settings.database_url, "SELECT COUNT(*) FROM scans")
    assert rows == [(5,)]
    await page.close()


async def test_the_result_turns_amber_whenever_the_form_shows_an_error(
    live_server: LiveServer, browser: Any, make_user: Any, settings: Settings
) -> None:
    page = await open_station(browser, live_server, make_user, "ilse")
    result = page.get_by_test_id("scan-result")
    amber = "rgb(255, 242, 214)"  # --warn-bg
    background = "e => getComputedStyle(e).backgroundColor"
    await scan(page, "OP07", "CP00012345-0001", "OC12", "OC13", "000")
    await expect(result).to_have_attribute("data-outcome", "approved")

    # the page's own routing refuses a code: the green verdict goes below, amber takes its place
    await scan(page, "XX12-34")
    await expect(page.get_by_test_id("piece_code-error")).to_be_visible()
    await expect(result).to_have_attribute("data-outcome", "invalid")
    await expect(result).to_have_text("Not saved — correct the marked field.")
    assert await result.evaluate(background) == amber
    await expect(page.get_by_test_id("previous-result")).to_contain_text("Approved")

    # the server refuses one (a defect code the catalogue lacks): amber too
    await scan(page, "CP00012345-0002", "OC12", "OC13", "000")
    await expect(result).to_have_attribute("data-outcome", "approved")
    await scan(page, "CP00012345-0003", "OC12", "OC13", "999")
    await expect(page.get_by_test_id("defect_code-error")).to_have_text("Unknown defect code.")
    await expect(result).to_have_attribute("data-outcome", "invalid")
    assert await result.evaluate(background) == amber
    assert settings.database_url
    (rows,) = await execute(settings.database_url, "SELECT COUNT(*) FROM scans")
    assert rows == [(2,)]
    await page.close()


# What the latest-scans table's width is measured against: the table itself,
# its box, and each order-count cell's right edge against the box's.
FIT = """wrap => {
  const box = wrap.getBoundingClientRect();
  const table = wrap.querySelector('table');
  const counts = [...table.querySelectorAll('tr > :last-child')].map(c => c.getBoundingClientRect().right);
  return {box: wrap.clientWidth, table: table.getBoundingClientRect().width, scroll: wrap.scrollWidth,
          overhang: Math.max(...counts) - box.right};
}"""


async def test_the_latest_scans_fit_a_tablet_with_the_order_counts_in_view(
    live_server: LiveServer, browser: Any, make_user: Any, settings: Settings
) -> None:
    assert settings.database_url
    await execute(settings.database_url, "INSERT INTO defect_codes (code, name) VALUES"
                  " ('302', 'Paint run on the visible face, to rework at the paint line')")
    make_user("tina", "operator")
    context = await browser.new_context(viewport={"width": 1024, "height": 768})
    page = await context.new_page()
    await browser_login(page, live_server, "tina")
    await page.goto(live_server.url + "/scan")
    await scan(page, "OP07", "CP00012345-0001", "OC12", "OC13", "302")
    await scan(page, "CP00012345-0001", "OC12", "OC13", "103")  # a re-scan, tagged
    await scan(page, "CP00012345-0002", "OC12", "OC13", "000")
    rows = page.locator("#scan-table tbody tr")
    await expect(rows).to_have_count(3)
    for language, counts in (("en", "Order: approved / rejected"), ("ro", "Comandă: aprobate / respinse")):
        await page.get_by_test_id("language").select_option(language)
        await page.locator("form.language button").click()
        await expect(page.locator("html")).to_have_attribute("lang", language)
        await expect(rows).to_have_count(3)
        await expect(page.locator("#scan-table th").last).to_have_text(counts)
        fit = await page.locator("#scan-table-wrap").evaluate(FIT)
        assert fit["table"] <= fit["box"] and fit["scroll"] <= fit["box"], (language, fit)
        assert fit["overhang"] <= 0, (language, fit)
        await expect(rows.first.locator("td").last).to_contain_text("1 / 1")
    await context.close()
