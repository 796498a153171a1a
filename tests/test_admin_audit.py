"""/admin/audit: read-only, filterable, paged; only for holders of admin.audit."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from quality.pages.admin.audit import PAGE
from quality.settings import Settings
from tests.admin_support import query, sign_in
from tests.conftest import login


def test_the_log_pages_filters_and_shows_before_and_after(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    for n in range(PAGE + 5):
        client.post("/admin/defects", data={"csrf_token": token, "code": f"{500 + n}", "name": f"D{n}"})
    client.post("/admin/defects/500", data={"csrf_token": token, "name": "Renamed", "active": "on"})
    first = client.get("/admin/audit?actor=ada")
    assert first.status_code == 200 and first.text.count('data-testid="audit-row"') == PAGE
    assert "<b>name</b>: D0 → Renamed" in first.text
    older = first.text.split('data-testid="older"', 1)[0].rsplit('href="', 1)[1].split('"', 1)[0]
    second = client.get(older.replace("&amp;", "&"))
    assert second.text.count('data-testid="audit-row"') == 6  # 56 rows by ada: 50 + 6
    assert 'data-testid="older"' not in second.text
    only = client.get("/admin/audit?action=defect.update")
    assert only.text.count('data-testid="audit-row"') == 1
    today = query(settings, "SELECT DATE(UTC_TIMESTAMP())")[0][0].isoformat()
    assert client.get(f"/admin/audit?actor=ada&since={today}&until={today}").text.count(
        'data-testid="audit-row"') == PAGE


def test_bad_filters_are_named_beside_their_field(client: TestClient, make_user: Any) -> None:
    sign_in(client, make_user, "ada", "admin")
    bad = client.get("/admin/audit?since=2026-02-30&until=yesterday&actor=ada")
    assert bad.status_code == 422
    assert 'data-testid="since-error">Not a date in the calendar.' in bad.text
    assert 'data-testid="until-error">To must look like 2026-01-31.' in bad.text
    assert 'value="ada"' in bad.text
    assert client.get("/admin/audit?before=abc").status_code == 400
    assert client.get("/admin/audit?before=99999999999999999999999").status_code == 400


def test_the_log_cannot_be_changed_through_the_app_and_others_cannot_read_it(
    client: TestClient, make_user: Any
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert client.request(method, "/admin/audit", headers={"X-CSRF-Token": token}).status_code == 405
    routes = [r for r in client.app.routes if getattr(r, "path", "").startswith("/admin/audit")]
    assert {m for r in routes for m in r.methods} == {"GET", "HEAD"}
    make_user("sue", "supervisor")
    login(client, "sue")
    assert client.get("/admin/audit").status_code == 403
