"""The app with a read replica (tests/cluster.py `replica_pair`: a primary and
a replica following it by GTID, on loopback): list pages past the first,
totals, reports and exports are read there while it keeps up, and are the
same answers the primary gives; a replica that lags, refuses or is killed
changes where they are read, never what they say, and nobody sees an error;
a client's own write is read from the primary until the replica has it.
The metrics' counters say which server answered."""

from __future__ import annotations

import os
import re
import secrets
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from quality.accounts import create_user
from quality.app import create_app
from quality.db import Cursor
from quality.replica import Replica
from quality.settings import Settings
from tests.cluster import AppDatabase, ReplicaPair
from tests.conftest import app_services, csrf_token_in, database_for, eventually, login, migrated, run_async
from tests.test_live_figures import scans_total
from tests.test_stations import GOOD, HTMX

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster")]

TOKEN = "replica-metrics-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
READER = "reader"
SCANS = 180  # more than three list pages


def _scans(pair: ReplicaPair, app: AppDatabase, count: int, tag: str) -> None:
    """`count` scans written on the primary, ten minutes old, piece codes by `tag`."""
    pair.primary.query(
        f"USE `{app.name}`",
        "INSERT INTO scans (station, submission_id, operator_code, piece_code, order_code,"
        " checker1_code, checker2_code, defect_code, approved, created_at, created_by)"
        f" SELECT 'quality', UNHEX(MD5(CONCAT('{tag}-', seq))), 'OP07',"
        f" CONCAT('CP{tag}', LPAD(seq, 4, '0'), '-0001'), CONCAT('CP{tag}', LPAD(seq, 4, '0')),"
        " 'OC12', 'OC13', IF(seq MOD 7, '000', '101'), seq MOD 7 <> 0,"
        " UTC_TIMESTAMP(6) - INTERVAL 10 MINUTE + INTERVAL seq SECOND, (SELECT MIN(id) FROM users)"
        f" FROM seq_1_to_{count}")


def _count(pair: ReplicaPair, app: AppDatabase) -> int:
    """Scans on the primary."""
    (rows,) = pair.primary.query(f"SELECT COUNT(*) FROM `{app.name}`.scans")[-1:]
    return rows[0][0]


def _summarised(pair: ReplicaPair, app: AppDatabase) -> None:
    """Until the apps' summariser has folded every scan and the replica has it:
    the pick lists come from the summaries, so answers compared must not be
    read on either side of a fold."""
    assert eventually(lambda: pair.primary.query(f"SELECT COUNT(*) FROM `{app.name}`.scan_queue")[-1]
                      == [(0,)])
    pair.wait_caught_up()


def _lines(csv: str) -> int:
    return len(csv.strip().splitlines())


@pytest.fixture(scope="module")
def app_db(replica_pair: ReplicaPair) -> Iterator[AppDatabase]:
    """A migrated database on the primary, replicated, with a reader and some scans."""
    with replica_pair.app_database() as app:
        # The app's account creates triggers on a server writing a binary log (README: Deploy).
        replica_pair.primary.query("SET GLOBAL log_bin_trust_function_creators = 1")
        try:
            migrated(app.url(replica_pair.primary.port))
        finally:
            replica_pair.primary.query("SET GLOBAL log_bin_trust_function_creators = 0")

        async def reader() -> None:
            db = database_for(app.url(replica_pair.primary.port), maxsize=1)
            try:
                await create_user(db, READER, "correct-horse-42", "admin")
            finally:
                await db.close()

        run_async(reader())
        _scans(replica_pair, app, SCANS, "0042")
        replica_pair.wait_caught_up()
        yield app


def _settings(pair: ReplicaPair, app: AppDatabase, *, replica: bool = True, max_lag: float = 5.0) -> Settings:
    return Settings(database_url=app.url(pair.primary.port),
                    replica_url=app.url(pair.replica.port) if replica else None,
                    replica_max_lag=max_lag, secret_key="replica-test-secret-0123456789abcdef",
                    metrics_token=TOKEN, pool_min=1, pool_max=5, pool_timeout=2.0)


@pytest.fixture
def open_app(replica_pair: ReplicaPair, app_db: AppDatabase) -> Iterator[Any]:
    """`open_app(**settings)`: a signed-in client of an app with those settings."""
    with _Clients() as clients:
        def make(**options: Any) -> TestClient:
            client = clients.enter(TestClient(create_app(_settings(replica_pair, app_db, **options))))
            assert login(client, READER, "correct-horse-42").status_code == 303
            return client

        yield make


class _Clients:
    def __init__(self) -> None:
        self.open: list[TestClient] = []

    def enter(self, client: TestClient) -> TestClient:
        self.open.append(client.__enter__())
        return client

    def __enter__(self) -> _Clients:
        return self

    def __exit__(self, *exc: object) -> None:
        for client in reversed(self.open):
            client.__exit__(None, None, None)


def _figures(client: TestClient) -> dict[str, float]:
    """The replica's counters from /metrics: reads it served, fallbacks by reason."""
    text = client.get("/metrics", headers=BEARER).text
    figures = {"reads": 0.0}
    for name, labels, value in re.findall(
            r'^quality_db_replica_(reads|fallbacks)_total(?:\{reason="(\w+)"\})? (\S+)$', text, re.M):
        figures[labels or name] = float(value)
    return figures


_TOKENS = re.compile(r'(name="csrf_token" value="|"X-CSRF-Token": ")[^"]+"')


def _answers(client: TestClient) -> dict[str, str]:
    """What the pages served from the replica answer: the second and third
    list pages, totals, a report and an export (CSRF tokens left out)."""
    first = client.get("/scans").text
    second_url = re.search(r'rel="next" href="([^"]+)"', first)[1].replace("&amp;", "&")
    second = client.get(second_url)
    third_url = re.search(r'rel="next" href="([^"]+)"', second.text)[1].replace("&amp;", "&")
    pages = {
        "second page": second,
        "third page": client.get(third_url),
        "totals": client.get("/scans/totals"),
        "report": client.get("/reports"),
        "export": client.get("/scans/export.csv"),
    }
    assert {name: answer.status_code for name, answer in pages.items()} == dict.fromkeys(pages, 200)
    return {name: _TOKENS.sub(r"\1", answer.text) for name, answer in pages.items()}


def _replica_in_use(client: TestClient) -> bool:
    """Whether the replica answers this client's reads now: it answers one.
    (Signing in is a write too: for a moment after it, the client reads the primary.)"""
    before = _figures(client)
    assert client.get("/scans/totals").status_code == 200
    return _figures(client)["reads"] > before["reads"]


def _health(client: TestClient) -> dict[str, Any]:
    return client.get("/healthz", headers=BEARER).json()["replica"]


def test_lists_totals_reports_and_exports_from_the_replica_match_the_primary(
        open_app: Any, replica_pair: ReplicaPair, app_db: AppDatabase) -> None:
    alone = open_app(replica=False)
    with_replica = open_app()
    _summarised(replica_pair, app_db)
    assert eventually(lambda: _replica_in_use(with_replica))
    before = _figures(with_replica)
    answers = _answers(with_replica)
    after = _figures(with_replica)
    # Report: three reads (two for its tables, one for its defects' categories);
    # export: one batch; the others one each. No fallback.
    assert after["reads"] - before["reads"] == 7
    assert {key: value for key, value in after.items() if key != "reads"} == {
        key: value for key, value in before.items() if key != "reads"}
    assert answers == _answers(alone)
    assert _lines(answers["export"]) == _count(replica_pair, app_db) + 1  # a header, then each scan
    health = _health(with_replica)
    assert health["reachable"] and health["encrypted"] is False and health["reads"] >= 7


def test_a_replica_lagging_past_the_limit_leaves_reads_to_the_primary(
        open_app: Any, replica_pair: ReplicaPair, app_db: AppDatabase) -> None:
    client = open_app(max_lag=1.0)
    assert eventually(lambda: _replica_in_use(client))
    replica_pair.replica.query("STOP SLAVE SQL_THREAD")
    try:
        _scans(replica_pair, app_db, 25, "0043")  # on the primary only, for now
        # Past the limit: the lag is measured by the position the replica lacks.
        assert eventually(lambda: _health(client)["lag_seconds"] > 1.0)
        before = _figures(client)
        export = client.get("/scans/export.csv")
        totals = client.get("/scans/totals")
        assert export.status_code == totals.status_code == 200
        assert _lines(export.text) == _count(replica_pair, app_db) + 1
        assert export.text.count("CP0043") == 25 * 2  # piece and order
        after = _figures(client)
        assert after["reads"] == before["reads"]
        assert after["lagging"] - before.get("lagging", 0) == 2
    finally:
        replica_pair.replica.query("START SLAVE SQL_THREAD")
        replica_pair.wait_caught_up()
    # Caught up again: the replica serves again.
    assert eventually(lambda: _replica_in_use(client))
    before = _figures(client)
    assert client.get("/scans/totals").status_code == 200
    assert _figures(client)["reads"] == before["reads"] + 1


def test_a_replica_that_refuses_or_is_killed_changes_nothing_the_user_sees(
        open_app: Any, replica_pair: ReplicaPair, app_db: AppDatabase) -> None:
    alone = open_app(replica=False)
    client = open_app()
    _summarised(replica_pair, app_db)
    expected = _answers(alone)
    assert eventually(lambda: _replica_in_use(client))
    # Refusing: the app's account may no longer read there (a DBA's mistake on
    # the replica only), and its sessions there were ended.
    replica_pair.replica.query(f"REVOKE ALL PRIVILEGES ON `{app_db.name}`.* FROM `{app_db.user}`@'127.0.0.1'")
    (sessions,) = replica_pair.replica.query(
        f"SELECT id FROM information_schema.processlist WHERE user = '{app_db.user}'")
    replica_pair.replica.query(*(f"KILL CONNECTION {id_}" for (id_,) in sessions))
    try:
        before = _figures(client)
        assert _answers(client) == expected
        after = _figures(client)
        assert after["reads"] == before["reads"]
        assert after["failed"] - before.get("failed", 0) >= 1  # the first read found out
    finally:
        replica_pair.replica.query(
            f"GRANT ALL PRIVILEGES ON `{app_db.name}`.* TO `{app_db.user}`@'127.0.0.1'")
    # Killed: every page still answers, and right.
    pid = replica_pair.replica._pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    try:
        assert eventually(lambda: not replica_pair.replica.is_running())
        before = _figures(client)
        assert _answers(client) == expected
        after = _figures(client)
        assert after["reads"] == before["reads"]
        assert _health(client)["reachable"] is False
    finally:
        replica_pair.replica.stop()  # reaps the killed process
        replica_pair.replica.ensure_running()
    replica_pair.wait_caught_up()
    # Back: it serves again, without the app being restarted.
    assert eventually(lambda: _replica_in_use(client))
    before = _figures(client)
    assert _answers(client) == expected
    assert _figures(client)["reads"] == before["reads"] + 7


def test_a_just_saved_scan_shows_on_the_users_own_next_page(
        open_app: Any, replica_pair: ReplicaPair, app_db: AppDatabase) -> None:
    station = open_app(max_lag=60.0)
    other = open_app(max_lag=60.0)
    assert eventually(lambda: _replica_in_use(station) and _replica_in_use(other))
    replica_pair.replica.query("STOP SLAVE SQL_THREAD")  # the replica will lack the scan
    piece = "CP00044444-0001"
    try:
        csrf = csrf_token_in(station.get("/scan").text)
        scan = {**GOOD, "piece_code": piece, "submission_id": secrets.token_hex(16)}
        saved = station.post("/scan", data=scan, headers={**HTMX, "X-CSRF-Token": csrf})
        assert saved.status_code == 200 and "quality_wrote" in saved.cookies
        before = _figures(station)
        assert piece in station.get("/scans/export.csv").text  # its own write: from the primary
        assert _figures(station)["own_write"] - before.get("own_write", 0) == 1
        # Another client, which wrote nothing, reads the replica (up to a minute old here): it lacks the scan.
        before = _figures(other)
        assert piece not in other.get("/scans/export.csv").text
        assert _figures(other)["reads"] == before["reads"] + 1
    finally:
        replica_pair.replica.query("START SLAVE SQL_THREAD")
        replica_pair.wait_caught_up()
    # Once the replica has it, the writer's reads go there again.
    assert eventually(lambda: _replica_in_use(station))
    before = _figures(station)
    assert piece in station.get("/scans/export.csv").text
    assert _figures(station)["reads"] == before["reads"] + 1


def test_totals_shared_from_the_replica_are_not_served_to_a_writer_whose_scan_they_lack(
        open_app: Any, replica_pair: ReplicaPair, app_db: AppDatabase) -> None:
    client = open_app(max_lag=60.0)
    assert eventually(lambda: _replica_in_use(client))
    replica_pair.replica.query("STOP SLAVE SQL_THREAD")  # the replica will lack the scan
    piece = "CP00055555-0001"
    try:
        csrf = csrf_token_in(client.get("/scan").text)
        scan = {**GOOD, "piece_code": piece, "submission_id": secrets.token_hex(16)}
        assert client.post("/scan", data=scan, headers={**HTMX, "X-CSRF-Token": csrf}).status_code == 200
        wrote = client.cookies["quality_wrote"]
        (rows,) = replica_pair.primary.query(
            f"SELECT id FROM `{app_db.name}`.scans WHERE piece_code = '{piece}'")[-1:]
        scan_id = rows[0][0]
        assert eventually(lambda: app_services(client).scan_watcher.newest >= scan_id)
        # A browser that wrote nothing, following the list and told of the scan,
        # reads the replica (up to a minute old here): its totals lack the scan.
        client.cookies.delete("quality_wrote")
        before = _figures(client)
        others = scans_total(client.get("/scans/totals", params={"v": scan_id}).text)
        assert _figures(client)["reads"] == before["reads"] + 1
        # The writer's page, told of its own scan, asks the same question: the
        # answer kept for the other page lacks its write, so it reads its own.
        client.cookies.set("quality_wrote", wrote)
        own = scans_total(client.get("/scans/totals", params={"v": scan_id}).text)
        assert own == others + 1 == _count(replica_pair, app_db)
    finally:
        replica_pair.replica.query("START SLAVE SQL_THREAD")
        replica_pair.wait_caught_up()


async def test_a_read_the_replica_fails_half_way_runs_again_on_the_primary(
        replica_pair: ReplicaPair, app_db: AppDatabase) -> None:
    db = database_for(app_db.url(replica_pair.primary.port), maxsize=2)
    db.replica = Replica(db, database_for(app_db.url(replica_pair.replica.port), maxsize=2), max_lag=5.0)
    await db.open()
    ran_on: list[int] = []

    async def body(cur: Cursor) -> int:
        await cur.execute("SELECT CONNECTION_ID(), @@port")
        connection, port = await cur.fetchone()
        ran_on.append(port)
        if port == replica_pair.replica.port:  # its connection killed under the next statement
            threading.Timer(0.3, replica_pair.replica.query, [f"KILL CONNECTION {connection}"]).start()
        await cur.execute("SELECT SLEEP(%s)", (3 if port == replica_pair.replica.port else 0,))
        await cur.fetchone()
        return port

    try:
        assert await db.read(body) == replica_pair.primary.port
    finally:
        await db.close()
    assert ran_on == [replica_pair.replica.port, replica_pair.primary.port]
    assert db.replica.served == 0 and db.replica.fallbacks == {"failed": 1}
