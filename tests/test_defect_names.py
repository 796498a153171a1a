"""Defect names per language (issue 21): the catalogue holds an English and a
Romanian name per code, edited together and audited; every reader sees a
scan's defect in their own language (falling back to the English name), and
scans keep the names they were saved with."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from quality.db import Database
from quality.demo import fill
from quality.settings import Settings
from tests.admin_support import audit_rows, query, sign_in, snapshot
from tests.conftest import UTC_SHIFTS, csrf_token_in, eventually, execute, login, run_async
from tests.test_alerts import add_rule, alerts, fg_scans
from tests.test_stations import post_scan

ROMANIAN, ENGLISH = "Componentă lipsă", "Missing component"


def _between(html: str, start: str, end: str) -> str:
    """The part of a page from a marker to the next `end`: one table, not the filter's pick lists."""
    assert start in html, html
    return html.split(start, 1)[1].split(end, 1)[0]


def _seen(client: TestClient) -> dict[str, str]:
    """Where a reader sees a scan's defect: the station's table, the list's rows,
    the report's top defects, the CSV export."""
    return {
        "station": _between(client.get("/scan").text, 'id="scan-table"', "</table>"),
        "list": _between(client.get("/scans").text, "data-scan-id=", "</table>"),
        "report": _between(client.get("/reports", params={"station": "quality"}).text,
                           'data-testid="by-defect"', "</table>"),
        "csv": client.get("/scans/export.csv").text,
    }


def _token(client: TestClient) -> str:
    return csrf_token_in(client.get("/scan").text)


@pytest.fixture
def readers(client: TestClient, make_user: Any, db_url: Any) -> tuple[str, str]:
    """Two admins (they may scan, list, report and export): ana reads Romanian, sue English."""
    make_user("ana", "admin")
    make_user("sue", "admin")
    run_async(execute(db_url, "UPDATE users SET language = 'ro' WHERE username = 'ana'",
                      "UPDATE users SET language = 'en' WHERE username = 'sue'"))
    return "ana", "sue"


def test_each_reader_sees_the_defect_in_their_language(client: TestClient, readers: tuple[str, str]) -> None:
    romanian, english = readers
    login(client, romanian)
    token = _token(client)
    saved = post_scan(client, token, defect_code="104")
    assert saved.status_code == 200
    result = _between(saved.text, 'id="scan-result"', 'data-testid="order-counts"')
    assert ROMANIAN in result and ENGLISH not in result
    for where, html in _seen(client).items():
        assert ROMANIAN in html and ENGLISH not in html, where
    login(client, english)
    for where, html in _seen(client).items():
        assert ENGLISH in html and ROMANIAN not in html, where



def test_an_alerts_scans_show_the_defect_in_the_readers_language(
    client: TestClient, readers: tuple[str, str], settings: Settings,
) -> None:
    romanian, english = readers
    login(client, romanian)
    token = _token(client)
    assert add_rule(client, token, pieces="1", threshold="50").status_code == 303  # one rejection fires
    fg_scans(client, token, ["104"])
    assert eventually(lambda: len(alerts(settings)) == 1)
    [(alert_id,)] = query(settings, "SELECT id FROM alerts")
    shown = _between(client.get(f"/alerts/{alert_id}").text, 'data-testid="alert-scans"', "</table>")
    assert "CP00012345-0001" in shown and ROMANIAN in shown and ENGLISH not in shown
    login(client, english)
    shown = _between(client.get(f"/alerts/{alert_id}").text, 'data-testid="alert-scans"', "</table>")
    assert "CP00012345-0001" in shown and ENGLISH in shown and ROMANIAN not in shown

def test_scans_keep_their_names_and_a_missing_romanian_name_falls_back(
    client: TestClient, readers: tuple[str, str], settings: Settings,
) -> None:
    romanian, _ = readers
    login(client, romanian)
    token = _token(client)
    post_scan(client, token, defect_code="104")
    assert client.post("/admin/defects/104", data={"csrf_token": token, "name": ENGLISH,
                                                    "name_ro": "Piesă lipsă", "active": "on"},
                       follow_redirects=False).status_code == 303
    post_scan(client, token, piece_code="CP00012345-0002", defect_code="104")
    assert client.post("/admin/defects", data={"csrf_token": token, "code": "401", "name": "Burr"},
                       follow_redirects=False).status_code == 303
    post_scan(client, token, piece_code="CP00012345-0003", defect_code="401")
    rows = _between(client.get("/scans").text, "data-scan-id=", "</table>")
    # Newest first: the English name where there is no Romanian one, the new
    # Romanian name, and the first scan still with the name it was saved with.
    assert [name for name in ("Burr", "Piesă lipsă", ROMANIAN) if name in rows] == ["Burr", "Piesă lipsă",
                                                                                      ROMANIAN]
    assert rows.index("Burr") < rows.index("Piesă lipsă") < rows.index(ROMANIAN)
    assert query(settings, "SELECT defect_name, defect_name_ro FROM scans ORDER BY id") == [
        (ENGLISH, ROMANIAN), (ENGLISH, "Piesă lipsă"), ("Burr", "")]


def test_the_catalogue_form_saves_both_names_with_an_audit_sentence(
    client: TestClient, make_user: Any, settings: Settings,
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    form = client.get("/admin/defects/102").text
    assert 'name="name_ro"' in form and 'value="Lovitură"' in form
    assert client.post("/admin/defects/102", data={"csrf_token": token, "name": "Dent",
                                                    "name_ro": "Adâncitură", "active": "on"},
                       follow_redirects=False).status_code == 303
    assert query(settings, "SELECT name, name_ro FROM defect_codes WHERE code = '102'") == [
        ("Dent", "Adâncitură")]
    assert [row[1:] for row in audit_rows(settings) if row[1] == "defect.update"] == [
        ("defect.update", "102", '{"name_ro": "Lovitură"}', '{"name_ro": "Adâncitură"}')]
    assert ("ada changed the Romanian name of the defect code 102 from Lovitură to Adâncitură."
            in client.get("/admin/audit").text)
    assert client.post("/admin/defects", data={"csrf_token": token, "code": "402", "name": "Crack",
                                                "name_ro": "Fisură"},
                       follow_redirects=False).status_code == 303
    assert query(settings, "SELECT name, name_ro FROM defect_codes WHERE code = '402'") == [
        ("Crack", "Fisură")]


@pytest.mark.parametrize("path", ["/admin/defects", "/admin/defects/101"])
def test_an_over_long_romanian_name_is_refused_beside_it_and_nothing_saved(
    client: TestClient, make_user: Any, settings: Settings, path: str,
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    before = snapshot(settings)
    refused = client.post(path, data={"csrf_token": token, "code": "403", "name": "Crack",
                                      "name_ro": "x" * 101, "active": "on"})
    assert refused.status_code == 422
    assert 'data-testid="name_ro-error">' in refused.text and "at most 100 characters" in refused.text
    assert snapshot(settings) == before


async def test_demo_scans_carry_the_seeded_catalogues_romanian_names(db: Database, db_url: Any) -> None:
    await fill(db, 200, 2, UTC_SHIFTS, seed=3)
    ((missing,),) = (await execute(db_url, "SELECT COUNT(*) FROM scans s JOIN defect_codes d"
                                           " ON d.code = s.defect_code"
                                           " WHERE s.defect_name_ro <> d.name_ro OR d.name_ro = ''"))[0]
    assert missing == 0
    ((romanian,),) = (await execute(db_url, "SELECT defect_name_ro FROM scans WHERE defect_code = '000'"
                                            " LIMIT 1"))[0]
    assert romanian == "Aprobat"
