"""Reports: every figure against an independent computation from the raw scans,
and every chart mark a link to the list that holds exactly its scans."""

from __future__ import annotations

import html
import itertools
import re
import secrets
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

from quality.db import Database
from quality.demo import fill, rebuild_counters
from quality.i18n import percent, translator
from quality.pages.reports import charts
from quality.pages.reports.charts import rate_axis
from quality.pages.reports.report import Links, Report, build
from quality.scan_filter import read_filter
from quality.scans.store import save_scan
from quality.settings import Settings
from quality.summary.query import Question, aggregate
from quality.summary.tables import layout_of
from quality.summary.writer import summarise_all, summarise_once
from tests.conftest import UTC_SHIFTS, database_for, execute, login, run_async
from tests.test_scan_list import (
    PLANT_SHIFTS,
    ZONE,
    Scan,
    all_scans,
    expected_totals,
    local_day_start,
    plant_settings,
    scans_in,
)
from tests.test_scans_store import scan_input
from tests.test_summary import age_shift_state, shift_state


@pytest.fixture
def settings(db_url: Any) -> Settings:
    return plant_settings(db_url)


def production_shift(scan: Scan) -> tuple[date, int]:
    local = scan.local
    if local.hour < 6:
        return local.date() - timedelta(days=1), 2
    return local.date(), 0 if local.hour < 14 else (1 if local.hour < 22 else 2)


def check_report(report: Report, scans: list[Scan], wanted: Callable[[Scan], bool] = lambda s: True) -> None:
    """Every figure of the report against the raw scans of its range (and `wanted`)."""

    def within(s: Scan) -> bool:
        return report.start <= s.created_at < report.end and wanted(s)

    def check(figures: Any, chosen: Callable[[Scan], bool]) -> None:
        def both(s: Scan) -> bool:
            return within(s) and chosen(s)
        assert (figures.scans, figures.approved, figures.rejected) == expected_totals(scans, both)
        assert dict(figures.defects) == dict(Counter(s.defect for s in scans if both(s) and not s.approved))

    check(report.total, lambda s: True)
    days = {production_shift(s)[0] for s in scans if within(s)}
    assert set(report.by_day) == days
    for day in days:
        check(report.by_day[day], lambda s, day=day: production_shift(s)[0] == day)
        for shift in range(3):
            key = (day, shift)
            if key in report.by_shift:
                check(report.by_shift[key], lambda s, key=key: production_shift(s) == key)
            else:
                assert not any(within(s) and production_shift(s) == key for s in scans)
    for order, figures in report.by_order:
        check(figures, lambda s, order=order: s.order == order)
    assert [order for order, _ in report.by_order] == ranking(scans, within, lambda s: s.order)[:20]
    for operator, figures in report.by_operator:
        check(figures, lambda s, operator=operator: s.operator == operator)
    assert [op for op, _ in report.by_operator] == ranking(scans, within, lambda s: s.operator)[:20]
    defects = Counter(s.defect for s in scans if within(s) and not s.approved)
    assert [(code, count) for code, _, count in report.by_defect] == sorted(
        defects.items(), key=lambda item: (-item[1], item[0]))


def ranking(scans: list[Scan], wanted: Callable[[Scan], bool], name: Callable[[Scan], str]) -> list[str]:
    """Group names, most rejected pieces first, then most scans, then by name."""
    names = {name(s) for s in scans if wanted(s)}

    def key(group: str) -> tuple[int, int, str]:
        scans_, _, rejected = expected_totals(scans, lambda s: wanted(s) and name(s) == group)
        return -rejected, -scans_, group
    return sorted(names, key=key)


async def rescan(db: Database, scans: list[Scan]) -> None:
    """Scan these pieces again with the other verdict."""
    for scan in scans:
        await save_scan(db, scan.station, scan_input(scan.piece, "000" if not scan.approved else "301"), 1,
                        UTC_SHIFTS)


async def report_of(db: Database, settings: Settings, params: dict[str, str]) -> Report:
    return await build(db, read_filter(params, settings).filter)


async def test_every_report_figure_matches_an_independent_computation(
        db: Database, settings: Settings, make_user: Any) -> None:
    await fill(db, 3000, 9, PLANT_SHIFTS, seed=21)
    make_user("worker", "operator")
    seeded = await all_scans(db)
    # Re-scans that flip verdicts of summarised pieces scanned days and hours
    # before: not summarised yet, then summarised (moving pieces between days).
    await rescan(db, seeded[-600::50] + seeded[:900:75])
    for summarised in (False, True):
        if summarised:
            await summarise_all(db, PLANT_SHIFTS)
        scans = await all_scans(db)
        report = await report_of(db, settings, {})
        assert len(report.days) == 14
        assert all(report.start <= s.created_at < report.end for s in scans)  # 9 days, all inside 14
        check_report(report, scans)
        # Partial hours and days at both ends, one station.
        start, end = local_day_start(-6) + timedelta(hours=7, minutes=20), local_day_start(-1) + timedelta(
            hours=13, minutes=10)
        report = await report_of(db, settings, {"from": start.strftime("%Y-%m-%dT%H:%M"),
                                                "to": end.strftime("%Y-%m-%dT%H:%M"), "station": "quality"})
        check_report(report, scans, lambda s: s.station == "quality")


async def test_a_report_needs_no_second_connection(db: Database, db_url: Any, settings: Settings) -> None:
    """`build` reads on two connections at once; with a pool of one, the two
    halves take turns and the figures are the same."""
    await fill(db, 400, 3, PLANT_SHIFTS, seed=8)
    scans = await all_scans(db)
    single = database_for(db_url, maxsize=1, timeout=30.0)
    try:
        check_report(await report_of(single, settings, {}), scans)
    finally:
        await single.close()


async def test_the_top_groups_are_exact_while_new_scans_change_the_ranking(
        db: Database, settings: Settings, make_user: Any) -> None:
    await fill(db, 4000, 6, PLANT_SHIFTS, seed=5)
    make_user("worker", "operator")
    # All time (whole days), and plant days from mid-morning to mid-afternoon
    # (partial UTC days at both ends: the days rank, the hours are added).
    start, end = local_day_start(-4) + timedelta(hours=7, minutes=20), local_day_start(-1) + timedelta(
        hours=13, minutes=10)
    filters = [(read_filter({}, settings).filter, lambda s: True),
               (read_filter({"from": start.strftime("%Y-%m-%dT%H:%M"), "to": end.strftime("%Y-%m-%dT%H:%M")},
                            settings).filter, lambda s: start <= s.local < end)]

    async def check() -> None:
        scans = await all_scans(db)
        for (scan_filter, within), top in itertools.product(filters, (1, 3, 5, 8)):
            async with db.transaction(snapshot=True) as cur:
                ranked = await aggregate(cur, Question.ranked(scan_filter, "order", top))
            assert list(ranked) == ranking(scans, within, lambda s: s.order)[:top]
            for order, figures in ranked.items():
                assert (figures.scans, figures.approved, figures.rejected) == expected_totals(
                    scans, lambda s, order=order, within=within: within(s) and s.order == order)

    await check()
    # The leading orders' rejected pieces approved on re-scan (not summarised yet):
    # they fall down the ranking, and others come up from beyond the top.
    scans = await all_scans(db)
    leaders = ranking(scans, lambda s: True, lambda s: s.order)[:3]
    latest = {(s.station, s.piece): s for s in scans}
    await rescan(db, [s for s in latest.values() if s.order in leaders and not s.approved])
    await check()
    await summarise_all(db, PLANT_SHIFTS)
    await check()


async def test_a_report_reads_whole_shifts_only_from_a_table_holding_its_shifts(
        db: Database, db_url: Any, settings: Settings, make_user: Any) -> None:
    await fill(db, 1500, 5, PLANT_SHIFTS, seed=12)
    make_user("worker", "operator")
    scans = await all_scans(db)
    check_report(await report_of(db, settings, {}), scans)
    # A count written into the plant's first shift only scan_shifts holds:
    # the plant's report shows it, a report of other shifts does not.
    async with db.transaction() as cur:
        await cur.execute("UPDATE scan_shifts SET scans = scans + 1000 ORDER BY shift_hour LIMIT 1")
    assert (await report_of(db, settings, {})).total.scans == len(scans) + 1000
    utc = Settings(**{**vars(settings), "timezone": ZoneInfo("UTC")})
    report = await report_of(db, utc, {})
    within = expected_totals(scans, lambda s: report.start <= s.created_at < report.end)
    assert report.total.scans == within[0]
    # Rebuilt for those other shifts: the plant's report reads the hours again, exact.
    await age_shift_state(db)
    await summarise_once(db, UTC_SHIFTS)
    check_report(await report_of(db, settings, {}), scans)


async def insert_scans(db: Database, rows: list[tuple]) -> None:
    """Scans at given times, written as an import would, and the pieces' verdicts rebuilt."""
    async with db.transaction() as cur:
        await cur.executemany(
            "INSERT INTO scans (station, submission_id, operator_code, piece_code, order_code, checker1_code,"
            " checker2_code, defect_code, approved, is_rescan, created_at, created_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
    await rebuild_counters(db)


async def test_the_top_groups_count_what_the_partial_days_add(
        db: Database, settings: Settings, make_user: Any) -> None:
    """Order C leads only with its scans of the range's first, partial UTC day
    added to its whole days', where it ranks third."""
    make_user("worker", "operator")
    [[user]] = await execute(settings.database_url, "SELECT id FROM users WHERE username = 'worker'")
    made = {"CP00000001": [(datetime(2026, 6, 2, 9), 5)], "CP00000002": [(datetime(2026, 6, 2, 10), 4)],
            "CP00000003": [(datetime(2026, 6, 3, 9), 3), (datetime(2026, 6, 1, 15), 3)]}
    await insert_scans(db, [
        ("quality", secrets.token_bytes(16), "OP01", f"{order}-{10 * batch + n:04d}", order, "OC01", "OC02",
         "104", False, False, at + timedelta(minutes=n), user)
        for order, batches in made.items() for batch, (at, count) in enumerate(batches)
        for n in range(count)])
    await summarise_all(db, UTC_SHIFTS)
    utc = Settings(**{**vars(settings), "timezone": ZoneInfo("UTC")})
    scan_filter = read_filter({"from": "2026-06-01T12:00", "to": "2026-06-04T00:00"}, utc).filter
    for top, leaders in ((1, ["CP00000003"]), (2, ["CP00000003", "CP00000001"])):
        async with db.transaction(snapshot=True) as cur:
            ranked = await aggregate(cur, Question.ranked(scan_filter, "order", top))
        assert list(ranked) == leaders
        assert ranked["CP00000003"].rejected == 6


async def test_shifts_across_both_clock_changes_are_counted_where_their_scans_are(
        db: Database, settings: Settings, make_user: Any) -> None:
    """A report of the nights the clocks change (the night shift is 7 and 9
    hours long) read from whole shifts, their partial hours and the newest scans."""
    make_user("worker", "operator")
    [[user]] = await execute(settings.database_url, "SELECT id FROM users WHERE username = 'worker'")
    rows = []
    for first in (datetime(2026, 3, 27, 0, 10), datetime(2026, 10, 23, 0, 10)):
        for n in range(4 * 24 * 3):  # every 20 minutes for four days
            piece = f"CP{first.month:06d}00-{n % 150:04d}"  # each piece scanned again some 50 hours on
            defect = "000" if n % 7 else ("104", "201", "301")[n % 3]
            rows.append(("quality" if n % 5 else "fg", secrets.token_bytes(16), f"OP{n % 4:02d}", piece,
                         piece[:10], "OC01", "OC02", defect, defect == "000", n >= 150,
                         first + timedelta(minutes=20 * n), user))
    await insert_scans(db, rows)
    await summarise_all(db, PLANT_SHIFTS)
    scans = await all_scans(db)
    assert await shift_state(db) == layout_of(PLANT_SHIFTS)  # whole shifts come from scan_shifts
    for start, end in (("2026-03-27", "2026-03-31"), ("2026-10-23", "2026-10-27"),
                       ("2026-03-28T05:40", "2026-03-30T13:20"), ("2026-10-24T21:00", "2026-10-26T06:00")):
        report = await report_of(db, settings, {"from": start, "to": end})
        assert report.total.scans > 100
        check_report(report, scans)


def quality_report(client: TestClient, make_user: Any, db_url: Any, scans: int, days: int, seed: int) -> Any:
    """The quality station's report, seen by a supervisor, on demo scans."""
    async def fill_demo() -> None:
        db = database_for(db_url, query_timeout=60)
        try:
            await fill(db, scans, days, PLANT_SHIFTS, seed=seed)
        finally:
            await db.close()

    run_async(fill_demo())
    make_user("sue", "supervisor")
    login(client, "sue")
    return client.get("/reports", params={"station": "quality"})


def test_the_report_page_draws_keyboard_friendly_charts_whose_marks_lead_to_their_scans(
        client: TestClient, make_user: Any, db_url: Any) -> None:
    page = quality_report(client, make_user, db_url, 800, 4, seed=3)
    assert page.status_code == 200
    for chart in ("rate-by-day", "top-defects", "heat-map"):
        svg = page.text.split(f'<svg class="chart" id="{chart}"', 1)[1].split("</svg>", 1)[0]
        assert f'aria-labelledby="{chart}-title {chart}-desc"' in svg and "<title" in svg
        # An image holds nothing a keyboard stops at: a pointer follows a mark's data-href,
        # a keyboard the chart's one link to its data table.
        assert "<a " not in svg and "tabindex" not in svg
        [table] = re.findall(rf'href="#([\w-]+)" data-testid="{chart.replace("-", "_")}-data"', page.text)
        assert f'id="{table}"' in page.text
        marks = re.findall(r'data-href="([^"]+)">(?:<text[^>]*>[^<]*</text>)?(?:<rect[^>]*>)?'
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


def test_every_table_figure_links_to_the_list_that_counts_it(
        client: TestClient, make_user: Any, db_url: Any) -> None:
    """Each row's scans and each of its top defects (its count) lead to a list holding
    exactly that many scans: the row's span, order or operator, and the report's filter."""
    page = quality_report(client, make_user, db_url, 600, 3, seed=5)
    assert page.status_code == 200

    def counted(href: str) -> int:
        url = html.unescape(href)
        assert url.startswith("/scans?") and "station=quality" in url
        totals = client.get(url.replace("/scans?", "/scans/totals?"))
        return int(re.search(r'total-scans">([\d,]+)<', totals.text)[1].replace(",", ""))

    checked = 0
    for table, most in (("by-shift", None), ("by-order", 4), ("by-operator", 4)):
        body = page.text.split(f'data-testid="{table}"', 1)[1].split("</table>", 1)[0]
        rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("<tbody>", 1)[1], re.DOTALL)
        assert rows, table
        for row in rows[:most]:
            href, scans = re.search(r'<td class="num"><a href="([^"]+)">([\d,]+)</a>', row).groups()
            assert counted(href) == int(scans.replace(",", "")), (table, row)
            rejected = int(re.findall(r'<td class="num">([\d,]+)</td>', row)[1].replace(",", ""))
            defects = re.findall(r'<a href="([^"]+)"><span class="code">(\w+)</span> \u00d7([\d,]+)</a>', row)
            assert defects or not rejected, row  # a rejected piece's latest scan names its defect
            for href, code, count in defects:
                assert f"defect={code}" in html.unescape(href)
                assert counted(href) == int(count.replace(",", "")), (table, row, code)
                checked += 1
    body = page.text.split('data-testid="by-defect"', 1)[1].split("</table>", 1)[0]
    for code, href, count in re.findall(r'<span class="code">(\w+)</span>.*?<a href="([^"]+)">(\d+)</a>',
                                        body, re.DOTALL):
        assert f"defect={code}" in html.unescape(href) and counted(href) == int(count)
        checked += 1
    assert checked > 20


def test_a_report_of_an_empty_range_says_so(client: TestClient, make_user: Any) -> None:
    make_user("sue", "supervisor")
    login(client, "sue")
    page = client.get("/reports", params={"from": "2020-01-01", "to": "2020-01-03"})
    assert page.status_code == 200
    assert "No scans in this range." in page.text and "No rejected scans in this range." in page.text


def report_rows(page: str, table: str) -> list[tuple[str, int]]:
    """A per-order or per-operator table's rows: the name, and its scans as shown."""
    body = page.split(f'data-testid="{table}"', 1)[1].split("</table>", 1)[0]
    return [(name, int(scans.replace(",", ""))) for name, scans in re.findall(
        r'<th scope="row">([^<]+)</th><td class="num"><a href="[^"]+">([\d,]+)</a>', body)]


def test_per_order_and_per_operator_tables_are_complete_paged_and_sortable(
        client: TestClient, make_user: Any, db_url: Any) -> None:
    async def many_orders() -> None:
        db = database_for(db_url)
        try:
            for n in range(45):  # orders enough for three pages of twenty
                await save_scan(db, "quality", scan_input(f"CP3{n:07d}-0001", "104" if n % 3 else "000"), 1,
                                UTC_SHIFTS)
        finally:
            await db.close()

    quality_report(client, make_user, db_url, 600, 3, seed=9)
    run_async(many_orders())
    page = client.get("/reports", params={"station": "quality"})
    scans = scans_in(db_url)
    shown = re.search(r'data-testid="report-range">From ([\d-]+ [\d:]+)', page.text)
    since = datetime.fromisoformat(shown[1]).replace(tzinfo=ZONE)
    orders = Counter(s.order for s in scans if s.station == "quality" and s.local >= since)
    assert len(orders) > 40
    # The first column names what a row is, not the table's title again.
    head = page.text.split('data-testid="by-order"', 1)[1].split("</thead>", 1)[0]
    assert ">Order</a></th>" in head and "Per order" not in head
    first = report_rows(page.text, "by-order")
    assert len(first) == 20 and f"Top 20 of {len(orders):,}" in page.text

    def follow(html_text: str, testid: str) -> str:
        [href] = re.findall(rf'href="([^"]+)" data-testid="{testid}"', html_text)
        return client.get(html.unescape(href)).text

    second = follow(page.text, "by-order-pages-next")
    assert "Rows 21\N{EN DASH}40 of" in second and len(report_rows(second, "by-order")) == 20
    every = report_rows(follow(page.text, "by-order-pages-all"), "by-order")
    assert dict(every) == dict(orders)
    assert every[:40] == first + report_rows(second, "by-order")
    # Sorted by name, or by scans: the same rows in that order.
    by_name = client.get("/reports", params={"station": "quality", "sort": "name", "order_page": "all"}).text
    assert [name for name, _ in report_rows(by_name, "by-order")] == sorted(orders)
    by_scans = report_rows(client.get("/reports", params={"station": "quality", "sort": "scans"}).text,
                           "by-operator")
    assert [count for _, count in by_scans] == sorted((count for _, count in by_scans), reverse=True)
    for bad in ({"sort": "colour"}, {"order_page": "0"}, {"operator_page": "x"}):
        assert client.get("/reports", params={"station": "quality", **bad}).status_code == 400


@pytest.mark.parametrize(("highest", "ticks"), [
    (0.073, ["0%", "2%", "4%", "6%", "8%"]),  # not 10 %, 7.5 % (as 8 %), 5 %, 2.5 % (as 2 %)
    (0.1, ["0%", "2%", "4%", "6%", "8%", "10%"]),
    (0.024, ["0.0%", "0.5%", "1.0%", "1.5%", "2.0%", "2.5%"]),
    (0.0, ["0.0%", "0.1%"]),
    (0.93, ["0%", "20%", "40%", "60%", "80%", "100%"]),
])
def test_the_rate_axis_prints_each_tick_exactly(highest: float, ticks: list[str]) -> None:
    top, values, decimals = rate_axis(highest)
    assert [percent(value, "en", decimals) for value in values] == ticks
    assert top == values[-1] >= highest
    # Each printed label is the tick itself, not a rounding of it.
    for label, value in zip(ticks, values, strict=True):
        assert abs(float(label.rstrip("%")) - value * 100) < 1e-9


async def test_charts_write_counts_as_the_language_does_keep_labels_inside_and_explain_the_heat_map(
        db: Database, settings: Settings) -> None:
    await fill(db, 400, 3, PLANT_SHIFTS, seed=2)
    report = await report_of(db, settings, {"station": "quality"})
    report.by_defect = [("104", "Missing component", 2758), *report.by_defect[1:]]
    for language, written in (("en", "2,758"), ("ro", "2.758")):
        drawn = charts.for_report(report, Links(report), translator(language), language)
        assert f">{written}</text>" in drawn["top_defects"]
    drawn = charts.for_report(report, Links(report), translator("en"), "en")
    heat = str(drawn["heat_map"])
    assert 'fill="url(#heat-map-scale)"' in heat and ">no pieces</text>" in heat
    for svg in (str(drawn["rate_by_day"]), heat):
        labels = re.findall(r'<text x="([\d.]+)" y="[\d.]+" text-anchor="(\w+)">\d\d\.\d\d</text>', svg)
        assert labels
        # A day label is some 30 px wide: its right edge stays inside the 640 px chart.
        assert all(float(x) + (15 if anchor == "middle" else 0) <= charts.WIDTH for x, anchor in labels)
