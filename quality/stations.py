"""The scan stations, defined once: /scan (quality, at production) and /fgscan
(finished goods), each with its key (`scans.station`, and every `station`
ENUM column in the schema, which a test holds to these keys), its pages'
addresses and permission, and what people call it. Their pages are
quality/pages/stations/."""

from __future__ import annotations

from dataclasses import dataclass

from quality.i18n import lazy


@dataclass(frozen=True)
class Station:
    key: str  # stored in scans.station
    path: str
    permission: str
    title: str  # its page's title, the scan list's station filter and the exports
    name: str  # short, in the scan list's rows
    summary: str  # what the home page says about it

    @property
    def stream_path(self) -> str:
        return self.path + "/stream"

    @property
    def piece_path(self) -> str:
        """A piece's latest verdict here (the page's re-scan marker)."""
        return self.path + "/piece"

    @property
    def operator_path(self) -> str:
        """An operator's scans here this shift (the page's counter)."""
        return self.path + "/operator"

    @property
    def session_path(self) -> str:
        """Who the page's session is and its CSRF token (a page the terminal kept
        asks before sending what it saved while the app was down)."""
        return self.path + "/session"


STATIONS = {
    "quality": Station("quality", "/scan", "scan.quality", lazy("Quality scan"), lazy("Quality"),
                       lazy("Scan pieces at production.")),
    "fg": Station("fg", "/fgscan", "scan.fg", lazy("Finished goods scan"), lazy("Finished goods"),
                  lazy("Scan finished goods.")),
}
_AT_PATH = {path: station for station in STATIONS.values()
            for path in (station.path, station.stream_path, station.piece_path, station.operator_path,
                         station.session_path)}


def station_at(route_path: str) -> Station:
    """The station whose page or stream is served at this route path."""
    return _AT_PATH[route_path]
