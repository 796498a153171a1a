"""/healthz and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from quality.app import create_app
from quality.localdb import LocalMariaDB
from quality.settings import Settings
from tests.conftest import LiveServer, app_services, eventually, login

LOCAL = ("127.0.0.1", 50000)  # an operator's probe on the app's own machine


def test_healthz_reports_the_database(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["pool"]["max"] == 5
    assert body["encrypted"] is False  # the suite's server is reached over a unix socket


def test_healthz_is_503_when_the_database_is_unreachable(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    assert settings.database_url
    broken = dataclasses.replace(
        settings,
        database_url=dataclasses.replace(settings.database_url,
                                         unix_socket="/nonexistent/mysqld.sock"),
        pool_timeout=0.5,
    )
    with TestClient(create_app(broken), client=LOCAL) as client:
        response = client.get("/healthz")
        assert response.status_code == 503
        # One word for the caller; what went wrong (paths, users, hosts) only in the log.
        assert response.json() == {"status": "unavailable", "reason": "unreachable"}
        assert any(record.name == "quality.pages.ops" and "Can't connect" in record.getMessage()
                   for record in caplog.records)
        page = client.get("/login")
        assert page.status_code == 200  # the sign-in page needs no database


def test_healthz_says_busy_without_waiting_for_the_pool_timeout(settings: Settings) -> None:
    # With a 60 s pool timeout, a check that waited like a request would still be
    # waiting when the holder lets go (after at most 30 s) and then answer 200.
    busy = dataclasses.replace(settings, pool_max=2, pool_timeout=60.0)
    with TestClient(create_app(busy), client=LOCAL) as client:
        db = app_services(client).db
        release = client.portal.call(asyncio.Event)  # type: ignore[union-attr]

        async def hold_every_connection() -> None:
            async with db.transaction() as first, db.transaction() as second:
                await first.execute("SELECT 1")
                await second.execute("SELECT 1")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(30):
                        await release.wait()

        holder = client.portal.start_task_soon(hold_every_connection)  # type: ignore[union-attr]
        while db.stats().in_use < 2:
            time.sleep(0.01)
        response = client.get("/healthz")
        assert not holder.done() and db.stats().in_use == 2
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "reason": "busy"}
        client.portal.call(release.set)  # type: ignore[union-attr]
        holder.result()
        assert client.get("/healthz").status_code == 200


def test_healthz_says_slow_when_the_database_stops_answering(
    settings: Settings, mariadb: LocalMariaDB
) -> None:
    # A frozen server keeps its connections open and answers nothing. Were the
    # check to wait for it, it would still be waiting when the watchdog thaws
    # the server (after at most 30 s) and then answer 200.
    pid = int(mariadb.pidfile.read_text())
    with TestClient(create_app(dataclasses.replace(settings, pool_timeout=60.0)), client=LOCAL) as client:
        assert client.get("/healthz").status_code == 200  # leaves an idle connection
        os.kill(pid, signal.SIGSTOP)
        watchdog = threading.Timer(30, os.kill, (pid, signal.SIGCONT))
        watchdog.start()
        try:
            assert eventually(lambda: stopped(pid))
            response = client.get("/healthz")
            frozen_throughout = watchdog.is_alive()
        finally:
            watchdog.cancel()
            os.kill(pid, signal.SIGCONT)
        assert frozen_throughout
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "reason": "slow"}


def stopped(pid: int) -> bool:
    """Whether every thread of `pid` has stopped. SIGSTOP reaches them one by one,
    each as it next gets a CPU: on a busy machine one may still answer a query
    milliseconds after the signal was sent."""
    try:
        return all(stat.read_text().rsplit(")", 1)[1].split()[0] == "T"
                   for stat in Path(f"/proc/{pid}/task").glob("*/stat"))
    except FileNotFoundError:  # a thread ended while we looked
        return False


def test_healthz_tells_strangers_only_ok_or_unavailable(settings: Settings) -> None:
    # A caller elsewhere (no traffic: the address is only what the app is told)
    # learns whether the app can serve, not how full its pool is or why it cannot.
    token = dataclasses.replace(settings, metrics_token="s3cret-token")
    with TestClient(create_app(token), client=("192.0.2.7", 40000)) as stranger:
        assert stranger.get("/healthz").json() == {"status": "ok"}
        shown = stranger.get("/healthz", headers={"Authorization": "Bearer s3cret-token"}).json()
        assert shown["pool"]["max"] == 5 and shown["database"] == "reachable"
        assert stranger.get("/healthz", headers={"Authorization": "Bearer guess"}).json() == {"status": "ok"}
    # Behind a proxy every caller seems to come from the proxy: loopback proves nothing.
    proxied = dataclasses.replace(settings, forwarded_allow_ips=("127.0.0.1",))
    with TestClient(create_app(proxied), client=LOCAL) as behind_proxy:
        assert behind_proxy.get("/healthz").json() == {"status": "ok"}
    broken = dataclasses.replace(token, pool_timeout=0.5, database_url=dataclasses.replace(
        settings.database_url, unix_socket="/nonexistent/mysqld.sock"))
    with TestClient(create_app(broken), client=("192.0.2.7", 40000)) as stranger:
        response = stranger.get("/healthz")
        assert response.status_code == 503 and response.json() == {"status": "unavailable"}


def test_metrics_expose_pool_requests_and_logins(client: TestClient, make_user: Any) -> None:
    make_user("mo", "operator")
    login(client, "mo", "wrong-password-1")
    client.get("/healthz")
    text = client.get("/metrics").text
    for name in (
        "quality_db_pool_size", "quality_db_pool_in_use", "quality_db_pool_idle",
        "quality_db_pool_waiting", "quality_db_pool_timeouts_total",
        "quality_db_pool_discarded_total", "quality_db_pool_reruns_total",
        "quality_db_pool_acquire_wait_seconds_bucket",
        "quality_db_pool_bulk_in_use 0.0", "quality_db_pool_bulk_waiting 0.0", "quality_db_pool_bulk_max 2.0",
        "quality_db_pool_bulk_timeouts_total 0.0",
        'quality_http_requests_total{method="GET",route="/healthz",status="200"}',
        "quality_http_request_duration_seconds_bucket", "quality_login_failures_total 1.0",
    ):
        assert name in text, name


def test_metrics_answer_only_this_machine_without_a_token(settings: Settings) -> None:
    with TestClient(create_app(settings), client=("192.0.2.7", 40000)) as client:
        assert client.get("/metrics").status_code == 403


def test_metrics_token_is_required_when_set(settings: Settings) -> None:
    with TestClient(create_app(settings.__class__(**{**settings.__dict__,
                                                      "metrics_token": "scrape-me"}))) as client:
        assert client.get("/metrics").status_code == 401
        ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert ok.status_code == 200 and "quality_db_pool_size" in ok.text


def test_metrics_need_the_token_when_forwarded_headers_are_trusted(settings: Settings) -> None:
    # A local proxy makes every client look like loopback: the address proves nothing.
    behind_proxy = dataclasses.replace(settings, forwarded_allow_ips=("127.0.0.1",))
    with TestClient(create_app(behind_proxy), client=("127.0.0.1", 40000)) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 403 and "QUALITY_METRICS_TOKEN" in refused.text
    with_token = dataclasses.replace(behind_proxy, metrics_token="scrape-me")
    with TestClient(create_app(with_token), client=("127.0.0.1", 40000)) as client:
        ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert ok.status_code == 200 and "quality_db_pool_size" in ok.text


def test_forwarded_headers_are_ignored_unless_the_proxy_is_trusted(settings: Settings) -> None:
    forged = {"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "https"}
    server = LiveServer(settings)
    server.start()
    try:
        status, headers = fetch(server.url + "/metrics", forged)
        assert status == 200  # still this machine: the forged address was not believed
        status, headers = fetch(server.url + "/login", forged)
        assert "Secure" not in headers.get("Set-Cookie", "")
    finally:
        server.stop()
    server = LiveServer(settings, {"QUALITY_FORWARDED_ALLOW_IPS": "127.0.0.1"})
    server.start()
    try:
        status, headers = fetch(server.url + "/metrics", {})
        assert status == 403  # loopback is the proxy now, not proof of a local caller
        status, headers = fetch(server.url + "/login", forged)
        assert status == 200 and "Secure" in headers["Set-Cookie"]  # TLS ended at the proxy
    finally:
        server.stop()


def fetch(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.headers

