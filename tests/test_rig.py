"""The suite's own rig: what its servers need to be reachable by its tools."""

from __future__ import annotations

from tests.conftest import BROWSERS_REFUSE_UP_TO, free_ports


def test_free_ports_are_ports_a_browser_will_load_pages_from() -> None:
    # Once a live server drew 6665 (IRC), and Chromium refused it: ERR_UNSAFE_PORT.
    ports = free_ports(500)
    assert len(set(ports)) == 500
    assert min(ports) > BROWSERS_REFUSE_UP_TO
