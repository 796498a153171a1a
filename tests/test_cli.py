"""The `quality` command against a real database."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from quality import cli
from quality.localdb import LocalMariaDB
from quality.migrate import available
from quality.passwords import verify_password
from quality.settings import DatabaseURL
from tests.conftest import execute, free_port, run_async


def quality(db_url: DatabaseURL, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUALITY_DATABASE_URL": db_url.as_url(),
           "QUALITY_SECRET_KEY": "cli-test-secret-0123456789"}
    return subprocess.run(
        [sys.executable, "-m", "quality", *args], input=stdin, env=env,
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent,
    )


@pytest.fixture
def empty_db_url(mariadb: LocalMariaDB) -> Iterator[DatabaseURL]:
    """A database with no tables, as a DBA hands it over."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    server = mariadb.url(maintenance=True, database="mysql")
    run_async(execute(server, f"CREATE DATABASE `{name}`"))
    yield dataclasses.replace(server, database=name)
    run_async(execute(server, f"DROP DATABASE `{name}`"))


def test_version_and_help_need_no_valid_settings(tmp_path: Path) -> None:
    env = {**os.environ, "QUALITY_PORT": "abc"}
    run = [sys.executable, "-m", "quality"]
    shown = subprocess.run([*run, "--version"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert shown.returncode == 0 and shown.stdout.strip() == "quality 0.1.0"
    helped = subprocess.run([*run, "serve", "--help"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert helped.returncode == 0 and "QUALITY_PORT" in helped.stdout and not helped.stderr


def test_bad_setting_and_bad_usage_have_distinct_exit_statuses(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "quality", "serve"]
    bad_setting = subprocess.run(run, env={**os.environ, "QUALITY_PORT": "abc"},
                                 capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert bad_setting.returncode == cli.EXIT_CONFIG == 78
    assert bad_setting.stderr.splitlines() == ["quality: QUALITY_PORT='abc' is not a whole number"]
    bad_usage = subprocess.run([*run, "--port", "abc"], capture_output=True, text=True, cwd=tmp_path)
    assert bad_usage.returncode == 2 and "Traceback" not in bad_usage.stderr


def test_every_option_has_help() -> None:
    def walk(parser: argparse.ArgumentParser, path: str) -> Iterator[str]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {choice.dest for choice in action._choices_actions if choice.help}
                for name, sub in action.choices.items():
                    if name not in helped:
                        yield f"{path} {name}"
                    yield from walk(sub, f"{path} {name}")
            elif not action.help:
                yield f"{path} {'/'.join(action.option_strings) or action.dest}"

    assert list(walk(cli._parser(), "quality")) == []


def serve(db_url: DatabaseURL, stderr: int | IO[bytes], *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """`quality serve` on a free port with JSON logs, once it answers /healthz."""
    port = free_port()
    env = {**os.environ, "QUALITY_DATABASE_URL": db_url.as_url(), "QUALITY_LOG_FORMAT": "json",
           "QUALITY_SECRET_KEY": "cli-test-secret-0123456789", "QUALITY_PORT": str(port)}
    env.pop("QUALITY_ADMIN_PASSWORD", None)
    process = subprocess.Popen([sys.executable, "-m", "quality", "serve", *args], env=env,
                               stdout=subprocess.PIPE, stderr=stderr, cwd=Path(__file__).parent)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "quality serve exited at start-up"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("quality serve did not answer within 60s")


def stop(process: subprocess.Popen[bytes]) -> tuple[str, str]:
    """Stop the server; what it wrote to stdout and (if a pipe) stderr."""
    process.terminate()
    stdout, stderr = process.communicate(timeout=30)
    return stdout.decode(), (stderr or b"").decode()


def admin_password_matches(db_url: DatabaseURL, password: str) -> bool:
    (rows,) = run_async(execute(db_url, "SELECT password_hash FROM users WHERE username = 'admin'"))
    return verify_password(password, rows[0][0])


def test_start_up_output_goes_through_json_logging(empty_db_url: DatabaseURL) -> None:
    process, _ = serve(empty_db_url, subprocess.PIPE, "--migrate")
    stdout, stderr = stop(process)
    assert stdout == ""
    entries = [json.loads(line) for line in stderr.splitlines()]  # every line is a JSON object
    messages = [entry["message"] for entry in entries]
    for migration in available():
        assert f"applied migration {migration.version:04d}_{migration.name}" in messages
    assert any("quality user passwd admin" in message for message in messages)
    assert "password:" not in stderr  # no terminal here: the password is shown to nobody


def test_generated_admin_password_goes_to_the_terminal_only(empty_db_url: DatabaseURL) -> None:
    terminal, child_side = os.openpty()
    try:
        process, _ = serve(empty_db_url, child_side, "--migrate")
        stdout, _ = stop(process)
        os.close(child_side)
        shown = b""
        while chunk := _read_terminal(terminal):
            shown += chunk
    finally:
        os.close(terminal)
    lines = shown.decode().replace("\r\n", "\n").splitlines()
    (line,) = [line for line in lines if "with password:" in line]
    password = line.rsplit(": ", 1)[1]
    assert admin_password_matches(empty_db_url, password)
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    assert logged and all(password not in json.dumps(entry) for entry in logged)
    assert stdout == ""  # nor on stdout, which may be a log file


def _read_terminal(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the terminal's other side is closed and drained
        return b""


def test_migrate_reports_current_schema(db_url: DatabaseURL) -> None:
    result = quality(db_url, "migrate")
    assert result.returncode == 0, result.stderr
    assert "schema is current" in result.stdout


def test_a_database_error_is_one_line_whatever_the_command(empty_db_url: DatabaseURL) -> None:
    result = quality(empty_db_url, "user", "list")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"quality: the database answered error 1146: Table '{empty_db_url.database}.users' doesn't exist"]


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
         "No role named 'wizard'"),
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
