"""Nobody grants what they do not hold (quality/accounts.py, "Delegation").

Roles holding one admin permission each, or one and a little more, try every
way up: give themselves or another account `admin`, reset an administrator's
password and sign in as them, create an administrator, tick or untick in the
matrix a permission they lack, rename or delete a role above them. Each is a
403 that changes nothing but the audit log's row saying what was refused. The
pages offer only what the actor may give; the terminal is not bound."""

from __future__ import annotations

import asyncio
import json
from html.parser import HTMLParser
from typing import Any

import pytest
from starlette.testclient import TestClient

from quality.accounts import NotDelegable, create_user, set_password, update_user
from quality.app import create_app
from quality.audit import Actor, terminal
from quality.db import Database
from quality.permissions import PERMISSIONS
from quality.settings import Settings
from tests.admin_support import audit_rows, make_role, post_pairs, sign_in, snapshot
from tests.conftest import PASSWORD, database_for, login
from tests.test_admin_roles import granted, matrix_form, role_ids
from tests.test_admin_users import user_id, user_row

# One admin permission each, one with a little more, and a role with no admin permission.
ROLES = {
    "users-only": ("admin.users",),
    "roles-only": ("admin.roles",),
    "defects-only": ("admin.defects",),
    "audit-only": ("admin.audit",),
    "users-scans": ("admin.users", "scans.view"),
    "viewer": ("scans.view",),
}


@pytest.fixture(autouse=True)
def roles(settings: Settings, make_user: Any) -> None:
    for name, permissions in ROLES.items():
        make_role(settings, name, *permissions)
    make_user("ada", "admin")


def refusals_and_nothing_else(settings: Settings, before: dict[str, list[tuple[Any, ...]]]
                              ) -> list[tuple[Any, ...]]:
    """The audit rows written since `before`, each a refusal; every other table as it was."""
    after = snapshot(settings)
    assert {table: rows for table, rows in after.items() if table != "audit_log"} == \
        {table: rows for table, rows in before.items() if table != "audit_log"}
    written = audit_rows(settings)[len(before["audit_log"]):]
    assert written and all(row[1].endswith(".refused") for row in written), written
    return written


# -- admin.users: accounts and the roles given ------------------------------------

@pytest.mark.parametrize("role", ["users-only", "users-scans"])
def test_a_users_admin_cannot_give_themselves_admin(
    client: TestClient, make_user: Any, settings: Settings, role: str
) -> None:
    token = sign_in(client, make_user, "uma", role)
    uma = user_id(settings, "uma")
    before = snapshot(settings)
    answer = client.post(f"/admin/users/{uma}", data={
        "csrf_token": token, "full_name": "", "role": "admin", "active": "on"})
    assert answer.status_code == 403
    assert "the role admin has permissions you do not hold" in answer.text
    [(actor, action, target, was, wanted)] = refusals_and_nothing_else(settings, before)
    assert (actor, action, target) == ("uma", "user.update.refused", "uma")
    assert json.loads(was) == {"role": role}
    assert json.loads(wanted)["role"] == "admin" and "admin.roles" in json.loads(wanted)["not_held"]
    assert client.get("/admin/roles").status_code == 403
    assert client.get("/admin/audit").status_code == 403


def test_a_users_admin_cannot_give_another_account_admin_but_may_give_what_it_holds(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "uma", "users-scans")
    make_user("vic", "viewer")
    vic = user_id(settings, "vic")
    before = snapshot(settings)
    for role in ("admin", "supervisor", "roles-only"):
        answer = client.post(f"/admin/users/{vic}", data={
            "csrf_token": token, "full_name": "Vic", "role": role, "active": "on"})
        assert answer.status_code == 403, role
        assert f"the role {role} has permissions you do not hold" in answer.text
    refused = refusals_and_nothing_else(settings, before)
    assert [(row[1], row[2], json.loads(row[4])["role"]) for row in refused] == [
        ("user.update.refused", "vic", role) for role in ("admin", "supervisor", "roles-only")]
    allowed = client.post(f"/admin/users/{vic}", data={
        "csrf_token": token, "full_name": "Vic", "role": "users-only", "active": "on"},
        follow_redirects=False)
    assert allowed.status_code == 303
    assert user_row(settings, "vic") == ("Vic", "users-only", 1, 0)


def test_a_users_admin_cannot_reset_an_administrators_password_and_sign_in_as_them(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "uma", "users-only")
    ada = user_id(settings, "ada")
    before = snapshot(settings)
    answer = client.post(f"/admin/users/{ada}/password",
                         data={"csrf_token": token, "password": "taken-over-1"})
    assert answer.status_code == 403 and 'data-testid="form-error"' in answer.text
    [refusal] = refusals_and_nothing_else(settings, before)
    assert refusal[:3] == ("uma", "user.password.reset.refused", "ada")
    assert "taken-over-1" not in repr(refusal)
    with TestClient(create_app(settings)) as elsewhere:
        assert login(elsewhere, "ada", "taken-over-1").status_code == 401
        assert login(elsewhere, "ada", PASSWORD).status_code == 303


def test_a_users_admin_cannot_create_an_administrator(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "uma", "users-only")
    before = snapshot(settings)
    new_user = {"csrf_token": token, "username": "mallory", "full_name": "", "role": "admin",
                "password": "temporary-pass-1"}
    answer = client.post("/admin/users", data=new_user)
    assert answer.status_code == 403 and 'data-testid="form-error"' in answer.text
    assert 'value="mallory"' in answer.text  # what was typed stays
    [refusal] = refusals_and_nothing_else(settings, before)
    assert refusal[:3] == ("uma", "user.create.refused", "mallory")
    assert client.post("/admin/users", data={**new_user, "role": "users-only"},
                       follow_redirects=False).status_code == 303
    assert user_row(settings, "mallory")[1] == "users-only"


@pytest.mark.parametrize(("path", "form", "action"), [
    ("", {"full_name": "Ada Renamed", "role": "admin", "active": "on"}, "user.update.refused"),
    ("", {"full_name": "", "role": "users-only", "active": "on"}, "user.update.refused"),
    ("/disable", {}, "user.update.refused"),
])
def test_a_users_admin_cannot_edit_demote_or_disable_an_administrator(
    client: TestClient, make_user: Any, settings: Settings, path: str, form: dict[str, str],
    action: str,
) -> None:
    token = sign_in(client, make_user, "uma", "users-only")
    make_user("bob", "admin")  # so the last-admin guard is not what refuses
    ada = user_id(settings, "ada")
    before = snapshot(settings)
    answer = client.post(f"/admin/users/{ada}{path}", data={"csrf_token": token, **form})
    assert answer.status_code == 403 and "the role admin has permissions you do not hold" in answer.text
    [refusal] = refusals_and_nothing_else(settings, before)
    assert refusal[:3] == ("uma", action, "ada")


def test_the_user_pages_offer_only_the_roles_the_actor_may_give(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    sign_in(client, make_user, "uma", "users-scans")
    make_user("vic", "viewer")
    givable = {"users-only", "users-scans", "viewer"}
    new_user_form = client.get("/admin/users").text.split('method="post" action="/admin/users"')[1]
    assert options(new_user_form, "role") == givable
    assert options(client.get(f"/admin/users/{user_id(settings, 'vic')}").text, "role") == givable
    above = client.get(f"/admin/users/{user_id(settings, 'ada')}").text
    assert 'data-testid="not-delegable"' in above and "admin.roles" in above
    ada = user_id(settings, "ada")
    assert f'action="/admin/users/{ada}' not in above and options(above, "role") == set()


def options(html: str, select: str) -> set[str]:
    """The values offered by the <select> elements named `select` in `html`."""
    found: set[str] = set()
    inside = False

    class Options(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            nonlocal inside
            values = dict(attrs)
            if tag == "select":
                inside = values.get("name") == select
            elif tag == "option" and inside and values.get("value"):
                found.add(values["value"] or "")

        def handle_endtag(self, tag: str) -> None:
            nonlocal inside
            inside = inside and tag != "select"

    Options().feed(html)
    return found


# -- admin.roles: the matrix and the roles themselves -----------------------------

@pytest.mark.parametrize("how", ["matrix", "row"])
def test_a_roles_admin_cannot_tick_a_permission_it_lacks(
    client: TestClient, make_user: Any, settings: Settings, how: str
) -> None:
    token = sign_in(client, make_user, "rob", "roles-only")
    own = role_ids(settings)["roles-only"]
    before = snapshot(settings)
    if how == "matrix":
        wanted = {"roles-only": {"admin.roles", "admin.users"}}
        answer = post_pairs(client, "/admin/roles/matrix", matrix_form(settings, token, **wanted))
    else:  # its own row alone
        answer = post_pairs(client, "/admin/roles/matrix", [
            ("csrf_token", token), ("role", str(own)),
            (f"p{own}", "admin.roles"), (f"p{own}", "admin.users")])
    assert 'data-testid="matrix-error"' in answer.text
    assert answer.status_code == 403 and "you do not hold admin.users" in answer.text
    [refusal] = refusals_and_nothing_else(settings, before)
    assert refusal[:3] == ("rob", "role.permissions.refused", "roles-only")
    assert json.loads(refusal[4]) == {"permissions": ["admin.roles", "admin.users"],
                                      "not_held": "admin.users"}
    assert granted(settings, "roles-only") == {"admin.roles"}
    assert client.get("/admin/users").status_code == 403


def test_a_roles_admin_cannot_untick_a_permission_it_lacks(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "rob", "roles-only")
    before = snapshot(settings)
    answer = post_pairs(client, "/admin/roles/matrix",
                        matrix_form(settings, token, operator={"scan.quality"}))
    assert answer.status_code == 403 and "you do not hold scan.fg" in answer.text
    [refusal] = refusals_and_nothing_else(settings, before)
    assert refusal[1:3] == ("role.permissions.refused", "operator")


def test_the_matrix_as_shown_keeps_what_the_actor_lacks_and_changes_what_it_holds(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    sign_in(client, make_user, "rob", "roles-only")
    page = client.get("/admin/roles").text
    viewer = role_ids(settings)["viewer"]
    boxes = checkboxes(page)
    assert boxes[(f"p{viewer}", "scans.view")] == {"checked": True, "disabled": True}
    assert boxes[(f"p{viewer}", "admin.users")] == {"checked": False, "disabled": True}
    assert boxes[(f"p{viewer}", "admin.roles")] == {"checked": False, "disabled": False}
    # The browser sends hidden fields and ticked boxes that are not disabled; tick admin.roles.
    sent = [*submitted(page), (f"p{viewer}", "admin.roles")]
    saved = post_pairs(client, "/admin/roles/matrix", sent, follow_redirects=False)
    assert saved.status_code == 303
    assert granted(settings, "viewer") == {"scans.view", "admin.roles"}
    assert granted(settings, "admin") == set(PERMISSIONS)
    assert [row[1:3] for row in audit_rows(settings)][-1] == ("role.permissions", "viewer")


def test_a_role_holding_what_the_actor_lacks_cannot_be_renamed_or_deleted(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "rob", "roles-only")
    ids = role_ids(settings)
    page = client.get("/admin/roles").text
    assert 'data-testid="manage-audit-only"' in page
    before = snapshot(settings)
    renamed = client.post(f"/admin/roles/{ids['admin']}/rename", data={"csrf_token": token, "name": "boss"})
    assert renamed.status_code == 403 and "may rename or delete it" in renamed.text
    deleted = client.post(f"/admin/roles/{ids['audit-only']}/delete", data={"csrf_token": token})
    assert deleted.status_code == 403 and "may rename or delete it" in deleted.text
    refused = refusals_and_nothing_else(settings, before)
    assert [row[1:3] for row in refused] == [("role.rename.refused", "admin"),
                                             ("role.delete.refused", "audit-only")]
    # A role within what the actor holds: created, renamed and deleted.
    assert client.post("/admin/roles", data={"csrf_token": token, "name": "spare"},
                       follow_redirects=False).status_code == 303
    spare = role_ids(settings)["spare"]
    assert client.post(f"/admin/roles/{spare}/rename", data={"csrf_token": token, "name": "spare-two"},
                       follow_redirects=False).status_code == 303
    assert client.post(f"/admin/roles/{spare}/delete", data={"csrf_token": token},
                       follow_redirects=False).status_code == 303


def checkboxes(html: str) -> dict[tuple[str, str], dict[str, bool]]:
    """Each matrix checkbox by (name, value): whether it is ticked and whether disabled."""
    found = {}

    class Boxes(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = dict(attrs)
            if tag == "input" and values.get("type") == "checkbox":
                found[(values.get("name") or "", values.get("value") or "")] = {
                    "checked": "checked" in values, "disabled": "disabled" in values}

    Boxes().feed(html)
    return found


def submitted(html: str) -> list[tuple[str, str]]:
    """What a browser sends for the matrix form as shown: its hidden fields and the
    ticked boxes that are not disabled."""
    form = html.split('data-testid="matrix"')[1].split("</form>")[0]
    pairs = []

    class Fields(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = dict(attrs)
            if tag != "input" or "disabled" in values:
                return
            if values.get("type") == "hidden" or (values.get("type") == "checkbox" and "checked" in values):
                pairs.append((values.get("name") or "", values.get("value") or ""))

    Fields().feed(form)
    return pairs


# -- the accounts layer itself -----------------------------------------------------

async def test_an_actor_demoted_while_their_change_waits_is_refused(
    settings: Settings, make_user: Any
) -> None:
    """What the actor holds is read, locked, in the change's own transaction: a
    demotion in flight is waited for and seen, whatever the actor's session says."""
    make_user("bea", "admin")
    make_user("vic", "viewer")
    bea = Actor(user_id(settings, "bea"), "bea", "127.0.0.1")
    assert settings.database_url
    db = database_for(settings.database_url, maxsize=3)
    try:
        async with db.transaction() as demotion:
            await demotion.execute("UPDATE users SET role_id = (SELECT id FROM roles WHERE name = 'operator')"
                                   " WHERE username = 'bea'")
            change = asyncio.ensure_future(update_user(db, "vic", actor=bea, role="admin"))
            await asyncio.sleep(0.5)
            assert not change.done()  # waiting for the demotion to commit or roll back
        with pytest.raises(NotDelegable):
            await change
    finally:
        await db.close()
    assert user_row(settings, "vic")[1] == "viewer"
    assert [row[:3] for row in audit_rows(settings)][-1] == ("bea", "user.update.refused", "vic")


async def test_a_disabled_or_unknown_actor_holds_nothing(db: Database, settings: Settings) -> None:
    await create_user(db, "dan", PASSWORD, "admin")
    dan = user_id(settings, "dan")
    await update_user(db, "dan", actor=terminal(), active=False)
    for actor in (Actor(dan, "dan", ""), Actor(999_999, "ghost", "")):
        with pytest.raises(NotDelegable):
            await set_password(db, "dan", "another-pass-1", actor=actor)


async def test_the_terminal_and_the_app_are_not_bound(db: Database, settings: Settings) -> None:
    await create_user(db, "root", PASSWORD, "admin", actor=terminal())
    await set_password(db, "root", "another-pass-1", actor=terminal())
    await update_user(db, "root", actor=terminal(), role="roles-only")
    assert user_row(settings, "root")[1] == "roles-only"
    assert not any(row[1].endswith(".refused") for row in audit_rows(settings))
