"""Every admin form (and my account's) without its CSRF token, or with a
wrong one, is a 403 that changes nothing; the same form with the token works."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from quality.accounts import ADMIN_PERMISSIONS
from quality.settings import Settings
from tests.admin_support import post_pairs, query, sign_in, snapshot
from tests.conftest import PASSWORD


def valid_forms(settings: Settings) -> dict[str, list[tuple[str, str]]]:
    """A submission each form would accept, by URL."""
    roles = dict(query(settings, "SELECT name, id FROM roles"))
    (sam,) = query(settings, "SELECT id FROM users WHERE username = 'sam'")[0]
    matrix = []
    for name, id_ in roles.items():
        matrix.append(("role", str(id_)))
        matrix += [(f"p{id_}", p) for p in (ADMIN_PERMISSIONS if name == "admin" else ("scan.quality",))]
    return {
        "/admin/users": [("username", "new.one"), ("role", "operator"), ("password", "long-enough-1")],
        f"/admin/users/{sam}": [("full_name", "Sam"), ("role", "supervisor"), ("active", "on")],
        f"/admin/users/{sam}/password": [("password", "long-enough-1")],
        f"/admin/users/{sam}/disable": [],
        "/admin/roles": [("name", "lead"), ("description", "Leads")],
        "/admin/roles/matrix": matrix,
        f"/admin/roles/{roles['spare']}/rename": [("name", "spare-two")],
        f"/admin/roles/{roles['spare']}/delete": [],
        "/admin/defects": [("code", "777"), ("name", "Warp")],
        "/admin/defects/101": [("name", "Deep scratch"), ("active", "on")],
        "/account/password": [("current_password", PASSWORD), ("new_password", "long-enough-2"),
                              ("repeat_password", "long-enough-2")],
    }


PATHS = ["/admin/users", "/admin/users/{sam}", "/admin/users/{sam}/password", "/admin/users/{sam}/disable",
         "/admin/roles", "/admin/roles/matrix",
         "/admin/roles/{spare}/rename", "/admin/roles/{spare}/delete", "/admin/defects",
         "/admin/defects/101", "/account/password"]


@pytest.mark.parametrize("index", range(len(PATHS)), ids=PATHS)
def test_a_missing_or_wrong_csrf_token_changes_nothing(
    client: TestClient, make_user: Any, settings: Settings, index: int
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    make_user("sam", "operator")
    query(settings, "INSERT INTO roles (name) VALUES ('spare')")
    url, form = list(valid_forms(settings).items())[index]
    before = snapshot(settings)
    for sent in ([], [("csrf_token", "forged")], [("csrf_token", "")]):
        refused = post_pairs(client, url, sent + form)
        assert refused.status_code == 403, (url, sent)
        assert "did not come from this site" in refused.text
        assert snapshot(settings) == before
    forged_header = post_pairs(client, url, form, headers={"X-CSRF-Token": token[:-1] + "x"})
    assert forged_header.status_code == 403
    assert snapshot(settings) == before
    accepted = post_pairs(client, url, [("csrf_token", token), *form], follow_redirects=False)
    assert accepted.status_code == 303, (url, accepted.text[-2000:])
    assert snapshot(settings) != before
