"""`quality user list|disable|role|email` from a terminal, every change audited
like the pages' (who: the terminal's user; from: "terminal")."""

from __future__ import annotations

import getpass
import json

from quality.settings import DatabaseURL
from tests.conftest import execute, run_async
from tests.test_cli import quality


def rows(db_url: DatabaseURL, sql: str) -> list[tuple]:
    (found,) = run_async(execute(db_url, sql))
    return found


def test_list_disable_and_role_are_audited_as_the_terminal(db_url: DatabaseURL) -> None:
    for name, role in (("boss", "admin"), ("olga", "operator")):
        added = quality(db_url, "user", "add", name, "--role", role, "--password-stdin",
                        stdin="long-enough-pw\n")
        assert added.returncode == 0, added.stderr
    listed = quality(db_url, "user", "list")
    assert listed.returncode == 0
    assert [line.split()[:3] for line in listed.stdout.splitlines()[1:]] == [
        ["boss", "admin", "active"], ["olga", "operator", "active"]]
    promoted = quality(db_url, "user", "role", "OLGA", "supervisor")
    assert promoted.returncode == 0 and "now has the role 'supervisor'" in promoted.stdout
    disabled = quality(db_url, "user", "disable", "olga")
    assert disabled.returncode == 0
    assert quality(db_url, "user", "passwd", "olga", "--password-stdin",
                   stdin="another-long-pw\n").returncode == 0
    assert ["olga", "supervisor", "disabled"] in [
        line.split() for line in quality(db_url, "user", "list").stdout.splitlines()]
    audit = rows(db_url, "SELECT actor, address, action, target, before_value, after_value"
                         " FROM audit_log ORDER BY id")
    who = f"terminal:{getpass.getuser()}"
    assert [(a, b, c, d) for a, b, c, d, _, _ in audit] == [
        (who, "terminal", "user.create", "boss"),
        (who, "terminal", "user.create", "olga"),
        (who, "terminal", "user.update", "olga"),
        (who, "terminal", "user.update", "olga"),
        (who, "terminal", "user.password.reset", "olga"),
    ]
    assert [json.loads(v) for v in audit[2][4:]] == [{"role": "operator"}, {"role": "supervisor"}]
    assert [json.loads(v) for v in audit[3][4:]] == [{"active": True}, {"active": False}]


def test_the_terminal_cannot_remove_the_last_admin_either(db_url: DatabaseURL) -> None:
    quality(db_url, "user", "add", "boss", "--role", "admin", "--password-stdin", stdin="long-enough-pw\n")
    for args in (("disable", "boss"), ("role", "boss", "operator")):
        refused = quality(db_url, "user", *args)
        assert refused.returncode == 2
        assert "no active administrator" in refused.stderr
    missing = quality(db_url, "user", "disable", "ghost")
    assert missing.returncode == 2 and "No user named 'ghost'" in missing.stderr
    bad_role = quality(db_url, "user", "role", "boss", "wizard")
    assert bad_role.returncode == 2 and "No role named 'wizard'" in bad_role.stderr
    assert rows(db_url, "SELECT COUNT(*) FROM audit_log WHERE action <> 'user.create'") == [(0,)]
    assert rows(db_url, "SELECT active FROM users") == [(1,)]


def test_an_email_address_is_set_listed_changed_and_cleared_and_bad_or_taken_ones_are_refused(
    db_url: DatabaseURL,
) -> None:
    for name, email in (("boss", "boss@plant.example"), ("rita", "Rita@Plant.example")):
        added = quality(db_url, "user", "add", name, "--role", "admin", "--email", email, "--password-stdin",
                        stdin="long-enough-pw\n")
        assert added.returncode == 0, added.stderr
    assert ["rita", "admin", "active", "Rita@Plant.example"] in [
        line.split() for line in quality(db_url, "user", "list").stdout.splitlines()]
    changed = quality(db_url, "user", "email", "rita", "rita.pop@plant.example")
    assert changed.returncode == 0 and "now has the e-mail address 'rita.pop@plant.example'" in changed.stdout
    cleared = quality(db_url, "user", "email", "rita", "none")
    assert cleared.returncode == 0 and "now has no e-mail address" in cleared.stdout
    assert rows(db_url, "SELECT username, email FROM users ORDER BY id") == [
        ("boss", "boss@plant.example"), ("rita", None)]
    audit = rows(db_url, "SELECT action, target, before_value, after_value FROM audit_log ORDER BY id")
    assert json.loads(audit[1][3])["email"] == "Rita@Plant.example"
    assert [(action, target, json.loads(before), json.loads(after))
            for action, target, before, after in audit[2:]] == [
        ("user.update", "rita", {"email": "Rita@Plant.example"}, {"email": "rita.pop@plant.example"}),
        ("user.update", "rita", {"email": "rita.pop@plant.example"}, {"email": ""})]

    counts = "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM audit_log)"
    before = rows(db_url, counts)
    for args, message in (
        (("email", "rita", "not-an-address"), "E-mail address must look like ana.pop@plant.example."),
        (("email", "rita", "BOSS@plant.example"), "Another user already has the e-mail address"
                                                  " BOSS@plant.example."),
        (("add", "newbie", "--role", "operator", "--email", "Boss@Plant.Example", "--password-stdin"),
         "Another user already has the e-mail address Boss@Plant.Example."),
    ):
        refused = quality(db_url, "user", *args, stdin="long-enough-pw\n")
        assert refused.returncode == 2
        assert refused.stderr == f"quality: {message}\n"
    assert rows(db_url, counts) == before
    assert rows(db_url, "SELECT email FROM users WHERE username = 'rita'") == [(None,)]
