"""What ships: docker-compose.yml, the Dockerfile, .dockerignore, and the wheel.

No Docker engine runs here, so the compose file and the Dockerfile are checked
by reading them; the wheel is really built, installed into a fresh virtual
environment and served from there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from quality.settings import Settings
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
# Connections the app's workers must leave free: `quality` commands (2 each),
# a DBA's client, monitoring.
HEADROOM = 20


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def option(arguments: list[str], name: str) -> str:
    """The value of `--name V` or `--name=V` in an argument list."""
    for index, argument in enumerate(arguments):
        if argument == name:
            return arguments[index + 1]
        if argument.startswith(name + "="):
            return argument.split("=", 1)[1]
    raise AssertionError(f"{name} not in {arguments}")


def test_app_execs_the_server_as_pid_1(compose: dict[str, Any]) -> None:
    command = compose["services"]["app"]["command"]
    # A list is exec form: no shell in between to swallow SIGTERM.
    assert isinstance(command, list) and command[:2] == ["quality", "serve"]
    assert "--migrate" in command and option(command, "--host") == "0.0.0.0"
    assert option(command, "--port") == "8000"


def test_app_gets_every_setting_and_waits_for_a_healthy_database(compose: dict[str, Any]) -> None:
    app, db = compose["services"]["app"], compose["services"]["db"]
    assert app["env_file"] == ".env"  # every QUALITY_* setting, not a hand-picked few
    assert app["environment"]["QUALITY_DATABASE_URL"].startswith("mysql://quality:")
    assert app["environment"]["QUALITY_DATABASE_URL"].endswith("@db:3306/quality")
    assert app["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert "/healthz" in " ".join(app["healthcheck"]["test"])
    assert "healthcheck.sh" in db["healthcheck"]["test"]
    assert db["volumes"] == ["dbdata:/var/lib/mysql"] and "dbdata" in compose["volumes"]
    assert app["restart"] == db["restart"] == "unless-stopped"


def test_app_connections_fit_under_max_connections(compose: dict[str, Any]) -> None:
    app, db = compose["services"]["app"], compose["services"]["db"]
    workers = int(option(app["command"], "--workers"))
    pool_max = int(app["environment"].get("QUALITY_POOL_MAX", Settings.pool_max))
    max_connections = int(option(db["command"], "--max-connections"))
    assert workers >= 2
    assert workers * pool_max + HEADROOM <= max_connections


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Each stage's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        keyword, _, arguments = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), arguments))
    return stages


def test_image_installs_dependencies_before_the_code() -> None:
    final = dockerfile_stages()[-1]
    steps = [f"{keyword} {arguments}" for keyword, arguments in final]
    dependencies = next(i for i, step in enumerate(steps) if "pip install -r" in step)
    copies = [i for i, step in enumerate(steps) if step.startswith("COPY")]
    # Before the dependencies only pyproject.toml is copied, so a code change
    # leaves that layer cached.
    assert all("pyproject.toml" in steps[i] for i in copies if i < dependencies)
    assert any(i > dependencies and "/wheels" in steps[i] for i in copies)
    installs = [step for step in steps if "pip install" in step]
    assert all(" -e " not in step and "--editable" not in step for step in installs)
    (command,) = [arguments for keyword, arguments in final if keyword == "CMD"]
    assert json.loads(command)[:2] == ["quality", "serve"]  # exec form
    assert ("USER", "quality") in final


def test_build_context_leaves_out_local_state_and_secrets() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", "var", ".env", ".git", "build"} <= ignored
    assert {"quality", "templates", "static", "pyproject.toml", "setup.py"}.isdisjoint(ignored)


def test_a_wheel_install_serves_pages(tmp_path: Path, settings: Settings) -> None:
    # Build from a copy holding only what the Dockerfile's build stage sends.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("quality", "templates", "static"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)])
    (wheel,) = (tmp_path / "dist").glob("quality-*.whl")

    # A fresh environment with only the wheel; the dependencies come from this
    # one's site-packages, on PYTHONPATH, so nothing is downloaded.
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    run([*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", str(wheel)])
    shutil.rmtree(source)  # nothing left to find templates in but the install
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    located = run([str(venv / "bin" / "python"), "-c", "import quality; print(quality.__file__)"],
                  env=env, cwd=tmp_path)
    assert located.startswith(str(venv))
    # the build compiled the catalogues (a checkout's .mo files are not committed)
    assert (Path(located).parent / "locale" / "ro" / "LC_MESSAGES" / "messages.mo").is_file()

    assert settings.database_url and settings.secret_key
    port = free_port()
    env |= {"QUALITY_DATABASE_URL": settings.database_url.as_url(),
            "QUALITY_SECRET_KEY": settings.secret_key, "QUALITY_PORT": str(port)}
    server = subprocess.Popen([str(venv / "bin" / "quality"), "serve"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        page = get(f"http://127.0.0.1:{port}/login", server)
        assert "Sign in" in page
        script = re.search(r'src="(/static/vendor/htmx-[^"]+)"', page)
        assert script, page
        htmx = get(f"http://127.0.0.1:{port}{script.group(1)}", server)
        assert htmx == (ROOT / "static" / script.group(1).split("?")[0].removeprefix("/static/")).read_text()
    finally:
        server.terminate()
        server.communicate(timeout=30)


def run(command: list[str], **options: Any) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **options)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def get(url: str, server: subprocess.Popen[bytes], timeout: float = 60) -> str:
    """The body at `url` once the server answers; its output if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = server.communicate()[0].decode(errors="replace")
            raise AssertionError(f"the installed app exited:\n{output}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"no answer from {url} within {timeout:g}s")
