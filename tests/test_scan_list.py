"""The scan list: filters and their validation, keyset pages both ways while
scans arrive, totals against an independent computation, exports, the live
first page, and who may open what."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from starlette.testclient import TestClient

from quality.db import Database
from quality.demo import fill
from quality.http.exporter import Exporter
from quality.http.templates import Renderer
from quality.pages.scan_list.export import COLUMNS, row_values, words, xlsx_chunks
from quality.pages.scan_list.queries import Raw, all_rows, fetch_page, scan_row, totals
from quality.pages.scan_list.views import _row_events
from quality.pages.scan_list.xlsx import WorkbookStream
from quality.scan_filter import PageKey, read_filter
from quality.scans.feed import ScanWatcher, TableMarkup
from quality.scans.store import save_scan
from quality.session_cache import SessionCache
from quality.settings import Settings, SettingsError, load_settings
from quality.shifts import Shifts
from quality.summary.writer import summarise_all
from tests.conftest import UTC_SHIFTS, database_for, login, run_async
from tests.test_scans_store import scan_input

ZONE = ZoneInfo("Europe/Bucharest")
SHIFTS = (6 * 60, 14 * 60, 22 * 60)
PLANT_SHIFTS = Shifts(SHIFTS, ZONE)


@dataclasses.dataclass(frozen=True)
class Scan:
    id: int
    station: str
    created_at: datetime
    operator: str
    order: str
    piece: str
    checker1: str
    checker2: str
    defect: str
    approved: bool
    rescan: bool

    @property
    def local(self) -> datetime:
        return self.created_at.replace(tzinfo=UTC).astimezone(ZONE)


def plant_settings(db_url: Any) -> Settings:
    """A plant two or three hours east of UTC, so local days and shifts are not UTC's."""
    return Settings(database_url=db_url, secret_key="test-secret-key-0123456789abcdef", pool_min=1,
                    pool_max=5, pool_timeout=5.0, query_timeout=30.0, timezone=ZONE)


@pytest.fixture
def settings(db_url: Any) -> Settings:
    return plant_settings(db_url)


async def all_scans(db: Database) -> list[Scan]:
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT id, station, created_at, operator_code, order_code, piece_code, checker1_code,"
            " checker2_code, defect_code, approved, is_rescan FROM scans ORDER BY id")
        return [Scan(*row[:9], bool(row[9]), bool(row[10])) for row in await cur.fetchall()]


def expected_totals(scans: list[Scan], wanted: Callable[[Scan], bool]) -> tuple[int, int, int]:
    """Scans, approved and rejected pieces, computed here from the raw scans: a
    piece counts if its latest scan (at its station) is one of the wanted scans."""
    latest: dict[tuple[str, str], Scan] = {}
    for scan in scans:
        latest[scan.station, scan.piece] = scan
    chosen = [scan for scan in scans if wanted(scan)]
    current = [scan for scan in chosen if latest[scan.station, scan.piece] is scan]
    return len(chosen), sum(s.approved for s in current), sum(not s.approved for s in current)


def local_day_start(day_offset: int) -> datetime:
    today = datetime.now(ZONE).date()
    return datetime.combine(today + timedelta(days=day_offset), datetime.min.time(), ZONE)


def shift_index(scan: Scan) -> int:
    minutes = scan.local.hour * 60 + scan.local.minute
    return 2 if minutes < SHIFTS[0] or minutes >= SHIFTS[2] else (0 if minutes < SHIFTS[1] else 1)


@pytest.fixture
async def seeded(db: Database) -> list[Scan]:
    await fill(db, 2500, 5, PLANT_SHIFTS, seed=11)
    return await all_scans(db)


def cases(scans: list[Scan]) -> Iterator[tuple[dict[str, str], Callable[[Scan], bool]]]:
    """Filters as a supervisor sets them, each with an independent predicate."""
    some = scans[len(scans) // 2]
    rescanned = next(scan for scan in scans if scan.rescan)
    start = local_day_start(-2)
    end = local_day_start(-1) + timedelta(hours=15, minutes=20)  # mid-hour: partial hours too
    yield {}, lambda s: True
    yield {"station": "fg"}, lambda s: s.station == "fg"
    yield {"operator": some.operator}, lambda s: s.operator == some.operator
    yield {"order": rescanned.order}, lambda s: s.order == rescanned.order
    yield {"piece": rescanned.piece}, lambda s: s.piece == rescanned.piece
    yield {"checker": some.checker1}, lambda s: some.checker1 in (s.checker1, s.checker2)
    yield {"checker": "OC01"}, lambda s: "OC01" in (s.checker1, s.checker2)  # also twice on one scan
    yield {"checker": "OC01", "station": "quality"}, lambda s: "OC01" in (s.checker1, s.checker2) and (
        s.station == "quality")
    yield {"defect": "104"}, lambda s: s.defect == "104"
    yield {"rejected": "1"}, lambda s: not s.approved
    yield {"rescans": "1"}, lambda s: s.rescan
    yield {"shift": "3"}, lambda s: shift_index(s) == 2
    yield ({"from": start.strftime("%Y-%m-%dT%H:%M"), "to": end.strftime("%Y-%m-%dT%H:%M")},
           lambda s: start <= s.local < end)
    yield ({"from": start.strftime("%Y-%m-%d"), "shift": "1", "station": "quality", "rejected": "1"},
           lambda s: s.local >= start and shift_index(s) == 0 and s.station == "quality" and not s.approved)
    # Prefixes (a value short of a whole code) and several values (any of them).
    yield {"operator": some.operator[:3]}, lambda s: s.operator.startswith(some.operator[:3])
    yield {"order": rescanned.order[:9]}, lambda s: s.order.startswith(rescanned.order[:9])
    yield {"piece": rescanned.piece[:12]}, lambda s: s.piece.startswith(rescanned.piece[:12])
    yield {"station": "quality,fg"}, lambda s: True
    yield {"defect": "101, 104"}, lambda s: s.defect in ("101", "104")
    other = next(scan.operator for scan in scans if scan.operator[:3] != some.operator[:3])
    yield ({"operator": f"{other},{some.operator[:3]}", "rejected": "1"},
           lambda s: (s.operator == other or s.operator.startswith(some.operator[:3])) and not s.approved)
    begins = some.operator[:3]
    yield ({"defect": "000,104", "station": "fg", "operator": begins},
           lambda s: s.defect in ("000", "104") and s.station == "fg" and s.operator.startswith(begins))


async def check_totals(db: Database, settings: Settings, scans: list[Scan]) -> None:
    for params, wanted in cases(scans):
        scan_filter = read_filter(params, settings).filter
        async with db.transaction(snapshot=True) as cur:
            counted = await totals(cur, scan_filter)
        assert (counted.scans, counted.approved, counted.rejected) == expected_totals(scans, wanted), params


async def test_totals_match_an_independent_computation_with_and_without_the_summary(
        db: Database, settings: Settings, seeded: list[Scan], make_user: Any) -> None:
    # fill() summarised everything: summary and partial hours together.
    await check_totals(db, settings, seeded)
    # Re-scans now change verdicts of pieces whose earlier scans are in the summary.
    make_user("worker", "operator")
    for n, scan in enumerate(seeded[-400::40]):
        scanned = scan_input(scan.piece, "000" if not scan.approved else "104")
        if n % 2:  # one checker in both fields: the scan counts once for that checker
            scanned = dataclasses.replace(scanned, checker2_code=scanned.checker1_code)
        await save_scan(db, scan.station, scanned, 1, UTC_SHIFTS)
    scans = await all_scans(db)
    assert sum(s.rescan for s in scans) > sum(s.rescan for s in seeded)
    await check_totals(db, settings, scans)
    # And once the summary has taken everything in.
    await summarise_all(db, PLANT_SHIFTS)
    await check_totals(db, settings, scans)


async def test_pages_visit_every_row_once_both_ways_while_scans_arrive(
        db: Database, settings: Settings, seeded: list[Scan], make_user: Any) -> None:
    make_user("worker", "operator")
    async with db.transaction() as cur:  # rows sharing one instant: the id breaks the tie
        await cur.execute("UPDATE scans SET created_at = %s WHERE id BETWEEN 1000 AND 1030",
                          (seeded[1000].created_at,))
    arrived = 0
    for params, wanted in list(cases(await all_scans(db))):
        scans = await all_scans(db)
        scan_filter = read_filter(params, settings).filter
        expected = sorted((s for s in scans if wanted(s)), key=lambda s: (s.created_at, s.id), reverse=True)
        seen: list[int] = []
        before = None
        while True:
            async with db.transaction() as cur:
                page = await fetch_page(cur, scan_filter, before=before, size=37)
            seen += [row.id for row in page.rows]
            # A scan arrives while the supervisor reads: it belongs before the first page.
            arrived += 1
            await save_scan(db, "quality", scan_input(f"CP99999999-{arrived:04d}"), 1, UTC_SHIFTS)
            if page.older is None:
                break
            before = page.older
        assert seen == [s.id for s in expected], params
        # Back up to the top from the last row.
        back: list[int] = []
        after = PageKey.of(page.rows[-1]) if page.rows else None
        while after is not None:
            async with db.transaction() as cur:
                page = await fetch_page(cur, scan_filter, after=after, size=37)
            back = [row.id for row in page.rows] + back
            after = page.newer
        assert len(back) == len(set(back))
        known = [scan_id for scan_id in back if scan_id <= scans[-1].id]  # not those that arrived
        assert known == [s.id for s in expected[:-1]], params


async def test_pages_read_the_same_rows_deep_or_shallow(db: Database, settings: Settings,
                                                        seeded: list[Scan]) -> None:
    scan_filter = read_filter({}, settings).filter
    rows = [scan_row(values) async for batch in all_rows(db, scan_filter, batch=100) for values in batch]
    assert [row.id for row in rows] == [s.id for s in sorted(
        seeded, key=lambda s: (s.created_at, s.id), reverse=True)]
    deep = PageKey.of(rows[2000])
    async with db.transaction() as cur:
        page = await fetch_page(cur, scan_filter, before=deep)
    assert [row.id for row in page.rows] == [row.id for row in rows[2001:2051]]


# -- the page --------------------------------------------------------------------------


def seed_through(db_url: Any, scans: int = 400) -> None:
    async def work() -> None:
        db = database_for(db_url, query_timeout=60)
        try:
            await fill(db, scans, 3, PLANT_SHIFTS, seed=5)
        finally:
            await db.close()

    run_async(work())


BAD = [
    ({"from": "2026-02-30"}, "from", "is not a real date"),
    ({"from": "yesterday"}, "from", "must look like"),
    ({"from": "2026-11-20", "to": "2026-11-19"}, "to", "must be later than From"),
    ({"from": "2024-01-01", "to": "2026-01-01"}, "to", "at most 400 days"),
    ({"to": "9999-12-31"}, "to", "must be between 1970-01-01 and 2999-12-31"),
    ({"station": "paint"}, "station", "must look like"),
    ({"shift": "7"}, "shift", "Shift must be 1 to 3"),
    ({"shift": "x"}, "shift", "must look like"),
    ({"order": "CP12X"}, "order", "must look like CP00012345"),  # CP123 would be a prefix
    ({"order": "CP123,CP124"}, "order", "must look like"),  # one order, not several
    ({"order": "x" * 500}, "order", "too long"),
    ({"piece": "CP00000001/1"}, "piece", "must look like"),
    ({"operator": "O'1"}, "operator", "must look like"),
    ({"checker": "OC-1"}, "checker", "must look like"),
    ({"defect": "1a4"}, "defect", "must look like"),
    ({"defect": "101,1a4"}, "defect", "1A4: Defect code must look like"),
    ({"defect": ",".join(f"{n:03d}" for n in range(21))}, "defect", "at most 20 values"),
    ({"defect": "10"}, "defect", "must look like"),  # no prefix of a defect code
    ({"operator": "OPA,OQ"}, "operator", "OQ: Operator code must look like"),
    ({"rejected": "maybe"}, "rejected", "must look like"),
    ({"before": "1' OR 1=1"}, "before", "must look like"),
    ({"after": "20261399000000000000-5"}, "after", "page link is broken"),
]


@pytest.mark.parametrize(("params", "field", "message"), BAD)
def test_a_bad_parameter_is_named_beside_its_filter_never_a_500(
        client: TestClient, make_user: Any, params: dict[str, str], field: str, message: str) -> None:
    make_user("sue", "supervisor")
    login(client, "sue")
    page = client.get("/scans", params=params)
    assert page.status_code == 400
    assert f'data-testid="{field}-error">' in page.text and message in page.text
    assert 'data-testid="filter-error"' in page.text
    for export in ("/scans/export.csv", "/scans/export.xlsx", "/scans/totals"):
        assert client.get(export, params=params).status_code == 400
    assert client.get("/reports", params=params).status_code == 400


def test_unknown_parameters_are_ignored_and_an_empty_result_says_so(
        client: TestClient, make_user: Any, db_url: Any) -> None:
    seed_through(db_url, 50)
    make_user("sue", "supervisor")
    login(client, "sue")
    page = client.get("/scans", params={"utm_source": "mail", "order": "CP77777777"})
    assert page.status_code == 200
    assert 'data-testid="no-scans"' in page.text and "No scans match this filter." in page.text
    assert client.get("/scans", params={"utm_source": "x"}).text.count("data-scan-id=") == 50


def test_filtered_page_links_totals_and_pager(client: TestClient, make_user: Any, db_url: Any) -> None:
    seed_through(db_url)
    make_user("sue", "supervisor")
    login(client, "sue")
    first = client.get("/scans", params={"station": "quality"})
    assert first.status_code == 200
    assert 'href="/scans?order=CP' in first.text and 'href="/scans?operator=OP' in first.text
    assert 'href="/scans?defect=' in first.text
    assert 'data-live="/scans/stream?station=quality&amp;v=' in first.text  # the first page is live
    older = first.text.split('data-testid="older"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = client.get(older.replace("&amp;", "&"))
    assert "data-live=" not in second.text and 'data-testid="newer"' in second.text
    # htmx gets just the results, never the form being typed in; the page pushes the address.
    fragment = client.get("/scans?station=quality", headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<div id="list-results"') and 'id="filters"' not in fragment.text
    assert fragment.headers["hx-push-url"] == "/scans?station=quality"
    assert 'id="from-error" hx-swap-oob="true" hidden' in fragment.text  # earlier errors emptied
    # A filter being corrected: its error beside the field, the results and the address kept.
    wrong = client.get("/scans?station=quality&from=2026-02-30", headers={"HX-Request": "true"})
    assert wrong.status_code == 400 and wrong.headers["hx-reswap"] == "none"
    assert wrong.headers["hx-push-url"] == "false" and "list-results" not in wrong.text
    assert 'id="from-error" hx-swap-oob="true" data-testid="from-error">' in wrong.text
    restore = client.get("/scans?station=quality", headers={"HX-Request": "true",
                                                           "HX-History-Restore-Request": "true"})
    assert restore.text.lstrip().startswith("<!doctype html>")
    counted = client.get("/scans/totals", params={"station": "quality"})
    assert 'data-testid="total-scans"' in counted.text


def test_the_form_sent_without_its_script_lands_on_the_address_htmx_shows(
        client: TestClient, make_user: Any) -> None:
    make_user("sue", "supervisor")
    login(client, "sue")
    # What the browser sends for Enter pressed before the page's script has loaded.
    native = "/scans?range=&from=&to=&shift=&operator=&order=CP10000001&piece=&checker=&group="
    answer = client.get(native, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/scans?order=CP10000001"
    blank = client.get("/scans?range=&order=", follow_redirects=False)
    assert blank.status_code == 303 and blank.headers["location"] == "/scans"
    # A filter to correct is shown with its error where it was typed, not redirected.
    wrong = client.get("/scans?range=&from=2026-02-30", follow_redirects=False)
    assert wrong.status_code == 400 and 'data-testid="from-error">' in wrong.text
    # htmx's own requests are answered in place.
    fragment = client.get(native, headers={"HX-Request": "true"}, follow_redirects=False)
    assert fragment.status_code == 200 and fragment.headers["hx-push-url"] == "/scans?order=CP10000001"


def test_exports_hold_exactly_the_filtered_rows(client: TestClient, make_user: Any, db_url: Any,
                                                settings: Settings) -> None:
    seed_through(db_url, 1200)
    make_user("sue", "supervisor")
    login(client, "sue")
    params = {"station": "quality", "rejected": "1"}

    async def expected() -> list[list[str]]:
        db = database_for(db_url)
        try:
            scans = await all_scans(db)
        finally:
            await db.close()
        chosen = sorted((s for s in scans if s.station == "quality" and not s.approved),
                        key=lambda s: (s.created_at, s.id), reverse=True)
        return [[s.local.isoformat(timespec="seconds"), s.operator, s.piece, s.order, s.defect]
                for s in chosen]

    want = run_async(expected())
    assert len(want) > 10
    answer = client.get("/scans/export.csv", params=params)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert 'filename="scans_quality_start_now.csv"' in answer.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert table[0][:4] == ["Time", "Station", "Operator", "Piece"]
    assert [[r[0], r[2], r[3], r[4], r[7]] for r in table[1:]] == want
    assert all(r[9] == "Rejected" for r in table[1:])
    assert table[1][0].endswith(("+02:00", "+03:00"))  # the plant's offset

    answer = client.get("/scans/export.xlsx", params={**params, "from": "2020-01-01T06:00"})
    assert answer.status_code == 200
    assert "scans_quality_2020-01-01T06-00_now.xlsx" in answer.headers["content-disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(answer.content), read_only=True).active
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0][0] == "Time"
    assert [[r[0].isoformat(), r[2], r[3], r[4], r[7]] for r in rows[1:]] == [
        [w[0][:19], *w[1:]] for w in want]


async def test_xlsx_bytes_leave_before_the_last_rows_are_read(db: Database, settings: Settings,
                                                              seeded: list[Scan]) -> None:
    scan_filter = read_filter({}, settings).filter
    batches_read = 0

    async def counted() -> AsyncIterator[list[Raw]]:
        nonlocal batches_read
        async for batch in all_rows(db, scan_filter, batch=500):
            batches_read += 1
            yield batch

    rest = counted()
    first = await anext(rest)
    exporter = Exporter(1, 1)
    chunks = xlsx_chunks(first, rest, ZONE, words("en"), exporter.format)
    body = [await anext(chunks), await anext(chunks)]
    # The parts before the sheet leave at once, and compressed rows follow
    # (deflate holds back a little) while most batches are still unread.
    assert body[0].startswith(b"PK") and len(body[1]) > 1000
    assert batches_read <= 2
    body += [chunk async for chunk in chunks]
    exporter.close()
    assert batches_read == 5
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(body)), read_only=True).active
    # Empty values are no cells; read them back as "". Times are dates in
    # the plant's time.
    rows = [[value or "" for value in row] + [""] * (len(COLUMNS) - len(row))
            for row in sheet.iter_rows(values_only=True)]
    everything = [scan_row(values) async for batch in all_rows(db, scan_filter) for values in batch]
    want = [row_values(row, ZONE, words("en")) for row in everything]
    assert rows == [list(COLUMNS)] + [[time.replace(tzinfo=None), *rest] for time, *rest in want]


def test_xlsx_text_round_trips_with_what_xml_cannot_carry_dropped() -> None:
    awkward = ["a & b <c> \"d\" 'e'", "  spaced  ", "line\nbreak\r\nand\ttab", "bell\x07 nul\x00 esc\x1b",
               "șțăîâ ÅØ 漢字 😀", "]]> &amp; <?x?>", "=1+2"]
    sheet = WorkbookStream(lambda number: "Sheet & <1>", ["one"], (10,))
    body = sheet.start() + sheet.rows([value] for value in awkward) + sheet.finish()
    book = openpyxl.load_workbook(io.BytesIO(body))
    assert book.sheetnames == ["Sheet & <1>"]
    read = [row[0] for row in book.active.iter_rows(values_only=True)]
    assert read == ["one", "a & b <c> \"d\" 'e'", "  spaced  ", "line\nbreak\r\nand\ttab", "bell nul esc",
                    "șțăîâ ÅØ 漢字 😀", "]]> &amp; <?x?>", "=1+2"]
    assert book.active["A1"].font.b and not book.active["A2"].font.b


def test_roles_see_and_open_only_their_pages(client: TestClient, make_user: Any) -> None:
    make_user("olga", "operator")
    login(client, "olga")
    for url in ("/scans", "/scans/totals", "/scans/stream", "/scans/export.csv", "/reports"):
        assert client.get(url).status_code == 403, url
    assert 'href="/scans"' not in client.get("/scan").text
    client.post("/logout", data={"csrf_token": client.get("/scan").text.split(
        'name="csrf_token" value="')[1].split('"')[0]})
    make_user("sue", "supervisor")
    login(client, "sue")
    landing = client.get("/", follow_redirects=False)
    assert landing.status_code == 303 and landing.headers["location"] == "/scans"
    page = client.get("/scans").text
    assert 'href="/scans" aria-current="page"' in page and 'href="/reports"' in page


async def test_the_live_first_page_gets_only_new_matching_scans(
        db: Database, settings: Settings, make_user: Any) -> None:
    make_user("worker", "operator")
    watcher = ScanWatcher(db, TableMarkup(Renderer(ZONE)), SessionCache())
    await watcher.load()
    scan_filter = read_filter({"order": "CP00000042"}, settings).filter
    macros = Renderer(ZONE).macros("scan_list/_rows.html", "en")

    async def allowed() -> bool:
        return True

    events = _row_events(watcher, scan_filter, 0, macros, allowed)
    assert await anext(events) == b"retry: 2000\n\n"
    for piece in ("CP00000041-0001", "CP00000042-0001"):
        watcher.saved(await save_scan(db, "quality", scan_input(piece, "104"), 1, UTC_SHIFTS))
    frame = (await anext(events)).decode()
    assert frame.startswith("event: rows\n")
    assert "CP00000042-0001" in frame and "CP00000041" not in frame
    await events.aclose()


def test_shift_starts_are_a_validated_setting() -> None:
    assert load_settings({"QUALITY_SHIFTS": "07:00,19:00"}, None).shifts == (420, 1140)
    assert load_settings({}, None).shifts == SHIFTS
    for bad in ("06:30,14:00", "14:00,06:00", "6,14", "25:00"):
        with pytest.raises(SettingsError, match="QUALITY_SHIFTS"):
            load_settings({"QUALITY_SHIFTS": bad}, None)


def scans_in(db_url: Any) -> list[Scan]:
    async def read() -> list[Scan]:
        db = database_for(db_url)
        try:
            return await all_scans(db)
        finally:
            await db.close()

    return run_async(read())


def group_rows(html: str) -> list[tuple[str, str, list[str]]]:
    """Each group row of a grouped list: its link, its name, its figures as shown."""
    body = html.split('data-testid="groups"', 1)[1].split("</tbody>", 1)[0]
    return [(href.replace("&amp;", "&"), name, re.findall(r'<td class="num">([^<]*)</td>', rest))
            for href, name, rest in re.findall(
                r'<a href="([^"]+)" data-testid="group-link">([^<]+)</a></th>(.*?)</tr>', body, re.S)]


def test_the_list_grouped_counts_each_group_and_links_to_its_scans(client: TestClient, make_user: Any,
                                                                  db_url: Any) -> None:
    seed_through(db_url, 1500)
    make_user("sue", "supervisor")
    login(client, "sue")
    scans = scans_in(db_url)
    params = {"station": "quality", "rejected": "1"}
    chosen = [s for s in scans if s.station == "quality" and not s.approved]

    page = client.get("/scans", params={**params, "group": "operator", "sort": "scans"})
    assert page.status_code == 200
    rows = group_rows(page.text)
    want = Counter(s.operator for s in chosen)
    assert {name: int(figures[0].replace(",", "")) for _, name, figures in rows} == dict(want)
    assert [int(figures[0].replace(",", "")) for _, _, figures in rows] == sorted(want.values(), reverse=True)
    href, name, figures = rows[0]
    assert href == f"/scans?station=quality&operator={name}&rejected=1"
    # The group's link leads to its scans, whose totals are the group's figures.
    counted = client.get("/scans/totals" + href.removeprefix("/scans"))
    assert f'data-testid="total-scans">{figures[0]}<' in counted.text
    assert f'data-testid="total-rejected">{figures[2]}<' in counted.text

    # Per shift: each shift's link is the list filtered by it.
    rows = group_rows(client.get("/scans", params={**params, "group": "shift"}).text)
    assert sorted(href for href, _, _ in rows) == [f"/scans?station=quality&shift={n}&rejected=1"
                                                   for n in (1, 2, 3)]
    assert sum(int(figures[0].replace(",", "")) for _, _, figures in rows) == len(chosen)

    # Orders are many: the first 100 (most rejected first), and the rest a page on.
    async def more_orders() -> None:
        db = database_for(db_url)
        try:
            for n in range(101):
                await save_scan(db, "quality", scan_input(f"CP2{n:07d}-0001"), 1, UTC_SHIFTS)
        finally:
            await db.close()

    run_async(more_orders())
    orders = Counter(s.order for s in scans_in(db_url) if s.station == "quality")
    assert len(orders) > 100
    page = client.get("/scans", params={"station": "quality", "group": "order"})
    assert len(group_rows(page.text)) == 100
    assert f"Top 100 of {len(orders):,}" in page.text
    every = group_rows(page.text)
    while 'data-testid="group-pages-next"' in page.text:
        [href] = re.findall(r'href="([^"]+)" data-testid="group-pages-next"', page.text)
        page = client.get(href.replace("&amp;", "&"))
        every += group_rows(page.text)
    assert f"Rows 101\N{EN DASH}{len(orders)} of {len(orders)}" in page.text
    assert {name: int(figures[0].replace(",", "")) for _, name, figures in every} == dict(orders)

    # A bad grouping or sort is named beside its field; nothing is shown.
    for bad in ({"group": "colour"}, {"group": "order", "sort": "size"}, {"group": "order", "page": "0"}):
        answer = client.get("/scans", params=bad)
        assert answer.status_code == 400 and 'data-testid="filter-error"' in answer.text
