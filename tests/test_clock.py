"""The calendar a person may ask about (quality/clock.py), walked on every
date parameter of every page that takes one."""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

from quality.app import create_app
from quality.settings import Settings
from tests.conftest import login

# A day before the first, the first, around the calendar's ends, the ends of what
# Python and MariaDB hold, and dates that do not exist.
EXTREMES = ("0000-01-01", "0001-01-01", "0001-01-05", "0001-01-01T00:01", "0999-12-31",
            "1000-01-01", "1969-12-31T23:59", "9999-12-31", "9999-12-31T23:59:59", "3000-01-01",
            "2026-02-30", "2026-13-01", "2026-11-27T24:00")
# Every page that reads a date, the date parameters it reads, and extra
# parameters that take the dates through other arithmetic (shifts, a range).
PAGES = [
    ("/scans", ("from", "to"), ({}, {"shift": "1"}, {"rejected": "1"})),
    ("/scans/totals", ("from", "to"), ({}, {"shift": "3"})),
    ("/scans/export.csv", ("from", "to"), ({}, {"shift": "2"})),
    ("/scans/export.xlsx", ("from", "to"), ({},)),
    ("/scans/stream", ("from", "to"), ({},)),
    ("/reports", ("from", "to"), ({}, {"shift": "1"})),
    ("/admin/audit", ("since", "until"), ({},)),
]
FORMS = ("/scans", "/reports", "/admin/audit")  # pages showing the filter's own form
CURSORS = ("00000101000000000000-1", "00010101000000000000-1", "99991231235959999999-1",
           "20261301000000000000-1")


@pytest.fixture(params=["Europe/Bucharest", "America/Chicago"])
def plant(request: pytest.FixtureRequest, settings: Settings, make_user: Any) -> Any:
    """A signed-in admin of a plant east or west of UTC: converting a plant day
    to UTC moves it across the calendar's first or last day."""
    make_user("boss", "admin")
    zoned = dataclasses.replace(settings, timezone=ZoneInfo(request.param))
    with TestClient(create_app(zoned), client=("127.0.0.1", 50000)) as client:
        assert login(client, "boss").status_code == 303
        yield client


def test_every_date_parameter_refuses_the_calendars_extremes_with_a_message(plant: TestClient) -> None:
    for path, names, extras in PAGES:
        for name in names:
            for value in EXTREMES:
                for extra in extras:
                    response = plant.get(path, params={name: value, **extra})
                    assert response.status_code in (400, 422), (path, name, value, extra)
                    assert _beside_the_field(name, response.text) if path in FORMS \
                        else "The filter is not valid." in response.text, (path, name, value)


def test_a_date_at_the_calendars_edge_is_still_answered(plant: TestClient) -> None:
    # The first and last days a person may ask about, alone and as a short range.
    for path, (first, last), _ in PAGES:
        if path.endswith("stream"):
            continue
        for params in ({last: "2999-12-31"}, {first: "2999-12-01", last: "2999-12-31"},
                       {first: "1970-01-01", last: "1970-01-02"}):
            response = plant.get(path, params=params)
            assert response.status_code == 200, (path, params, response.text[:300])


def test_a_report_from_long_ago_asks_for_a_shorter_range(plant: TestClient) -> None:
    # A report reads each day of its range; the list pages read by index and
    # take an open range, so only the report refuses it.
    response = plant.get("/reports", params={"from": "1970-01-01"})
    assert response.status_code == 400
    assert re.search('data-testid="from-error">A report may span at most 400 days', response.text)
    assert plant.get("/scans", params={"from": "1970-01-01"}).status_code == 200
    # `to` alone is the fortnight before it, not the time from today back to it.
    response = plant.get("/reports", params={"to": "2026-01-14"})
    assert response.status_code == 200 and "2026-01-01" in response.text


def test_a_page_link_outside_the_calendar_is_a_broken_link(plant: TestClient) -> None:
    # Out-of-calendar dates say so in words beside the field.
    message = plant.get("/scans", params={"from": "9999-12-31"}).text
    assert 'data-testid="from-error">From must be between 1970-01-01 and 2999-12-31.<' in message
    for name in ("before", "after"):
        for cursor in CURSORS:
            response = plant.get("/scans", params={name: cursor})
            assert response.status_code == 400, (name, cursor)
            assert "This page link is broken" in response.text


def _beside_the_field(name: str, html: str) -> bool:
    """Whether the page names what is wrong with `name` beside its field."""
    return re.search(f'data-testid="{name}-error">[^<]+<', html) is not None
