"""/admin/roles: roles and the permission matrix, saved whole, its columns under their areas' titles,
with forged names refused and the last administrator kept."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from starlette.testclient import TestClient

from quality.permissions import AREAS, PERMISSIONS
from quality.settings import Settings
from tests.admin_support import audit_rows, losing_every_first_try, post_pairs, query, sign_in, snapshot


def role_ids(settings: Settings) -> dict[str, int]:
    return {name: id_ for id_, name in query(settings, "SELECT id, name FROM roles")}


def granted(settings: Settings, role: str) -> set[str]:
    return {p for (p,) in query(settings, "SELECT rp.permission FROM role_permissions rp"
                                          f" JOIN roles r ON r.id = rp.role_id WHERE r.name = '{role}'")}


def matrix_form(settings: Settings, token: str, **changes: set[str]) -> list[tuple[str, str]]:
    """The matrix as the page submits it, with some roles' ticks replaced."""
    data = [("csrf_token", token)]
    for name, id_ in role_ids(settings).items():
        data.append(("role", str(id_)))
        data += [(f"p{id_}", p) for p in sorted(changes.get(name, granted(settings, name)))]
    return data


@pytest.fixture
def admin(client: TestClient, make_user: Any) -> tuple[TestClient, str]:
    return client, sign_in(client, make_user, "ada", "admin")


def test_the_matrix_shows_every_role_and_every_permission_with_its_description(
    admin: tuple[TestClient, str]
) -> None:
    client, _token = admin
    page = client.get("/admin/roles").text
    for name, description in PERMISSIONS.items():
        assert name in page and description in page
    # Each column group is headed with its area's title, never a raw name: a
    # permission in an area without one fails here.
    areas = dict.fromkeys(name.split(".")[0] for name in PERMISSIONS)
    headings = re.findall(r'class="area">([^<]*)</th>', page)
    assert headings == [str(AREAS.get(area, f"no title for {area!r}")) for area in areas]
    for role in ("admin", "supervisor", "operator"):
        assert f'data-testid="role-{role}"' in page


def test_the_whole_matrix_saves_in_one_go_and_audits_each_changed_role(
    admin: tuple[TestClient, str], settings: Settings
) -> None:
    client, token = admin
    form = matrix_form(settings, token, operator={"scan.quality"},
                       supervisor={"scan.quality", "scan.fg", "scans.view"})
    saved = post_pairs(client, "/admin/roles/matrix", form, follow_redirects=False)
    assert saved.status_code == 303
    assert granted(settings, "operator") == {"scan.quality"}
    assert granted(settings, "supervisor") == {"scan.quality", "scan.fg", "scans.view"}
    changes = [row for row in audit_rows(settings) if row[1] == "role.permissions"]
    assert [(row[0], row[2]) for row in changes] == [("ada", "operator"), ("ada", "supervisor")] or \
        [(row[0], row[2]) for row in changes] == [("ada", "supervisor"), ("ada", "operator")]
    operator = next(row for row in changes if row[2] == "operator")
    assert json.loads(operator[3]) == {"permissions": ["scan.fg", "scan.quality"]}
    assert json.loads(operator[4]) == {"permissions": ["scan.quality"]}


@pytest.mark.parametrize("forgery", ["permission", "role", "role-text", "role-superscript", "no-roles"])
def test_forged_role_or_permission_names_change_nothing(
    admin: tuple[TestClient, str], settings: Settings, forgery: str
) -> None:
    client, token = admin
    form = matrix_form(settings, token, operator=set())
    if forgery == "permission":
        form.append((f"p{role_ids(settings)['operator']}", "admin.everything"))
    elif forgery == "role":
        form += [("role", "65000"), ("p65000", "scan.fg")]
    elif forgery == "role-text":
        form.append(("role", "operator"))
    elif forgery == "role-superscript":
        form.append(("role", "²"))  # a digit to str.isdigit, not to int
    else:
        form = [pair for pair in form if pair[0] != "role"]
    before = snapshot(settings)
    refused = post_pairs(client, "/admin/roles/matrix", form)
    assert refused.status_code == 422 and 'data-testid="matrix-error"' in refused.text
    assert snapshot(settings) == before


def test_the_matrix_cannot_take_the_last_admins_rights(
    admin: tuple[TestClient, str], settings: Settings
) -> None:
    client, token = admin
    before = snapshot(settings)
    for kept in (set(PERMISSIONS) - {"admin.users"}, set(PERMISSIONS) - {"admin.roles"}):
        refused = post_pairs(client, "/admin/roles/matrix", matrix_form(settings, token, admin=kept))
        assert refused.status_code == 422 and "no active administrator" in refused.text
    assert snapshot(settings) == before


def test_one_role_sent_alone_changes_only_that_role(
    admin: tuple[TestClient, str], settings: Settings
) -> None:
    client, token = admin
    operator = role_ids(settings)["operator"]
    before = granted(settings, "supervisor")
    saved = post_pairs(client, "/admin/roles/matrix",
                       [("csrf_token", token), ("role", str(operator)), (f"p{operator}", "scan.quality"),
                        (f"p{operator}", "reports.view")], follow_redirects=False)
    assert saved.status_code == 303
    assert granted(settings, "operator") == {"scan.quality", "reports.view"}
    assert granted(settings, "supervisor") == before


def test_roles_are_created_renamed_and_deleted_only_when_unused(
    admin: tuple[TestClient, str], settings: Settings, make_user: Any
) -> None:
    client, token = admin
    bad = client.post("/admin/roles", data={"csrf_token": token, "name": "Line Lead!", "description": ""})
    assert bad.status_code == 422 and 'value="line lead!"' in bad.text and "name-error" in bad.text
    taken = client.post("/admin/roles", data={"csrf_token": token, "name": "operator"})
    assert taken.status_code == 422 and "exists already" in taken.text
    assert client.post("/admin/roles", data={"csrf_token": token, "name": "lead", "description": "Leads"},
                       follow_redirects=False).status_code == 303
    lead = role_ids(settings)["lead"]
    assert client.post(f"/admin/roles/{lead}/rename", data={"csrf_token": token, "name": "line-lead"},
                       follow_redirects=False).status_code == 303
    make_user("lou", "line-lead")
    in_use = client.post(f"/admin/roles/{lead}/delete", data={"csrf_token": token})
    assert in_use.status_code == 422 and "move them to another role first" in in_use.text
    query(settings, "UPDATE users SET role_id = (SELECT id FROM roles WHERE name = 'operator')"
                    " WHERE username = 'lou'")
    assert client.post(f"/admin/roles/{lead}/delete", data={"csrf_token": token},
                       follow_redirects=False).status_code == 303
    assert "line-lead" not in role_ids(settings)
    assert [row[1:3] for row in audit_rows(settings) if row[1].startswith("role.")] == [
        ("role.create", "lead"), ("role.rename", "lead"), ("role.delete", "line-lead")]
    for path in ("/admin/roles/65000/rename", "/admin/roles/65000/delete",
                 "/admin/roles/x/delete", "/admin/roles/99999999999999999999/rename"):
        assert client.post(path, data={"csrf_token": token, "name": "ghost"}).status_code == 404


def test_a_role_save_that_loses_a_race_once_is_run_again_and_audited_once(
    admin: tuple[TestClient, str], settings: Settings
) -> None:
    client, token = admin
    losing_every_first_try(settings)
    assert client.post("/admin/roles", data={"csrf_token": token, "name": "lead", "description": "Leads"},
                       follow_redirects=False).status_code == 303
    assert [row[1:3] for row in audit_rows(settings) if row[1].startswith("role.")] == [
        ("role.create", "lead")]
    assert query(settings, "SELECT COUNT(*) FROM tries") == [(2,)]  # it ran twice
