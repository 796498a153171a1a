"""/admin/defects: the catalogue; an inactive code is refused at the scan
stations by name; old scans keep the name their code had; 000 stays approved."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from quality.settings import Settings
from tests.admin_support import audit_rows, losing_every_first_try, query, sign_in, snapshot
from tests.test_stations import post_scan


@pytest.fixture
def admin(client: TestClient, make_user: Any) -> tuple[TestClient, str]:
    return client, sign_in(client, make_user, "ada", "admin")


def test_a_code_is_added_renamed_and_retired_with_audit_rows(
    admin: tuple[TestClient, str], settings: Settings
) -> None:
    client, token = admin
    assert client.post("/admin/defects", data={"csrf_token": token, "code": "401", "name": "Burr",
                                                "category": "Surface"},
                       follow_redirects=False).status_code == 303
    assert client.post("/admin/defects/401", data={"csrf_token": token, "name": "Sharp burr",
                                                    "category": "Surface"},
                       follow_redirects=False).status_code == 303
    assert query(settings, "SELECT name, category, active FROM defect_codes WHERE code = '401'") == [
        ("Sharp burr", "Surface", 0)]
    assert [row[1:] for row in audit_rows(settings) if row[1].startswith("defect.")] == [
        ("defect.create", "401", None,
         '{"active": true, "category": "Surface", "name": "Burr", "name_ro": ""}'),
        ("defect.update", "401", '{"active": true, "name": "Burr"}',
         '{"active": false, "name": "Sharp burr"}'),
    ]
    assert "no longer in use" in client.get("/admin/defects").text


@pytest.mark.parametrize(("path", "form", "field", "message"), [
    ("/admin/defects", {"code": "12"}, "code", "Code must look like 104."),
    ("/admin/defects", {"code": "101"}, "code", "This code is in the catalogue already."),
    ("/admin/defects", {"name": ""}, "name", "Enter the defect&#39;s name."),
    ("/admin/defects", {"code": "000"}, "name", "its name must say"),
    ("/admin/defects/000", {"active": ""}, "active", "it cannot be deactivated"),
    ("/admin/defects/000", {"name": "Good", "active": "on"}, "name", "its name must say"),
    ("/admin/defects/101", {"name": "x" * 101, "active": "on"}, "name", "at most 100 characters"),
])
def test_bad_defect_forms_are_refused_beside_the_field_and_change_nothing(
    admin: tuple[TestClient, str], settings: Settings, path: str, form: dict[str, str], field: str,
    message: str,
) -> None:
    client, token = admin
    before = snapshot(settings)
    data = {"csrf_token": token, "code": "402", "name": "Crack", "category": "", **form}
    data = {key: value for key, value in data.items() if value or key != "active"}
    refused = client.post(path, data=data)
    assert refused.status_code == 422
    assert f'data-testid="{field}-error">' in refused.text and message in refused.text
    assert snapshot(settings) == before


@pytest.mark.parametrize("path", ["/admin/defects/999", "/admin/defects/abc", "/admin/defects/1041",
                                  "/admin/defects/%20104"])
def test_an_unknown_code_in_the_url_is_a_404(admin: tuple[TestClient, str], path: str) -> None:
    client, token = admin
    assert client.get(path).status_code == 404
    assert client.post(path, data={"csrf_token": token, "name": "x", "active": "on"}).status_code == 404


def test_a_retired_code_is_refused_at_the_scan_page_and_old_scans_keep_their_name(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    assert post_scan(client, token, defect_code="101").status_code == 200
    client.post("/admin/defects/101", data={"csrf_token": token, "name": "Deep scratch"})
    refused = post_scan(client, token, piece_code="CP00012345-0002", defect_code="101")
    assert refused.status_code == 422
    assert "This defect code is no longer in use; scan another." in refused.text
    unknown = post_scan(client, token, piece_code="CP00012345-0003", defect_code="999")
    assert unknown.status_code == 422 and "Unknown defect code." in unknown.text
    assert query(settings, "SELECT defect_name FROM scans") == [("Scratch",)]
    assert "Scratch" in client.get("/scan").text


def test_a_save_that_loses_a_race_once_is_run_again_and_audited_once(
    admin: tuple[TestClient, str], settings: Settings
) -> None:
    client, token = admin
    losing_every_first_try(settings)
    assert client.post("/admin/defects", data={"csrf_token": token, "code": "402", "name": "Burr",
                                                "category": "Surface"},
                       follow_redirects=False).status_code == 303
    assert client.post("/admin/defects/402", data={"csrf_token": token, "name": "Sharp burr",
                                                    "category": "Surface", "active": "on"},
                       follow_redirects=False).status_code == 303
    assert query(settings, "SELECT name FROM defect_codes WHERE code = '402'") == [("Sharp burr",)]
    assert [row[1] for row in audit_rows(settings) if row[2] == "402"] == ["defect.create", "defect.update"]
    assert query(settings, "SELECT COUNT(*) FROM tries") == [(4,)]  # each save ran twice
