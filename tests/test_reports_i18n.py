"""The report's total line is one translated sentence whose plural form
follows the count: Romanian has three (1 scanare, 2 scanări, 20 de scanări)."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from starlette.testclient import TestClient

from quality.i18n import translations
from quality.scans.store import save_scan
from quality.settings import Settings
from tests.conftest import UTC_SHIFTS, database_for, execute, login, run_async
from tests.test_scan_list import plant_settings
from tests.test_scans_store import scan_input

SINGULAR = "%(scans)s scan; pieces approved: %(approved)s, rejected: %(rejected)s; rejection rate: %(rate)s."
PLURAL = "%(scans)s scans; pieces approved: %(approved)s, rejected: %(rejected)s; rejection rate: %(rate)s."


@pytest.fixture
def settings(db_url: Any) -> Settings:
    return plant_settings(db_url)


@pytest.mark.parametrize(("count", "start"), [
    (0, "0 scanări"), (1, "1 scanare"), (2, "2 scanări"), (19, "19 scanări"), (20, "20 de scanări"),
    (101, "101 scanări"), (119, "119 scanări"), (120, "120 de scanări"), (1000, "1000 de scanări"),
])
def test_romanian_has_the_right_plural_form_for_each_count(count: int, start: str) -> None:
    sentence = translations("ro").ngettext(SINGULAR, PLURAL, count) % {
        "scans": count, "approved": 1, "rejected": 2, "rate": "3%"}
    assert sentence == f"{start}; piese aprobate: 1, respinse: 2; rată de respingere: 3%."


def total_line(client: TestClient) -> str:
    page = client.get("/reports", params={"station": "quality"}).text
    found = re.search(r'data-testid="report-total">(.*?)</a>', page, re.DOTALL)
    assert found, page
    return html.unescape(found.group(1)).strip()


def test_the_report_total_is_one_sentence_in_the_users_language(client: TestClient, make_user: Any,
                                                                db_url: Any) -> None:
    make_user("sue", "supervisor")
    make_user("ana", "supervisor")
    run_async(execute(db_url, "UPDATE users SET language = 'ro' WHERE username = 'ana'"))
    login(client, "sue")

    async def scan(pieces: list[str], defect: str) -> None:
        db = database_for(db_url)
        try:
            for piece in pieces:
                await save_scan(db, "quality", scan_input(piece, defect), 1, UTC_SHIFTS)
        finally:
            await db.close()

    run_async(scan(["CP00000001-0001"], "000"))
    assert total_line(client) == "1 scan; pieces approved: 1, rejected: 0; rejection rate: 0.0%."
    login(client, "ana")
    assert total_line(client) == "1 scanare; piese aprobate: 1, respinse: 0; rată de respingere: 0,0\xa0%."
    run_async(scan([f"CP00000001-{n:04d}" for n in range(2, 21)], "104"))
    assert total_line(client) == (
        "20 de scanări; piese aprobate: 1, respinse: 19; rată de respingere: 95,0\xa0%.")
    login(client, "sue")
    assert total_line(client) == "20 scans; pieces approved: 1, rejected: 19; rejection rate: 95.0%."


def test_shares_are_written_as_the_readers_language_writes_them(client: TestClient, make_user: Any,
                                                                db_url: Any) -> None:
    make_user("ana", "supervisor")
    run_async(execute(db_url, "UPDATE users SET language = 'ro' WHERE username = 'ana'"))

    async def scan() -> None:
        db = database_for(db_url)
        try:
            for n, defect in enumerate(["000"] * 7 + ["104"]):
                await save_scan(db, "quality", scan_input(f"CP00000002-{n:04d}", defect), 1, UTC_SHIFTS)
        finally:
            await db.close()

    run_async(scan())
    login(client, "ana")
    totals = client.get("/scans/totals", params={"station": "quality"}).text
    assert re.search(r'data-testid="total-rate">12,5\xa0%<', totals), totals
    report = client.get("/reports", params={"station": "quality"}).text
    by_order = report.split('data-testid="by-order"')[1].split("</table>")[0]
    assert '<td class="num">12,5\xa0%</td>' in by_order  # the table
    rate_chart = report.split('data-testid="rate-by-day"')[1].split("</svg>")[0]
    assert "respinse 12,5\xa0% (1 din 8 piese)" in rate_chart  # a tooltip
    assert "12.5%" not in report
