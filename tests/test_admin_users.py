"""/admin/users: create, list, edit, reset password, disable; each change
audited; ids in URLs checked; the last administrator kept."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from markupsafe import escape
from starlette.testclient import TestClient

from quality.accounts import LastAdmin, update_user
from quality.audit import Actor
from quality.settings import Settings
from tests.admin_support import audit_rows, query, sign_in, snapshot, two_processes
from tests.conftest import PASSWORD, database_for, eventually, login


def user_row(settings: Settings, username: str) -> tuple[Any, ...]:
    (row,) = query(settings, "SELECT u.full_name, r.name, u.active, u.must_change_password"
                             " FROM users u JOIN roles r ON r.id = u.role_id"
                             f" WHERE u.username = '{username}'")
    return row


def user_id(settings: Settings, username: str) -> int:
    return query(settings, f"SELECT id FROM users WHERE username = '{username}'")[0][0]


def test_an_admin_creates_a_user_who_must_choose_a_password(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    created = client.post("/admin/users", data={
        "csrf_token": token, "username": " Op.One ", "full_name": "Olga One", "role": "operator",
        "password": "temporary-pass-1"}, follow_redirects=False)
    assert created.status_code == 303
    assert created.headers["location"] == f"/admin/users/{user_id(settings, 'op.one')}?done=created"
    assert user_row(settings, "op.one") == ("Olga One", "operator", 1, 1)
    actor, action, target, before, after = audit_rows(settings)[-1]
    assert (actor, action, target, before) == ("ada", "user.create", "op.one", None)
    assert json.loads(after) == {"full_name": "Olga One", "role": "operator", "active": True,
                                 "must_change_password": True}
    assert query(settings, "SELECT address FROM audit_log ORDER BY id DESC LIMIT 1") == [("127.0.0.1",)]
    listed = client.get("/admin/users?q=olga&role=operator&active=yes")
    assert "op.one" in listed.text and "ada" not in listed.text.split("<tbody>")[1]
    assert "op.one" not in client.get("/admin/users?active=no").text


def test_the_users_list_search_finds_an_e_mail_address_in_any_case(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    for username, email in (("rita", "Rita.Pop@Plant.example"), ("vlad", "vlad@depot.example")):
        assert client.post("/admin/users", data={
            "csrf_token": token, "username": username, "full_name": "", "role": "operator",
            "password": "temporary-pass-1", "email": email}, follow_redirects=False).status_code == 303

    def listed(search: str) -> str:
        return client.get("/admin/users", params={"q": search}).text.split("<tbody>")[1].split("</tbody>")[0]

    found = listed("pop@PLANT")
    assert "rita" in found and "vlad" not in found and "ada" not in found
    found = listed("Depot.Example")
    assert "vlad" in found and "rita" not in found


@pytest.mark.parametrize(("form", "field", "message"), [
    ({"username": "x"}, "username", "User name is too short (at least 2 characters)."),
    ({"username": "bad name"}, "username", "User name must look like ana.pop"),
    ({"role": "overlord"}, "role", "Role: choose one from the list."),
    ({"role": ""}, "role", "Choose a role."),
    ({"password": "short"}, "password", "Temporary password is too short (at least 8 characters)."),
    ({"full_name": "tab\there"}, "full_name", "Full name must look like Ana Pop."),
    ({"username": "ada"}, "username", "User 'ada' already exists."),
])
def test_a_bad_new_user_is_refused_beside_its_field_with_the_values_kept(
    client: TestClient, make_user: Any, settings: Settings, form: dict[str, str], field: str,
    message: str,
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    before = snapshot(settings)
    data = {"csrf_token": token, "username": "new.user", "full_name": "Nina New",
            "role": "operator", "password": "temporary-pass-1", **form}
    refused = client.post("/admin/users", data=data)
    assert refused.status_code == 422
    assert f'data-testid="{field}-error">{escape(message)}' in refused.text
    if field != "username":
        assert 'value="new.user"' in refused.text  # what was typed stays
    assert "temporary-pass-1" not in refused.text  # but never a password
    assert snapshot(settings) == before


def test_an_edit_changes_role_and_name_from_the_users_next_request(
    settings: Settings, make_user: Any
) -> None:
    with two_processes(settings) as (admin, worker):
        token = sign_in(admin, make_user, "ada", "admin")
        make_user("sam", "operator")
        login(worker, "sam")
        assert worker.get("/scans").status_code in (403, 404)
        assert worker.get("/admin/users").status_code == 403
        sam = user_id(settings, "sam")
        saved = admin.post(f"/admin/users/{sam}", data={
            "csrf_token": token, "full_name": "Sam Super", "role": "admin", "active": "on"},
            follow_redirects=False)
        assert saved.status_code == 303
        assert eventually(lambda: worker.get("/admin/users").status_code == 200)
        assert user_row(settings, "sam") == ("Sam Super", "admin", 1, 0)
        _actor, action, target, before, after = audit_rows(settings)[-1]
        assert (action, target) == ("user.update", "sam")
        assert json.loads(before) == {"full_name": "", "role": "operator"}
        assert json.loads(after) == {"full_name": "Sam Super", "role": "admin"}


def test_disabling_ends_the_users_sessions_so_their_old_cookie_is_refused(
    settings: Settings, make_user: Any
) -> None:
    with two_processes(settings) as (admin, worker):
        token = sign_in(admin, make_user, "ada", "admin")
        make_user("sam", "operator")
        login(worker, "sam")
        assert worker.get("/scan").status_code == 200
        sam = user_id(settings, "sam")
        assert admin.post(f"/admin/users/{sam}/disable", data={"csrf_token": token},
                          follow_redirects=False).status_code == 303
        assert query(settings, f"SELECT COUNT(*) FROM sessions WHERE user_id = {sam}") == [(0,)]
        assert eventually(lambda: worker.get("/scan", follow_redirects=False).headers.get(
            "location", "").startswith("/login"))
        assert login(worker, "sam").status_code == 401
        changes = [row for row in audit_rows(settings) if not row[1].startswith("sign-in.")]
        assert changes[-1][1:] == ("user.update", "sam", '{"active": true}', '{"active": false}')


def test_a_reset_password_ends_sessions_and_must_be_replaced_at_sign_in(
    settings: Settings, make_user: Any
) -> None:
    with two_processes(settings) as (admin, worker):
        token = sign_in(admin, make_user, "ada", "admin")
        make_user("sam", "operator")
        login(worker, "sam")
        sam = user_id(settings, "sam")
        short = admin.post(f"/admin/users/{sam}/password", data={"csrf_token": token, "password": "x"})
        assert short.status_code == 422 and "at least 8 characters" in short.text
        assert admin.post(f"/admin/users/{sam}/password",
                          data={"csrf_token": token, "password": "temporary-pass-1"},
                          follow_redirects=False).status_code == 303
        assert eventually(lambda: worker.get("/scan", follow_redirects=False).status_code == 303)
        asked = login(worker, "sam", "temporary-pass-1")
        assert asked.status_code == 200 and "Choose a new one to continue" in asked.text
        assert "t" not in worker.cookies.get("session", "") or worker.get("/scan", follow_redirects=False
                                                                           ).status_code == 303
        page = worker.get("/login")
        from tests.conftest import csrf_token_in
        changed = worker.post("/login", data={
            "username": "sam", "password": "temporary-pass-1", "new_password": "my-own-pass-9",
            "repeat_password": "my-own-pass-9", "csrf_token": csrf_token_in(page.text)},
            follow_redirects=False)
        assert changed.status_code == 303
        assert worker.get("/scan").status_code == 200
        assert user_row(settings, "sam")[3] == 0
        actions = [row[1:3] for row in audit_rows(settings) if not row[1].startswith("sign-in.")]
        assert actions[-2:] == [("user.password.reset", "sam"), ("user.password.change", "sam")]


@pytest.mark.parametrize("path", [
    "/admin/users/999999", "/admin/users/0", "/admin/users/99999999999999999999999999",
    "/admin/users/abc", "/admin/users/-1", "/admin/users/1.5",
])
def test_an_unknown_or_malformed_user_id_is_a_404_page(
    client: TestClient, make_user: Any, settings: Settings, path: str
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    before = snapshot(settings)
    assert client.get(path).status_code == 404
    for action in ("", "/password", "/disable"):
        answer = client.post(path + action, data={"csrf_token": token, "full_name": "x",
                                                  "role": "operator", "password": "long-enough-1"})
        assert answer.status_code == 404, (path + action, answer.status_code)
        assert "error-message" in answer.text
    assert snapshot(settings) == before


def test_the_last_admin_cannot_be_disabled_or_demoted(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    ada = user_id(settings, "ada")
    before = snapshot(settings)
    disabled = client.post(f"/admin/users/{ada}/disable", data={"csrf_token": token})
    assert disabled.status_code == 422 and "no active administrator" in disabled.text
    demoted = client.post(f"/admin/users/{ada}", data={"csrf_token": token, "full_name": "",
                                                       "role": "operator", "active": "on"})
    assert demoted.status_code == 422 and "no active administrator" in demoted.text
    unticked = client.post(f"/admin/users/{ada}", data={"csrf_token": token, "full_name": "",
                                                        "role": "admin"})
    assert unticked.status_code == 422
    assert snapshot(settings) == before
    make_user("bob", "admin")
    assert client.post(f"/admin/users/{ada}", data={"csrf_token": token, "full_name": "",
                                                    "role": "operator", "active": "on"},
                       follow_redirects=False).status_code == 303


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    settings: Settings, make_user: Any
) -> None:
    assert settings.database_url
    db = database_for(settings.database_url, maxsize=4)
    try:
        for round_ in range(4):
            make_user(f"a{round_}", "admin")
            make_user(f"b{round_}", "admin")
            async with db.transaction() as cur:  # only this round's pair are admins
                await cur.execute("UPDATE users SET active = FALSE WHERE username NOT IN (%s, %s)",
                                  (f"a{round_}", f"b{round_}"))
            outcomes = await asyncio.gather(
                update_user(db, f"a{round_}", actor=Actor(None, f"b{round_}", ""), role="operator"),
                update_user(db, f"b{round_}", actor=Actor(None, f"a{round_}", ""), role="operator"),
                return_exceptions=True,
            )
            refused = [o for o in outcomes if isinstance(o, LastAdmin)]
            assert len(refused) == 1, outcomes
    finally:
        await db.close()
    admins = query(settings, "SELECT COUNT(*) FROM users u JOIN roles r ON r.id = u.role_id"
                             " WHERE u.active AND r.name = 'admin'")
    assert admins == [(1,)]


def test_a_disabled_user_cannot_sign_in_and_an_operator_sees_403(
    client: TestClient, make_user: Any
) -> None:
    make_user("opal", "operator")
    login(client, "opal")
    forbidden = client.get("/admin/users")
    assert forbidden.status_code == 403 and "Your role does not allow this page." in forbidden.text
    assert client.post("/admin/users", data={}).status_code == 403
    assert PASSWORD


def test_an_email_address_is_set_shown_changed_and_cleared_and_bad_or_taken_ones_are_refused(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    created = client.post("/admin/users", data={
        "csrf_token": token, "username": "rita", "full_name": "", "role": "operator",
        "password": "temporary-pass-1", "email": " Rita.Pop@Plant.example "}, follow_redirects=False)
    assert created.status_code == 303
    rita = user_id(settings, "rita")
    assert query(settings, f"SELECT email FROM users WHERE id = {rita}") == [("Rita.Pop@Plant.example",)]
    assert json.loads(audit_rows(settings)[-1][4])["email"] == "Rita.Pop@Plant.example"
    assert 'value="Rita.Pop@Plant.example"' in client.get(f"/admin/users/{rita}").text
    assert "Rita.Pop@Plant.example" in client.get("/admin/users").text
    edit = {"csrf_token": token, "full_name": "", "role": "operator", "active": "on"}
    for address in ("rita@plant.example", ""):
        saved = client.post(f"/admin/users/{rita}", data={**edit, "email": address}, follow_redirects=False)
        assert saved.status_code == 303
    assert query(settings, f"SELECT email FROM users WHERE id = {rita}") == [(None,)]
    assert [(action, json.loads(before), json.loads(after))
            for _actor, action, _target, before, after in audit_rows(settings)[-2:]] == [
        ("user.update", {"email": "Rita.Pop@Plant.example"}, {"email": "rita@plant.example"}),
        ("user.update", {"email": "rita@plant.example"}, {"email": ""})]
    page = client.get("/admin/audit?action=user.update").text
    assert "ada changed the e-mail address of rita from Rita.Pop@Plant.example to rita@plant.example." in page
    assert "ada changed the e-mail address of rita from rita@plant.example to —." in page
    client.post("/language", data={"csrf_token": token, "language": "ro", "next": "/admin/audit"})
    assert ("ada a schimbat adresa de e-mail a lui rita din rita@plant.example în —."
            in client.get("/admin/audit?action=user.update").text)
    client.post("/language", data={"csrf_token": token, "language": "en", "next": "/admin/audit"})

    make_user("sam", "operator")
    sam = user_id(settings, "sam")
    assert client.post(f"/admin/users/{sam}", data={**edit, "email": "sam@plant.example"},
                       follow_redirects=False).status_code == 303
    before = snapshot(settings)
    for url, form in ((f"/admin/users/{rita}", edit),
                      ("/admin/users", {"csrf_token": token, "username": "newbie", "full_name": "",
                                        "role": "operator", "password": "temporary-pass-1"})):
        for address, message in (
            ("not an address", "E-mail address must look like ana.pop@plant.example."),
            ("a@b.example, c@d.example", "E-mail address must look like ana.pop@plant.example."),
            ("SAM@Plant.Example", "Another user already has the e-mail address SAM@Plant.Example."),
        ):
            refused = client.post(url, data={**form, "email": address})
            assert refused.status_code == 422, (url, address)
            assert f'data-testid="email-error">{escape(message)}' in refused.text
            assert f'value="{escape(address)}"' in refused.text  # what was typed stays
    assert snapshot(settings) == before
