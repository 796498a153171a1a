"""The `quality` command against a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from quality.passwords import verify_password
from quality.settings import DatabaseURL
from tests.conftest import execute, run_async


def quality(db_url: DatabaseURL, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUALITY_DATABASE_URL": db_url.as_url(),
           "QUALITY_SECRET_KEY": "cli-test-secret-0123456789"}
    return subprocess.run(
        [sys.executable, "-m", "quality", *args], input=stdin, env=env,
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent,
    )


def test_migrate_reports_current_schema(db_url: DatabaseURL) -> None:
    result = quality(db_url, "migrate")
    assert result.returncode == 0, result.stderr
    assert "schema is current" in result.stdout


def test_user_add_with_password_from_stdin(db_url: DatabaseURL) -> None:
    result = quality(db_url, "user", "add", "Maria", "--role", "supervisor", "--password-stdin",
                     stdin="line-three-secret\n")
    assert result.returncode == 0, result.stderr
    (rows,) = run_async(execute(
        db_url, "SELECT u.password_hash, r.name FROM users u JOIN roles r ON r.id = u.role_id"
        " WHERE u.username = 'maria'"))
    stored, role = rows[0]
    assert role == "supervisor" and verify_password("line-three-secret", stored)


def test_user_add_refuses_bad_input_and_changes_nothing(db_url: DatabaseURL) -> None:
    cases = [
        (("user", "add", "x y", "--role", "operator", "--password-stdin"), "long-enough-pw\n",
         "user name must be"),
        (("user", "add", "ok", "--role", "wizard", "--password-stdin"), "long-enough-pw\n",
         "no role named 'wizard'"),
        (("user", "add", "ok", "--role", "operator", "--password-stdin"), "short\n",
         "at least 8 characters"),
    ]
    for args, stdin, message in cases:
        result = quality(db_url, *args, stdin=stdin)
        assert result.returncode == 2
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    (rows,) = run_async(execute(db_url, "SELECT COUNT(*) FROM users"))
    assert rows == [(0,)]


def test_serve_refuses_an_unmigrated_external_database(db_url: DatabaseURL) -> None:
    run_async(execute(db_url, "DELETE FROM schema_migrations"))
    result = quality(db_url, "serve", "--port", "1")
    assert result.returncode == 2
    assert "run 'quality migrate' first" in result.stderr
