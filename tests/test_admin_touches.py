"""Issue 21's admin touches: /admin lists the admin pages a user may open,
disabling a user asks first (a page of its own, so no script is needed),
role descriptions show where roles are chosen, and a user's language is set
by an admin (audited, under the delegation rule) or from a terminal."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.testclient import TestClient

from quality.settings import DatabaseURL, Settings
from tests.admin_support import audit_rows, make_role, query, sign_in, snapshot
from tests.conftest import execute, run_async
from tests.test_admin_users import user_id, user_row
from tests.test_cli import quality


def language_of(settings: Settings, username: str) -> str | None:
    return query(settings, f"SELECT language FROM users WHERE username = '{username}'")[0][0]


def links(page: str) -> list[str]:
    return re.findall(r'<a class="tile" href="([^"]+)"', page)


def test_admin_lists_the_admin_pages_each_user_may_open(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    sign_in(client, make_user, "ada", "admin")
    assert links(client.get("/admin").text) == ["/admin/users", "/admin/roles", "/admin/defects",
                                                "/admin/audit", "/admin/alerts"]
    make_role(settings, "audit-defects", "admin.defects", "admin.audit")
    client.cookies.clear()
    sign_in(client, make_user, "dan", "audit-defects")
    assert links(client.get("/admin").text) == ["/admin/defects", "/admin/audit"]
    client.cookies.clear()
    sign_in(client, make_user, "olga", "operator")
    refused = client.get("/admin")
    assert refused.status_code == 403 and "Your role does not allow this page." in refused.text


def test_disabling_a_user_asks_first_and_only_the_question_page_disables(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    make_user("olga", "operator")
    olga = user_id(settings, "olga")
    account = client.get(f"/admin/users/{olga}").text
    assert f'action="/admin/users/{olga}/disable"' not in account  # no one-click disable
    assert f'href="/admin/users/{olga}/disable"' in account
    question = client.get(f"/admin/users/{olga}/disable")
    assert question.status_code == 200 and "Disable olga?" in question.text
    assert f'<form method="post" action="/admin/users/{olga}/disable"' in question.text
    assert user_row(settings, "olga")[2] == 1  # asking changed nothing
    answered = client.post(f"/admin/users/{olga}/disable", data={"csrf_token": token},
                           follow_redirects=False)
    assert answered.status_code == 303 and user_row(settings, "olga")[2] == 0
    assert "disabled already" in client.get(f"/admin/users/{olga}/disable").text
    assert client.get("/admin/users/65000/disable").status_code == 404


def test_role_descriptions_show_in_the_roles_list_and_the_user_forms(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    client.post("/admin/roles", data={"csrf_token": token, "name": "lead",
                                      "description": "Leads a line & signs off orders"})
    listed = client.get("/admin/roles").text
    assert "Leads a line &amp; signs off orders" in listed.split('data-testid="manage-lead"')[1]
    make_user("olga", "operator")
    for page in ("/admin/users", f"/admin/users/{user_id(settings, 'olga')}"):
        shown = client.get(page).text.split('data-testid="role-descriptions"')[1].split("</dl>")[0]
        assert "<dt>lead</dt><dd>Leads a line &amp; signs off orders</dd>" in shown


def test_an_admin_sets_a_users_language_audited_and_bad_ones_change_nothing(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    created = client.post("/admin/users", data={
        "csrf_token": token, "username": "ion", "role": "operator", "password": "temporary-pass-1",
        "language": "ro"}, follow_redirects=False)
    assert created.status_code == 303 and language_of(settings, "ion") == "ro"
    ion = user_id(settings, "ion")
    assert '<option value="ro" selected>Română</option>' in client.get(f"/admin/users/{ion}").text
    form = {"csrf_token": token, "full_name": "", "role": "operator", "active": "on"}
    assert client.post(f"/admin/users/{ion}", data={**form, "language": "en"},
                       follow_redirects=False).status_code == 303
    assert language_of(settings, "ion") == "en"
    assert client.post(f"/admin/users/{ion}", data={**form, "language": ""},
                       follow_redirects=False).status_code == 303
    assert language_of(settings, "ion") is None  # the plant's default again
    changes = [(json.loads(before), json.loads(after)) for _actor, action, target, before, after
               in audit_rows(settings) if (action, target) == ("user.update", "ion")]
    assert changes == [({"language": "ro"}, {"language": "en"}), ({"language": "en"}, {"language": ""})]
    before = snapshot(settings)
    refused = client.post(f"/admin/users/{ion}", data={**form, "language": "klingon"})
    assert refused.status_code == 422 and 'data-testid="language-error"' in refused.text
    assert snapshot(settings) == before


def test_a_users_admin_cannot_set_the_language_of_an_account_holding_more(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    make_role(settings, "users-only", "admin.users")
    token = sign_in(client, make_user, "uma", "users-only")
    make_user("ada", "admin")
    before = snapshot(settings)
    refused = client.post(f"/admin/users/{user_id(settings, 'ada')}", data={
        "csrf_token": token, "full_name": "", "role": "admin", "active": "on", "language": "ro"})
    assert refused.status_code == 403 and language_of(settings, "ada") is None
    after = snapshot(settings)
    assert after["users"] == before["users"]
    assert [row[1:3] for row in audit_rows(settings)][-1] == ("user.update.refused", "ada")


def test_the_terminal_sets_a_users_language(db_url: DatabaseURL) -> None:
    quality(db_url, "user", "add", "boss", "--role", "admin", "--password-stdin", stdin="long-enough-pw\n")
    added = quality(db_url, "user", "add", "ion", "--role", "operator", "--language", "ro",
                    "--password-stdin", stdin="long-enough-pw\n")
    assert added.returncode == 0, added.stderr
    changed = quality(db_url, "user", "language", "ion", "en")
    assert changed.returncode == 0 and "'ion' now reads the app in 'en'" in changed.stdout
    unknown = quality(db_url, "user", "language", "ion", "xx")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr
    back = quality(db_url, "user", "language", "ion", "default")
    assert back.returncode == 0
    (found,) = run_async(execute(db_url, "SELECT language FROM users WHERE username = 'ion'"))
    assert found == [(None,)]
    (audit,) = run_async(execute(db_url, "SELECT action, before_value, after_value FROM audit_log"
                                         " WHERE target = 'ion' ORDER BY id"))
    decoded = [(action, before and json.loads(before), json.loads(after)) for action, before, after in audit]
    assert decoded == [
        ("user.create", None, {"full_name": "", "role": "operator", "active": True,
                               "must_change_password": False, "language": "ro"}),
        ("user.update", {"language": "ro"}, {"language": "en"}),
        ("user.update", {"language": "en"}, {"language": ""}),
    ]
