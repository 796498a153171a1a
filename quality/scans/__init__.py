"""Operator scan stations: /scan (quality, at production) and /fgscan (finished goods)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Station:
    key: str  # stored in scans.station
    path: str
    permission: str
    title: str


STATIONS = {
    "quality": Station("quality", "/scan", "scan.quality", "Quality scan"),
    "fg": Station("fg", "/fgscan", "scan.fg", "Finished goods scan"),
}
