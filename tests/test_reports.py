"""Reports: every figure against an independent computation from the raw scans,
and every chart mark a link to the list that holds exactly its scans."""

from __future__ import annotations

import html
import re
from collections import Counter, defaultdict
from datetime import date, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from quality.db import Database
from quality.demo import fill
from quality.lists.filters import read_filter
from quality.reports import build
from quality.scans.store import save_scan
from quality.settings import Settings
from tests.conftest import UTC_SHIFTS, database_for, login, run_async
from tests.test_lists import ZONE, Scan, all_scans, expected_totals, plant_settings
from tests.test_scans_store import scan_input


@pytest.fixture
def settings(db_url: Any) -> Settings:
    return plant_settings(db_url)


def production_shift(scan: Scan) -> tuple[date, int]:
    local = scan.local
    if local.hour < 6:
        return local.date() - timedelta(days=1), 2
    return local.date(), 0 if local.hour < 14 else (1 if local.hour < 22 else 2)


async def test_every_report_figure_matches_an_independent_computation(
        db: Database, settings: Settings, make_user: Any) -> None:
    await fill(db, 3000, 9, ZONE, seed=21)
    make_user("worker", "operator")
    seeded = await all_scans(db)
    for scan in seeded[-600::50]:  # re-scans that flip verdicts of summarised pieces
        await save_scan(db, scan.station, scan_input(scan.piece, "000" if not scan.approved else "301"), 1,
                        UTC_SHIFTS)
    scans = await all_scans(db)
    async with db.transaction() as cur:
        report = await build(cur, read_filter({}, settings).filter)
    assert len(report.days) == 14
    in_range = [s for s in scans if report.start <= s.created_at < report.end]
    assert len(in_range) == len(scans)  # 9 days of demo data, all inside the last 14

    def check(figures: Any, wanted: Any) -> None:
        assert (figures.scans, figures.approved, figures.rejected) == expected_totals(scans, wanted)
        assert dict(figures.defects) == dict(Counter(s.defect for s in scans if wanted(s) and not s.approved))

    check(report.total, lambda s: True)
    days = {production_shift(s)[0] for s in scans}
    assert set(report.by_day) == days
    for day in days:
        check(report.by_day[day], lambda s, day=day: production_shift(s)[0] == day)
        for shift in range(3):
            wanted = lambda s, key=(day, shift): production_shift(s) == key  # noqa: E731
            if (day, shift) in report.by_shift:
                check(report.by_shift[day, shift], wanted)
            else:
                assert not any(wanted(s) for s in scans)
    rejected_by = defaultdict(int)
    for order, figures in report.by_order:
        check(figures, lambda s, order=order: s.order == order)
        rejected_by[order] = figures.rejected
    ranking = sorted({s.order for s in scans}, key=lambda o: (
        -expected_totals(scans, lambda s: s.order == o)[2], -sum(s.order == o for s in scans), o))
    assert [order for order, _ in report.by_order] == ranking[:20]
    for operator, figures in report.by_operator:
        check(figures, lambda s, operator=operator: s.operator == operator)
    assert {op for op, _ in report.by_operator} == {s.operator for s in scans}
    defects = Counter(s.defect for s in scans if not s.approved)
    assert [(code, count) for code, _, count in report.by_defect] == sorted(
        defects.items(), key=lambda item: (-item[1], item[0]))


def test_the_report_page_draws_accessible_charts_whose_marks_lead_to_their_scans(
        client: TestClient, make_user: Any, db_url: Any) -> None:
    async def seed() -> None:
        db = database_for(db_url, query_timeout=60)
        try:
            await fill(db, 800, 4, ZONE, seed=3)
        finally:
            await db.close()

    run_async(seed())
    make_user("sue", "supervisor")
    login(client, "sue")
    page = client.get("/reports", params={"station": "quality"})
    assert page.status_code == 200
    for chart in ("rate-by-day", "top-defects", "heat-map"):
        svg = page.text.split(f'<svg class="chart" id="{chart}"', 1)[1].split("</svg>", 1)[0]
        assert f'aria-labelledby="{chart}-title {chart}-desc"' in svg and "<title" in svg
        marks = re.findall(r'<a href="([^"]+)">(?:<text[^>]*>[^<]*</text>)?<(?:circle|rect)[^>]*>'
                           r"<title>([^<]+)</title>", svg)
        assert marks, chart
        for href, title in marks[:4]:
            url = html.unescape(href)
            assert url.startswith("/scans?") and "station=quality" in url
            counted = client.get(url.replace("/scans?", "/scans/totals?"))
            scans = int(re.search(r'total-scans">([\d,]+)<', counted.text)[1].replace(",", ""))
            if chart == "heat-map":
                assert f", {scans} scans" in html.unescape(title)
            elif chart == "top-defects":
                assert scans == int(re.search(r": (\d+) rejected scans", html.unescape(title))[1])
            else:
                pieces = int(re.search(r"of (\d+) pieces", html.unescape(title))[1])
                shown = re.search(r'total-pieces">([\d,]+)<', counted.text)[1].replace(",", "")
                assert int(shown) == pieces
    assert "@media print" in client.get("/static/app.css").text


def test_a_report_of_an_empty_range_says_so(client: TestClient, make_user: Any) -> None:
    make_user("sue", "supervisor")
    login(client, "sue")
    page = client.get("/reports", params={"from": "2020-01-01", "to": "2020-01-03"})
    assert page.status_code == 200
    assert "No scans in this range." in page.text and "No rejected scans in this range." in page.text
