"""The printable code sheets: /admin/defects/sheet (every code in use as a
Code 128 barcode) and /admin/users/badges (the operator and checker codes an
admin enters). Their barcodes are read back in tests/test_admin_sheets_browser.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.testclient import TestClient

from quality.settings import Settings
from tests.admin_support import make_role, query, sign_in


@pytest.fixture
def admin(client: TestClient, make_user: Any) -> tuple[TestClient, str]:
    return client, sign_in(client, make_user, "ada", "admin")


def cards(html: str) -> list[str]:
    """The codes of the sheet's cards, in order, each with its barcode."""
    found = re.findall(r'<figure class="code-card" data-code="([^"]*)">\s*<svg ', html)
    assert len(found) == html.count("<svg ") == html.count("</svg>")
    return found


@pytest.mark.parametrize(("path", "method"), [("/admin/defects/sheet", "get"), ("/admin/users/badges", "get"),
                                              ("/admin/users/badges", "post")])
def test_the_sheets_are_refused_to_a_user_without_the_right(
    client: TestClient, make_user: Any, settings: Settings, path: str, method: str
) -> None:
    make_role(settings, "clerk", "admin.audit")
    token = sign_in(client, make_user, "cleo", "clerk")
    answer = getattr(client, method)(path, **({"data": {"csrf_token": token, "codes": "OP07"}}
                                              if method == "post" else {}))
    assert answer.status_code == 403
    assert "<svg " not in answer.text


def test_the_defect_sheet_has_every_code_in_use_and_no_other(
    admin: tuple[TestClient, str], settings: Settings
) -> None:
    client, token = admin
    client.post("/admin/defects/101", data={"csrf_token": token, "name": "Retired scratch"})
    in_use = query(settings, "SELECT code, name FROM defect_codes WHERE active ORDER BY code")
    assert "101" not in dict(in_use) and len(in_use) > 3
    assert 'href="/admin/defects/sheet"' in client.get("/admin/defects").text
    sheet = client.get("/admin/defects/sheet")
    assert sheet.status_code == 200
    assert cards(sheet.text) == [code for code, _name in in_use]
    for code, name in in_use:
        assert f"<strong>{code}</strong> {name}</figcaption>" in sheet.text
    assert "Retired scratch" not in sheet.text
    # Under the CSP: no script, no style attribute, no XML declaration in the page.
    assert "<?xml" not in sheet.text and "style=" not in sheet.text
    assert "<script>" not in sheet.text and "<script " not in sheet.text.replace(
        '<script src="', "")


def test_a_badge_sheet_has_a_barcode_for_each_code_entered(admin: tuple[TestClient, str]) -> None:
    client, token = admin
    assert 'href="/admin/users/badges"' in client.get("/admin/users").text
    assert 'name="codes"' in client.get("/admin/users/badges").text
    typed = " op07\r\n\r\nOC12\nOPA1 "  # lower case, blank lines and spaces are forgiven
    sheet = client.post("/admin/users/badges", data={"csrf_token": token, "codes": typed})
    assert sheet.status_code == 200
    assert cards(sheet.text) == ["OP07", "OC12", "OPA1"]


@pytest.mark.parametrize(("codes", "messages"), [
    ("OP07\nCP00012345-0001\nOC12", ["Line 2, “CP00012345-0001”, is neither an operator code (like OP07)"
                                     " nor a checker code (like OC12)."]),
    ("OP7\nOC12\n<b>x</b>", ["Line 1, “OP7”", "Line 3, “&lt;B&gt;X&lt;/B&gt;”"]),
    ("OPȘ1", ["Line 1, “OPȘ1”"]),
    ("\n  \n", ["Enter at least one operator or checker code."]),
    ("OP07\n" * 301, ["At most 300 codes a sheet."]),
])
def test_a_wrong_line_is_named_and_nothing_is_printed(
    admin: tuple[TestClient, str], codes: str, messages: list[str]
) -> None:
    client, token = admin
    refused = client.post("/admin/users/badges", data={"csrf_token": token, "codes": codes})
    assert refused.status_code == 422
    error = refused.text.split('data-testid="codes-error">', 1)[1].split("</ul>", 1)[0]
    for message in messages:
        assert message in error
    assert error.count("<li>") == len(messages)
    assert "<svg " not in refused.text and "<b>" not in refused.text


def test_the_sheets_speak_the_readers_language(admin: tuple[TestClient, str]) -> None:
    client, token = admin
    client.post("/language", data={"csrf_token": token, "language": "ro", "next": "/admin/defects/sheet"})
    sheet = client.get("/admin/defects/sheet").text
    assert "<h1>Foaia codurilor de defect</h1>" in sheet and "cu comanda Imprimare a browserului" in sheet
    assert "Componentă lipsă" in sheet and "Missing component" not in sheet  # the names in Romanian too
    refused = client.post("/admin/users/badges", data={"csrf_token": token, "codes": "OP07\nX1"}).text
    assert ("Rândul 2, „X1”, nu este nici cod de operator (ca OP07), nici cod de controlor (ca OC12)."
            in refused)
