"""/healthz and /metrics."""

from __future__ import annotations

import dataclasses
import urllib.error
import urllib.request
from typing import Any

from starlette.testclient import TestClient

from quality.app import create_app
from quality.settings import Settings
from tests.conftest import LiveServer, login


def test_healthz_reports_the_database(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["pool"]["max"] == 5


def test_healthz_is_503_when_the_database_is_unreachable(settings: Settings) -> None:
    assert settings.database_url
    broken = settings.__class__(**{
        **settings.__dict__,
        "database_url": settings.database_url.__class__(
            **{**settings.database_url.__dict__, "unix_socket": "/nonexistent/mysqld.sock"}
        ),
        "pool_timeout": 0.5,
    })
    with TestClient(create_app(broken)) as client:
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
        page = client.get("/login")
        assert page.status_code == 200  # the sign-in page needs no database


def test_metrics_expose_pool_requests_and_logins(client: TestClient, make_user: Any) -> None:
    make_user("mo", "operator")
    login(client, "mo", "wrong-password-1")
    client.get("/healthz")
    text = client.get("/metrics").text
    for name in (
        "quality_db_pool_size", "quality_db_pool_in_use", "quality_db_pool_idle",
        "quality_db_pool_waiting", "quality_db_pool_timeouts_total",
        "quality_db_pool_discarded_total", "quality_db_pool_acquire_wait_seconds_bucket",
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

