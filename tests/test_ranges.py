"""Ranges as a supervisor names them: presets from the plant's shift calendar
(a night shift past midnight, a production day starting at 22:00, the days
clocks change), dates typed in Romanian or ISO, and the range said in words
on the list and the report."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

from quality.clock import to_utc, utc_now
from quality.ranges import PRESETS, in_words, preset_span
from quality.scan_filter import read_filter
from quality.settings import Settings
from quality.shifts import Shifts
from tests.conftest import execute, login, run_async
from tests.test_scan_list import plant_settings, seed_through

ZONE = ZoneInfo("Europe/Bucharest")
PLANT = Shifts((6 * 60, 14 * 60, 22 * 60), ZONE)
NIGHT_FIRST = Shifts((22 * 60,), ZONE)  # one shift a day, so the production day starts at 22:00


def local(text: str) -> datetime:
    """A plant-time moment as stored (naive UTC)."""
    return to_utc(datetime.fromisoformat(text).replace(tzinfo=ZONE))


def spans(shifts: Shifts, now: str) -> dict[str, tuple[datetime, datetime]]:
    return {key: preset_span(key, shifts, local(now)) for key in PRESETS}


def test_presets_in_the_morning_shift() -> None:
    assert spans(PLANT, "2026-12-04T10:00") == {
        "shift": (local("2026-12-04T06:00"), local("2026-12-04T14:00")),
        "previous-shift": (local("2026-12-03T22:00"), local("2026-12-04T06:00")),
        "today": (local("2026-12-04T06:00"), local("2026-12-05T06:00")),
        "yesterday": (local("2026-12-03T06:00"), local("2026-12-04T06:00")),
        "7days": (local("2026-11-28T06:00"), local("2026-12-05T06:00")),
        "month": (local("2026-12-01T06:00"), local("2026-12-05T06:00")),
    }


def test_after_midnight_the_night_shift_and_today_belong_to_the_day_they_started() -> None:
    found = spans(PLANT, "2026-12-04T02:00")
    assert found["shift"] == (local("2026-12-03T22:00"), local("2026-12-04T06:00"))
    assert found["previous-shift"] == (local("2026-12-03T14:00"), local("2026-12-03T22:00"))
    assert found["today"] == (local("2026-12-03T06:00"), local("2026-12-04T06:00"))
    assert found["yesterday"] == (local("2026-12-02T06:00"), local("2026-12-03T06:00"))
    # On the 1st before the morning shift, this month is still last month's last day's.
    assert spans(PLANT, "2026-12-01T03:00")["month"] == (local("2026-11-01T06:00"), local("2026-12-01T06:00"))


def test_a_production_day_starting_at_22_00() -> None:
    evening = spans(NIGHT_FIRST, "2026-12-04T23:00")
    assert evening["today"] == (local("2026-12-04T22:00"), local("2026-12-05T22:00"))
    assert evening["shift"] == evening["today"]
    assert evening["yesterday"] == (local("2026-12-03T22:00"), local("2026-12-04T22:00"))
    # The next afternoon is still that production day.
    assert spans(NIGHT_FIRST, "2026-12-05T15:00")["today"] == evening["today"]
    assert spans(NIGHT_FIRST, "2026-12-04T21:59")["today"] == evening["yesterday"]


def test_presets_on_the_days_the_clocks_change() -> None:
    autumn = spans(PLANT, "2026-10-25T12:00")  # 04:00 EEST becomes 03:00 EET
    start, end = autumn["yesterday"]  # the production day holding the night of the change
    assert (start, end) == (local("2026-10-24T06:00"), local("2026-10-25T06:00"))
    assert end - start == timedelta(hours=25)
    assert autumn["today"][1] - autumn["today"][0] == timedelta(hours=24)
    night_start, night_end = autumn["previous-shift"]
    assert (night_start, night_end) == (local("2026-10-24T22:00"), local("2026-10-25T06:00"))
    assert night_end - night_start == timedelta(hours=9)
    spring = spans(PLANT, "2026-03-29T12:00")  # 03:00 EET becomes 04:00 EEST
    assert spring["yesterday"][1] - spring["yesterday"][0] == timedelta(hours=23)
    assert spring["previous-shift"][1] - spring["previous-shift"][0] == timedelta(hours=7)
    assert spring["7days"] == (local("2026-03-23T06:00"), local("2026-03-30T06:00"))


def test_a_range_is_said_in_words() -> None:
    now = local("2026-12-04T10:00")

    def say(key: str | None, start: datetime | None, end: datetime | None, language: str = "en") -> str:
        return str(in_words(key, start, end, now, ZONE, language))

    assert say("today", *preset_span("today", PLANT, now)) == "Today, since 06:00"
    assert say("yesterday", *preset_span("yesterday", PLANT, now)) == "Yesterday, 2026-12-03 06:00 to 06:00"
    assert say(None, local("2026-11-20T06:00"), local("2026-11-21T06:00"), "ro") == \
        "From 20.11.2026 06:00 to 21.11.2026 06:00"  # the English msgid; Romanian dates
    assert say(None, local("2026-11-20T06:00"), None) == "Since 2026-11-20 06:00"
    assert say(None, None, None) == "Any time"


@pytest.fixture
def settings(db_url: Any) -> Settings:
    return plant_settings(db_url)


def test_dates_typed_in_romanian_or_iso_are_the_same_moment(settings: Settings) -> None:
    for romanian, iso in (("20.11.2026", "2026-11-20"), ("20.11.2026 06:00", "2026-11-20T06:00"),
                          ("1.2.2026 6:05", "2026-02-01 06:05"),
                          ("20.11.2026 14:30:15", "2026-11-20 14:30:15")):
        typed = read_filter({"from": romanian, "to": "30.11.2026"}, settings)
        written = read_filter({"from": iso, "to": "2026-11-30"}, settings)
        assert typed.ok and written.ok, (romanian, typed.checked.errors)
        assert (typed.filter.start, typed.filter.end) == (written.filter.start, written.filter.end)
    assert read_filter({"to": "20.11.2026"}, settings).filter.end == local("2026-11-21T00:00")


@pytest.mark.parametrize(("params", "field", "message"), [
    ({"from": "31.02.2026"}, "from", "From is not a real date or time."),
    ({"from": "2026/11/20"}, "from", "From must look like 2026-11-27 06:00 or 27.11.2026 06:00."),
    ({"to": "20.11.26"}, "to", "To must look like"),
    ({"to": "20.11.2026 25:00"}, "to", "To is not a real date or time."),
    ({"range": "fortnight"}, "range", "Range: choose one from the list."),
    ({"range": "today", "from": "2026-11-20"}, "range", "Choose a range or From and To, not both."),
])
def test_a_bad_date_or_range_is_told_beside_its_field_and_shows_nothing(
        client: TestClient, make_user: Any, params: dict[str, str], field: str, message: str) -> None:
    make_user("sue", "supervisor")
    login(client, "sue")
    for address in ("/scans", "/reports"):
        page = client.get(address, params=params)
        assert page.status_code == 400
        assert f'data-testid="{field}-error">' in page.text and message in page.text
        assert "data-scan-id=" not in page.text and 'data-testid="report-range"' not in page.text


def test_presets_and_default_ranges_are_said_on_the_list_and_the_report(
        client: TestClient, make_user: Any, db_url: Any, settings: Settings) -> None:
    seed_through(db_url, 200)
    # The demo's newest scan is hours old: early in a production day, today holds none of them.
    run_async(execute(db_url, "UPDATE scans SET created_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND"
                              " ORDER BY id DESC LIMIT 1"))
    make_user("sue", "supervisor")
    login(client, "sue")
    now = utc_now()
    today_start, today_end = preset_span("today", Shifts.of_plant(settings), now)
    listed = client.get("/scans", params={"range": "today"})
    assert listed.status_code == 200
    words = in_words("today", today_start, today_end, now, ZONE, "en")
    assert f'data-testid="range-words">{words}</p>' in listed.text
    assert '<option value="today" selected>' in listed.text
    shown = {scan.split('"')[0] for scan in listed.text.split('data-scan-id="')[1:]}
    assert shown and all(today_start <= row.created_at < today_end for row in read_rows(db_url, shown))
    assert 'data-testid="range-words">Any time</p>' in client.get("/scans").text
    report = client.get("/reports")
    assert 'data-testid="range-words">Last 14 days, since' in report.text
    yesterday = client.get("/reports", params={"range": "yesterday"})
    assert 'data-testid="range-words">Yesterday, ' in yesterday.text
    romanian = client.get("/scans", params={"from": "20.11.2026", "to": "21.11.2026"})
    assert romanian.status_code == 200 and 'value="20.11.2026"' in romanian.text


def read_rows(db_url: Any, ids: set[str]) -> list[Any]:
    from quality.pages.scan_list.queries import _SELECT, scan_row
    from tests.conftest import database_for

    async def read() -> list[Any]:
        db = database_for(db_url)
        try:
            async with db.transaction() as cur:
                await cur.execute(f"{_SELECT} WHERE s.id IN ({','.join(['%s'] * len(ids))})", sorted(ids))
                return [scan_row(values) for values in await cur.fetchall()]
        finally:
            await db.close()

    return run_async(read())
