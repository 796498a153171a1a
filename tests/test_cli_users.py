"""`quality user list|disable|role` from a terminal, every change audited
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
