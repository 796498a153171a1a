"""The home page: each user's pages, the scan stations as the stations declare them."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from quality.http.destinations import DESTINATIONS
from quality.stations import STATIONS, station_at
from tests.conftest import login


def test_home_lists_the_stations_this_user_may_use(client: TestClient, make_user: Any) -> None:
    make_user("ada", "admin")
    login(client, "ada")
    home = client.get("/").text
    for station in STATIONS.values():
        assert (f'<a class="tile" href="{station.path}"><strong>{station.title}</strong>'
                f"<span>{station.summary}</span></a>") in home
    # An admin holds every permission: a destination shows exactly when this version serves it.
    served = {getattr(route, "path", None) for route in client.app.routes}
    for _permission, url, _title, _text in DESTINATIONS:
        assert (f'<a class="tile" href="{url}">' in home) == (url in served), url
    assert "/admin/users" in served


def test_each_station_is_found_at_its_page_and_its_stream() -> None:
    for station in STATIONS.values():
        assert station_at(station.path) is station
        assert station_at(station.stream_path) is station
