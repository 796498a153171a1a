"""The Galera writer node SIGKILLed behind HAProxy (tests/cluster.py; a
cluster of this module's own) while five stations scan through two app hosts,
each re-sending a submission until it is acknowledged, as the scan page does;
then the node restarted and HAProxy failing back to it while they go on.
Nothing acknowledged may be lost or saved twice, nobody may see a 500, and
scanning must be back within 20 s."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from asyncmy.errors import MySQLError

from quality.accounts import create_user
from quality.db import DatabaseError
from quality.settings import Settings
from tests.cluster import AppDatabase, Galera
from tests.conftest import PASSWORD, LiveServer, csrf_token_in, database_for, execute, migrated
from tests.test_cluster_app import SECRET
from tests.test_stations import GOOD, HTMX

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster")]

STATIONS = 5
BACK_WITHIN = 20.0  # seconds: the bound, a generous limit on a loaded machine
AFTER_EACH_STEP = 3  # acknowledged scans per station after the kill, and after the failback
PHASE_AT_MOST = 90.0  # seconds: a bound on each phase's wait, not a measurement
TRIES_PER_SCAN = 600  # re-sends of one submission, 0.1 s apart at least


@dataclass
class Floor:
    """What the stations saw: acknowledged submissions (when the POST that was
    acknowledged was sent, when it was answered), every answer's status."""

    acknowledged: list[tuple[str, float, float]] = field(default_factory=list)
    answers: Counter[int | str] = field(default_factory=Counter)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def since(self, moment: float) -> list[float]:
        """When the scans sent after `moment` were acknowledged."""
        return sorted(answered for _, sent, answered in self.acknowledged if sent > moment)


async def _signed_in(server: LiveServer, username: str) -> tuple[httpx2.AsyncClient, str]:
    """A station's browser, signed in, and its CSRF token."""
    http = httpx2.AsyncClient(base_url=server.url, timeout=15)
    page = await http.get("/login")
    answer = await http.post("/login", data={"username": username, "password": PASSWORD,
                                             "csrf_token": csrf_token_in(page.text)})
    assert answer.status_code == 303, (answer.status_code, answer.text[-500:])
    page = await http.get("/scan")
    assert page.status_code == 200, (page.status_code, page.text[-500:])
    return http, csrf_token_in(page.text)


async def _station(http: httpx2.AsyncClient, csrf: str, floor: Floor, number: int) -> None:
    try:
        scan = 0
        while not floor.stop.is_set():
            scan += 1
            submission = secrets.token_hex(16)
            data = {**GOOD, "piece_code": f"CP{number:04d}{scan:04d}-0001", "submission_id": submission}
            for _ in range(TRIES_PER_SCAN):  # the same submission until acknowledged
                sent_at = time.monotonic()
                try:
                    answer = await http.post("/scan", data=data, headers={**HTMX, "X-CSRF-Token": csrf})
                except httpx2.TransportError as exc:
                    floor.answers[type(exc).__name__] += 1
                else:
                    floor.answers[answer.status_code] += 1
                    if answer.status_code == 200:
                        floor.acknowledged.append((submission, sent_at, time.monotonic()))
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"station {number}: {submission} never acknowledged")
    finally:
        await http.aclose()


async def _until(check: Callable[[], bool], stations: list[asyncio.Task[None]]) -> None:
    """Until `check` holds; a station that stopped says why."""
    deadline = time.monotonic() + PHASE_AT_MOST
    while not check():
        for station in stations:
            if station.done():
                station.result()
        assert time.monotonic() < deadline, "a phase did not end within its bound"
        await asyncio.sleep(0.1)


async def _users(app: AppDatabase, port: int) -> None:
    db = database_for(app.url(port), maxsize=1)
    try:
        for n in range(STATIONS):
            await create_user(db, f"station{n}", PASSWORD, "operator")
    finally:
        await db.close()


@pytest.fixture(scope="module")
def galera() -> Iterator[Galera]:
    """A cluster of its own, so that the kill and the rejoin leave the session's alone."""
    base = Path(tempfile.mkdtemp(prefix="qgf-", dir="/tmp"))  # short: unix socket paths
    cluster = Galera(base)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


async def test_a_killed_writer_loses_and_doubles_nothing_acknowledged(galera: Galera) -> None:
    writer = galera.writer
    with galera.app_database() as app:
        galera.set_trust_function_creators(True)
        through_proxy = app.url(galera.haproxy.port)
        migrated(through_proxy)
        await _users(app, galera.haproxy.port)
        servers = [LiveServer(_settings(app, galera.haproxy.port)) for _ in range(2)]
        floor = Floor()
        try:
            for server in servers:
                await asyncio.to_thread(server.start)
            browsers = [await _signed_in(servers[n % 2], f"station{n}") for n in range(STATIONS)]
            stations = [asyncio.create_task(_station(http, csrf, floor, n))
                        for n, (http, csrf) in enumerate(browsers)]
            await _until(lambda: len(floor.acknowledged) >= 2 * STATIONS, stations)

            await asyncio.to_thread(writer.kill)
            killed_at = time.monotonic()  # the node is gone: what is acknowledged now, another saved
            await _until(lambda: len(floor.since(killed_at)) >= AFTER_EACH_STEP * STATIONS, stations)

            restarted_at = time.monotonic()
            await asyncio.to_thread(writer.start)  # rejoins; HAProxy fails back to it
            await _failed_back(galera, app)
            back_at = time.monotonic()
            await _until(lambda: len(floor.since(back_at)) >= AFTER_EACH_STEP * STATIONS, stations)
            floor.stop.set()
            await asyncio.wait_for(asyncio.gather(*stations), PHASE_AT_MOST)
        finally:
            floor.stop.set()
            logged = [server.output() for server in servers]
            for server in servers:
                server.stop()
            if not writer.is_running():  # to drop the test's database
                writer.start()

        first_after_kill = floor.since(killed_at)[0] - killed_at
        print(f"\nfailover: first acknowledged scan {first_after_kill:.1f}s after the kill;"
              f" node back and failed back in {back_at - restarted_at:.1f}s;"
              f" {len(floor.acknowledged)} acknowledged; answers {dict(floor.answers)}")
        assert first_after_kill < BACK_WITHIN
        # never a 500, nor a dropped request; the servers' logs say why if there was one
        assert set(floor.answers) <= {200, 503}, "\n".join(output[-6000:] for output in logged)
        submissions = [submission for submission, _, _ in floor.acknowledged]
        assert len(set(submissions)) == len(submissions)
        saved = galera.nodes[1].query(
            f"USE `{app.name}`", "SET SESSION wsrep_sync_wait = 1",
            "SELECT LOWER(HEX(submission_id)), COUNT(*) FROM scans GROUP BY submission_id")[2]
        # Every acknowledged scan saved once; nothing else saved (each submission
        # was sent until acknowledged).
        assert dict(saved) == dict.fromkeys(submissions, 1)
        problems = [line for output in logged for line in output.splitlines()
                    if " ERROR " in line or "Traceback" in line]
        assert problems == []


def _settings(app: AppDatabase, port: int) -> Settings:
    return Settings(database_url=app.url(port), secret_key=SECRET, pool_min=1, pool_max=10,
                    pool_timeout=2.0)


async def _failed_back(galera: Galera, app: AppDatabase) -> None:
    """Until HAProxy sends new connections to the writer again."""
    deadline = time.monotonic() + PHASE_AT_MOST
    while True:
        try:
            (rows,) = await execute(app.url(galera.haproxy.port), "SELECT @@wsrep_node_name")
            if rows == [(galera.writer.name,)]:
                return
        except (DatabaseError, MySQLError):
            pass  # not ready yet
        assert time.monotonic() < deadline, "HAProxy did not fail back within its bound"
        await asyncio.sleep(0.2)
