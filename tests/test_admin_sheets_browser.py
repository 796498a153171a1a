"""The code sheets as a printer gets them: Chromium prints a long defect sheet
to an A4 PDF (pdftoppm makes each page a picture) and lays the defect sheet and
a badge sheet out with the print styles; zbarimg reads every barcode back to
its code."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from quality.settings import Settings
from tests.admin_support import query
from tests.conftest import LiveServer, browser_login, execute

pytestmark = pytest.mark.browser

A4_WIDTH = 794  # px at 96 dpi: 210 mm


async def decoded(page: Page, picture: Path) -> list[str]:
    """The codes zbarimg reads in a full-page picture of the page as printed,
    sorted. Twice the pixels of the screen, so each 0.4 mm module is three pixels."""
    await page.emulate_media(media="print")
    await page.screenshot(path=picture, full_page=True)
    return await zbarimg(picture)


async def zbarimg(picture: Path) -> list[str]:
    """The Code 128 codes zbarimg reads in a picture, sorted."""
    read = await asyncio.to_thread(
        subprocess.run, ["zbarimg", "--quiet", "--raw", "-Sdisable", "-Scode128.enable", str(picture)],
        capture_output=True, text=True, check=False)
    assert read.returncode in (0, 4), read.stderr  # 4: no barcode found
    return sorted(read.stdout.split())


async def test_a_long_defect_sheet_prints_on_a4_pages_with_no_code_cut_across_two(
    settings: Settings, browser: Any, make_user: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    make_user("ada", "admin")
    assert settings.database_url
    await execute(settings.database_url, "INSERT INTO defect_codes (code, name, category, active) VALUES "
                  + ", ".join(f"('{code}', 'Defect {code}', '', 1)" for code in range(500, 540)))
    in_use = sorted(code for (code,) in query(settings, "SELECT code FROM defect_codes WHERE active"))
    page = await (await browser.new_context()).new_page()
    await browser_login(page, live_server, "ada")
    await page.goto(live_server.url + "/admin/defects/sheet")
    await page.pdf(path=tmp_path / "sheet.pdf", format="A4", prefer_css_page_size=True)
    await asyncio.to_thread(subprocess.run, ["pdftoppm", "-png", "-r", "200", str(tmp_path / "sheet.pdf"),
                                             str(tmp_path / "page")], check=True)
    pages = await asyncio.to_thread(lambda: sorted(tmp_path.glob("page-*.png")))
    assert len(pages) == 2
    # A card cut across two pages would read on both, or on neither; the cards
    # start on the first page, under the heading, and fill it before the second.
    read = [await zbarimg(picture) for picture in pages]
    assert read[0] + read[1] == in_use
    assert len(read[0]) == 24


async def test_every_code_of_both_sheets_reads_back_from_the_print(
    settings: Settings, browser: Any, make_user: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    make_user("ada", "admin")
    in_use = sorted(code for (code,) in query(settings, "SELECT code FROM defect_codes WHERE active"))
    context = await browser.new_context(viewport={"width": A4_WIDTH, "height": 1123}, device_scale_factor=2)
    page = await context.new_page()
    refused: list[str] = []  # what the CSP blocks is reported on the console
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    await browser_login(page, live_server, "ada")

    await page.goto(live_server.url + "/admin/defects")
    await page.get_by_role("link", name="Print the sheet of codes in use").click()
    await expect(page.get_by_role("heading", name="Defect code sheet")).to_be_visible()
    assert await decoded(page, tmp_path / "defects.png") == in_use
    await expect(page.locator("header.topbar")).to_be_hidden()  # the header does not print

    await page.emulate_media(media="screen")
    await page.goto(live_server.url + "/admin/users")
    await page.get_by_role("link", name="Print badges for operator and checker codes").click()
    await page.get_by_label("Operator and checker codes, one a line").fill("OP07\nop12\nOC12\nOCZ9")
    await page.get_by_role("button", name="Make the badge sheet").click()
    await expect(page.get_by_test_id("badge-sheet").locator("svg")).to_have_count(4)
    assert await decoded(page, tmp_path / "badges.png") == ["OC12", "OCZ9", "OP07", "OP12"]
    assert refused == []
