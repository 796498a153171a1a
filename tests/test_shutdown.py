"""Graceful shutdown, proven: SIGTERM to `quality serve` in the middle of a burst
of scans from concurrent clients loses no confirmed scan, saves none twice,
leaves no half-written scan, and the process exits by itself."""

from __future__ import annotations

import asyncio
import secrets
import signal
import subprocess
from typing import Any

import httpx2
import pytest

from quality.settings import Settings
from tests.conftest import PASSWORD, LiveServer, client_sockets_may_leak, execute, run_async

CLIENTS = 8
SIGNAL_AFTER = 60  # confirmed scans before the signal


async def signed_in(base: str, username: str) -> tuple[httpx2.AsyncClient, str]:
    http = httpx2.AsyncClient(base_url=base, timeout=30)
    page = await http.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    await http.post("/login", data={"username": username, "password": PASSWORD,
                                    "csrf_token": token})
    page = await http.get("/scan")
    return http, page.text.split('"X-CSRF-Token": "', 1)[1].split('"', 1)[0]


async def burst_with_sigterm(server: LiveServer, username: str) -> set[str]:
    """Clients post back to back; SIGTERM goes out mid-burst; each client stops at
    its first refused or failed request. Returns the confirmed submission ids."""
    assert server.process
    sessions = [await signed_in(server.url, username) for _ in range(CLIENTS)]
    confirmed: set[str] = set()
    enough = asyncio.Event()

    async def client(index: int, http: httpx2.AsyncClient, csrf: str) -> None:
        n = 0
        while True:
            submission = secrets.token_hex(16)
            # A few pieces per order and re-scans of the same pieces, so the
            # verdict and count tables have real work to keep consistent.
            form = {"operator_code": "OP01", "piece_code": f"CP{index:08d}-{n % 15:04d}",
                    "checker1_code": "OC01", "checker2_code": "OC02",
                    "defect_code": "104" if n % 4 == 0 else "000",
                    "submission_id": submission}
            try:
                answer = await http.post("/scan", data=form, headers={
                    "HX-Request": "true", "X-CSRF-Token": csrf})
            except httpx2.TransportError:
                return
            if answer.status_code != 200:
                return
            confirmed.add(submission)
            if len(confirmed) >= SIGNAL_AFTER:
                enough.set()
            n += 1

    async def terminate() -> None:
        await enough.wait()
        server.process.send_signal(signal.SIGTERM)

    await asyncio.gather(terminate(), *(client(i, *s) for i, s in enumerate(sessions)))
    for http, _ in sessions:
        await http.aclose()
    return confirmed


@pytest.mark.parametrize("workers", [1, 2])  # 2: what docker-compose runs
def test_sigterm_mid_burst_keeps_every_confirmed_scan_once(
    settings: Settings, make_user: Any, workers: int
) -> None:
    make_user("shutdown", "operator")
    server = LiveServer(settings, workers=workers)
    server.start()
    try:
        with client_sockets_may_leak():  # the server goes away under the clients
            confirmed = run_async(burst_with_sigterm(server, "shutdown"))
        assert server.process
        try:
            server.process.wait(30)  # a liveness bound, not a timing claim
        except subprocess.TimeoutExpired:
            raise AssertionError("quality serve did not exit after SIGTERM") from None
        output = server.output()
    finally:
        server.stop()
    assert len(confirmed) >= SIGNAL_AFTER
    assert server.process.returncode in (0, 128 + signal.SIGTERM), output
    assert "Traceback" not in output, output

    assert settings.database_url
    saved, verdicts, counts = run_async(execute(
        settings.database_url,
        "SELECT LOWER(HEX(submission_id)), COUNT(*) FROM scans GROUP BY submission_id",
        # Each piece's verdict must be its latest scan's.
        "SELECT COUNT(*) FROM piece_verdicts v JOIN scans s ON s.id = v.last_scan_id"
        " WHERE s.station = v.station AND s.piece_code = v.piece_code"
        " AND s.approved = v.approved AND s.id = (SELECT MAX(id) FROM scans l"
        " WHERE l.station = v.station AND l.piece_code = v.piece_code)",
        # Each order's counts must be its pieces' verdicts.
        "SELECT COUNT(*) FROM order_counts c WHERE (c.approved, c.rejected) <> (SELECT"
        " COALESCE(SUM(v.approved), 0), COALESCE(SUM(NOT v.approved), 0) FROM piece_verdicts v"
        " WHERE v.station = c.station AND v.order_code = c.order_code)",
    ))
    per_submission = dict(saved)
    assert all(per_submission.get(submission) == 1 for submission in confirmed)
    assert all(count == 1 for count in per_submission.values())
    pieces, orders = run_async(execute(
        settings.database_url,
        "SELECT COUNT(DISTINCT station, piece_code) FROM scans",
        "SELECT COUNT(*) FROM (SELECT DISTINCT station, order_code FROM piece_verdicts) o"
        " LEFT JOIN order_counts c USING (station, order_code) WHERE c.order_code IS NULL",
    ))
    assert verdicts == pieces  # one verdict per scanned piece, from its latest scan
    assert counts == [(0,)] and orders == [(0,)]
