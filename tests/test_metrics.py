"""/metrics with several workers: one coherent view (prometheus-client's multiprocess
mode), also after a worker dies."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import httpx2
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from quality.settings import Settings
from tests.conftest import PASSWORD, LiveServer, execute, run_async

SCANS_HELP = "Scans saved by station and verdict"


def scans_key(station: str, verdict: str) -> str:
    return mmap_key("quality_scans_saved", "quality_scans_saved_total", ["station", "verdict"],
                    [station, verdict], SCANS_HELP)


def leave_stale_file(directory: Path) -> None:
    """A previous run's counter file: summed into the figures unless the server clears it."""
    stale = MmapedDict(str(directory / "counter_1.db"))
    stale.write_value(scans_key("quality", "approved"), 1000.0, 0.0)
    stale.close()


def scans_by_process(directory: Path) -> dict[str, float]:
    """Scans each worker counted, read from its own file."""
    counted = {}
    for path in directory.glob("counter_*.db"):
        counted[path.stem] = sum(
            value for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))
            if key.startswith('["quality_scans_saved"')
        )
    return counted


async def scan_burst(base: str, username: str, clients: int, scans: int) -> int:
    """`clients` sessions, each on its own connection, post `scans` scans each.
    They sign in one after another: sign-ins of one user from one address in
    flight at the same moment count as attempts until each is checked, so a
    parallel burst of them meets the throttle (tests/test_auth.py)."""
    signing_in = asyncio.Lock()

    async def one_client() -> int:
        async with httpx2.AsyncClient(base_url=base, timeout=30) as http:
            async with signing_in:
                page = await http.get("/login")
                token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
                signed = await http.post("/login", data={
                    "username": username, "password": PASSWORD, "csrf_token": token})
            assert signed.status_code == 303, (signed.status_code, signed.text[-800:])
            page = await http.get("/scan")
            csrf = page.text.split('"X-CSRF-Token": "', 1)[1].split('"', 1)[0]
            saved = 0
            for n in range(scans):
                answer = await http.post("/scan", headers={"HX-Request": "true",
                                                           "X-CSRF-Token": csrf}, data={
                    "operator_code": "OP01", "piece_code": f"CP{secrets.randbelow(10**8):08d}-{n:04d}",
                    "checker1_code": "OC01", "checker2_code": "OC02",
                    "defect_code": "104" if n % 3 == 0 else "000",
                    "submission_id": secrets.token_hex(16),
                })
                assert answer.status_code == 200, answer.text
                saved += 1
            return saved

    return sum(await asyncio.gather(*(one_client() for _ in range(clients))))


async def scrape(base: str) -> dict[str, float]:
    """One scrape on a fresh connection (so it may reach either worker), summed by name."""
    async with httpx2.AsyncClient(base_url=base) as http:
        text = (await http.get("/metrics")).text
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name
            if sample.name == "quality_http_requests_total":
                key += f"{{{sample.labels['method']} {sample.labels['route']} " \
                       f"{sample.labels['status']}}}"
            totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def test_two_workers_give_one_view(
    settings: Settings, make_user: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    leave_stale_file(directory)
    make_user("mworker", "operator")
    server = LiveServer(settings, {"PROMETHEUS_MULTIPROC_DIR": str(directory)}, workers=2)
    server.start()
    try:
        acknowledged = 0
        # Connections land on whichever worker accepts first: scan until both saved some.
        for _ in range(20):
            acknowledged += run_async(scan_burst(server.url, "mworker", clients=6, scans=5))
            if sum(1 for count in scans_by_process(directory).values() if count) >= 2:
                break
        assert sum(1 for count in scans_by_process(directory).values() if count) >= 2
        assert settings.database_url
        ((saved,),), = run_async(execute(settings.database_url, "SELECT COUNT(*) FROM scans"))
        assert saved == acknowledged
        for _ in range(6):
            totals = run_async(scrape(server.url))
            assert totals["quality_scans_saved_total"] == saved
            assert totals["quality_http_requests_total{POST /scan 200}"] == saved
            # Both live workers' pool gauges, summed.
            assert totals["quality_db_pool_max"] == 2 * settings.pool_max

        # A worker dies without cleaning up; uvicorn starts another. Its scans
        # still count; its pool gauges must leave the sums.
        victim = next(int(name.split("_")[1]) for name, count
                      in scans_by_process(directory).items() if count)
        os.kill(victim, signal.SIGKILL)
        wait_for_replacement(directory, victim, settings.pool_max)
        for _ in range(6):
            totals = run_async(scrape(server.url))
            assert totals["quality_scans_saved_total"] == saved
            assert totals["quality_db_pool_max"] == 2 * settings.pool_max
    finally:
        server.stop()


def wait_for_replacement(directory: Path, victim: int, pool_max: int) -> None:
    """Until the dead worker is reaped and a new one has published its pool."""
    for _ in range(600):
        published = [
            value for path in directory.glob("gauge_livesum_*.db")
            if int(path.stem.rsplit("_", 1)[1]) != victim
            for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))
            if key.startswith('["quality_db_pool_max"')
        ]
        if not Path(f"/proc/{victim}").exists() and len(published) >= 2 and all(
                value == pool_max for value in published):
            return
        time.sleep(0.1)
    raise AssertionError("no replacement worker published its pool figures")
