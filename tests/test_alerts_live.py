"""The live alert banners over a real server's streams: a supervisor's
/alerts/stream and, for a rule that asks for it, the station's own stream,
each in its user's language; an alert from another process arrives too."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx2

from quality.settings import Settings
from tests.conftest import LiveServer, csrf_token_in
from tests.test_live_streams import signed_in


async def next_banner(stream: httpx2.Response, containing: str) -> str:
    """The HTML of the first event that contains `containing`."""
    data: list[str] = []
    async for line in stream.aiter_lines():
        if line.startswith("data: "):
            data.append(line[6:])
        elif not line:
            if containing in " ".join(data):
                return " ".join(" ".join(data).split())
            data = []
    raise AssertionError("the stream ended")


async def fg_scan(operator: httpx2.AsyncClient, csrf: str, number: int) -> None:
    """Piece `number` of order CP00012345 rejected for defect 104 at the
    finished goods station, by a signed-in operator (`csrf`: their session's token)."""
    saved = await operator.post("/fgscan", headers={"HX-Request": "true", "X-CSRF-Token": csrf},
                                data={"operator_code": "OP07", "checker1_code": "OC12",
                                      "checker2_code": "OC13", "defect_code": "104",
                                      "piece_code": f"CP00012345-{number:04d}",
                                      "submission_id": secrets.token_hex(16)})
    assert saved.status_code == 200


async def test_banners_reach_supervisors_and_the_station_in_their_language(
    settings: Settings, make_user: Any
) -> None:
    make_user("ada", "admin")
    make_user("olivia", "operator")
    make_user("sven", "supervisor")
    first, second = LiveServer(settings), LiveServer(settings)
    await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
    clients: list = []  # closed however the test ends: no socket left to a later test
    try:
        admin = await signed_in(first, "ada")
        clients.append(admin)
        token = csrf_token_in((await admin.get("/admin/alerts")).text)
        added = await admin.post("/admin/alerts", data={
            "csrf_token": token, "kind": "repeated_defect", "station": "fg", "pieces": "2",
            "at_station": "on", "mail_language": "en"})
        assert added.status_code == 303
        supervisor = await signed_in(second, "sven")
        clients.append(supervisor)
        await supervisor.post("/language", data={
            "csrf_token": csrf_token_in((await supervisor.get("/scans")).text), "language": "ro"})
        page = (await supervisor.get("/scans")).text
        assert 'role="alert" data-stream="/alerts/stream"' in page
        operator = await signed_in(first, "olivia")
        clients.append(operator)
        station = (await operator.get("/fgscan")).text
        assert 'data-stream="/alerts/stream/fg"' in station
        async with supervisor.stream("GET", "/alerts/stream") as watching, \
                operator.stream("GET", "/alerts/stream/fg") as at_station:
            assert watching.status_code == 200 and at_station.status_code == 200
            for number in (1, 2):
                await fg_scan(operator, csrf_token_in(station), number)
            seen = await asyncio.wait_for(next_banner(watching, "Alertă de calitate"), 5)
            assert "același defect de 2 ori la rând" in seen
            shown = await asyncio.wait_for(next_banner(at_station, "Call your supervisor"), 5)
            assert "Finished goods scan: the same defect 2 times in a row." in shown
    finally:
        for http in clients:
            await http.aclose()
        first.stop()
        second.stop()
