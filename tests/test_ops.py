"""/healthz and /metrics."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from quality.app import create_app
from quality.settings import Settings
from tests.conftest import login


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
