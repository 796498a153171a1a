"""Test fixtures: one private MariaDB per run (per xdist worker: tests stop and
freeze it), a fresh migrated database per test.

The server is the project's own `LocalMariaDB` on a temporary directory, so the
tests exercise the same start-up code `quality serve` uses. Its defaults are a
stock server's, not the project's preferred ones, and test databases are created
the way a DBA would (`CREATE DATABASE name`): the schema must bring its own.
Each test's database is a copy of one migrated once per run (tests/db_template.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import gc
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from asyncmy.errors import MySQLError
from starlette.testclient import TestClient

from quality.accounts import create_user
from quality.app import create_app
from quality.db import Database
from quality.http.services import Services
from quality.localdb import LocalMariaDB
from quality.migrate import migrate
from quality.settings import DatabaseURL, Settings
from quality.shifts import Shifts
from tests.db_template import Recipe, copy_database, differences, recipe_of

# The Galera cluster and the primary + replica (`galera`, `replica_pair`).
pytest_plugins = ["tests.cluster"]

T = TypeVar("T")
PASSWORD = "correct-horse-42"
# The default settings' shifts (plant zone UTC), for tests that call save_scan directly.
UTC_SHIFTS = Shifts(Settings.shifts, ZoneInfo("UTC"))
STOCK_SERVER = ("--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on its own loop in another thread, out of pytest-asyncio's way."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def database_for(url: DatabaseURL, **options: Any) -> Database:
    options = {"minsize": 0, "maxsize": 5, "timeout": 5.0, "query_timeout": 10.0, **options}
    return Database(url.connect_kwargs(), **options)


async def execute(url: DatabaseURL, *statements: str) -> list[list[tuple[Any, ...]]]:
    db = database_for(url, maxsize=1)
    results = []
    try:
        async with db.transaction() as cur:
            for statement in statements:
                await cur.execute(statement)
                results.append(await cur.fetchall())
    finally:
        await db.close()
    return results


# What a test server's files take (most of it InnoDB's redo log), with room to spare.
SERVER_ROOM = 1 << 30


def server_dir(prefix: str) -> Path:
    """A new directory for a test server's files: in memory (/dev/shm) when it has
    room, where the server's fsyncs cost nothing (on a disk they were most of
    each test's setup), else in /tmp. Either path is short, as unix sockets need."""
    memory = Path("/dev/shm")
    if memory.is_dir() and os.access(memory, os.W_OK) and shutil.disk_usage(memory).free > SERVER_ROOM:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=memory))
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture(scope="session")
def mariadb() -> Iterator[LocalMariaDB]:
    base = server_dir("qdb-")
    # utf8mb4_general_ci: what MariaDB packages default to for utf8mb4.
    server = LocalMariaDB(base, buffer_pool="64M", server_options=STOCK_SERVER)
    server.ensure_running()
    yield server
    server.release()
    shutil.rmtree(base, ignore_errors=True)


async def using(url: DatabaseURL, work: Callable[[Database], Awaitable[T]]) -> T:
    """`work` done with a pool of one connection to `url`, closed after."""
    db = database_for(url, maxsize=1)
    try:
        return await work(db)
    finally:
        await db.close()


def migrated(url: DatabaseURL) -> DatabaseURL:
    run_async(using(url, migrate))
    return url


@contextlib.contextmanager
def new_database(mariadb: LocalMariaDB, options: str = "") -> Iterator[DatabaseURL]:
    """An empty database made as a DBA would (`options`: e.g. a CHARACTER SET), dropped after."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    server = mariadb.url(maintenance=True, database="mysql")
    run_async(execute(server, f"CREATE DATABASE `{name}` {options}"))
    try:
        yield dataclasses.replace(server, database=name)
    finally:
        run_async(using(server, lambda db: drop_database(db, name)))


async def drop_database(db: Database, name: str) -> None:
    """Drop `name`, first ending its connections: a statement a test cancelled runs
    on in the server, holding its locks, and DROP would wait for it."""
    async with db.transaction() as cur:
        await cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s", (name,))
        leftovers = await cur.fetchall()
    for (thread,) in leftovers:
        with contextlib.suppress(MySQLError):  # it may have ended meanwhile
            async with db.transaction() as cur:
                await cur.execute(f"KILL {thread}")
    async with db.transaction() as cur:
        await cur.execute(f"DROP DATABASE `{name}`")


@dataclasses.dataclass(frozen=True)
class Template:
    """A database migrated once, and how to copy it."""

    name: str
    recipe: Recipe

    def copy_into(self, url: DatabaseURL) -> DatabaseURL:
        run_async(using(url, lambda db: copy_database(db, self.recipe, self.name)))
        return url


@pytest.fixture(scope="session")
def migrated_template(mariadb: LocalMariaDB) -> Iterator[Template]:
    """The database `db_url` copies, checked first against one migrated for real."""
    with new_database(mariadb) as url:
        template = Template(url.database, run_async(using(migrated(url), recipe_of)))
        with new_database(mariadb) as fresh, new_database(mariadb) as copy:
            found = run_async(compare(migrated(fresh), template.copy_into(copy)))
        assert not found, "a copy of the migrated template differs:\n" + "\n".join(found)
        yield template


async def compare(migrated_url: DatabaseURL, copied_url: DatabaseURL) -> list[str]:
    return await using(migrated_url, lambda migrated_db: using(
        copied_url, lambda copied_db: differences(migrated_db, copied_db)))


@pytest.fixture
def db_url(mariadb: LocalMariaDB, migrated_template: Template) -> Iterator[DatabaseURL]:
    """A fresh database, created with the server's defaults, with every migration applied."""
    with new_database(mariadb) as url:
        yield migrated_template.copy_into(url)


@pytest.fixture
async def db(db_url: DatabaseURL) -> AsyncIterator[Database]:
    database = database_for(db_url)
    await database.open()
    yield database
    await database.close()


@pytest.fixture
def settings(db_url: DatabaseURL) -> Settings:
    return Settings(
        database_url=db_url,
        secret_key="test-secret-key-0123456789abcdef",
        pool_min=1,
        pool_max=5,
        pool_timeout=2.0,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as test_client:
        yield test_client


@pytest.fixture
def make_user(db_url: DatabaseURL) -> Any:
    def make(username: str, role: str, password: str = PASSWORD) -> str:
        async def work() -> None:
            db = database_for(db_url, maxsize=1)
            try:
                await create_user(db, username, password, role)
            finally:
                await db.close()

        run_async(work())
        return username

    return make


def csrf_token_in(html: str) -> str:
    """The CSRF token a rendered page carries in its forms."""
    found = _CSRF_FIELD.search(html)
    assert found, "no csrf_token field in this page"
    return found[1]


_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def app_services(client: TestClient) -> Services:
    """The services a running test app's lifespan built (pool, watcher, ...)."""
    return client.app_state["services"]


def session_count(settings: Settings) -> int:
    """Sessions in the database, of every user."""
    assert settings.database_url
    (rows,) = run_async(execute(settings.database_url, "SELECT COUNT(*) FROM sessions"))
    return rows[0][0]


def eventually(check: Callable[[], bool], seconds: float = 15.0) -> bool:
    """Whether `check` comes true within `seconds`, asked every 0.1 s: for what
    the app promises within a bound (a session's end reaches every process
    within 1 s). The generous limit only ends a failing test; it asserts no time."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def login(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    page = client.get("/login")
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_token_in(page.text)},
        follow_redirects=False,
    )


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA and a server certificate it signed, valid for 127.0.0.1 only (openssl CLI)."""
    directory.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=Quality test CA")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=plant-db")
    (directory / "server.ext").write_text(
        "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\n"
        "keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n"
        "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"
    )
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
    return {name: directory / f"{name}.pem" for name in ("ca", "server")} | {
        "key": directory / "server.key"}


# -- a real server and a real browser -----------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup`, a test of a group that would not share a worker
    with its group (pytest-xdist marks each with its group's suffix) fails
    before its fixtures start anything: the cluster tests would each start a
    cluster of their own, at once, on the same cores."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
            item.fixturenames.insert(0, "_ungrouped")  # type: ignore[attr-defined]


@pytest.fixture
def _ungrouped() -> None:
    pytest.fail("--dist loadgroup did not put this test in its group: this pytest and"
                " pytest-xdist do not work together (see pyproject.toml)", pytrace=False)


_PORTS = random.Random()  # its own generator: each worker draws its own ports
# Chromium refuses to load pages from a list of well-known ports (X11's 6000,
# IRC's 6665-6669, ...: ERR_UNSAFE_PORT), all at or below this one.
BROWSERS_REFUSE_UP_TO = 10080


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports free now, drawn below the range the kernel
    hands out to outgoing connections: a server started seconds later (a
    replica after its primary) still finds its port free, whatever this machine
    connected to meanwhile (once a replica found its port taken); and above the
    ports a browser refuses."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    first = BROWSERS_REFUSE_UP_TO + 1
    with contextlib.ExitStack() as held:  # held together, so none repeats
        ports: list[int] = []
        while len(ports) < count:
            port = _PORTS.randrange(first, max(low, first + 1024))
            sock = held.enter_context(socket.socket())
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(port)
        return ports


def free_port() -> int:
    return free_ports(1)[0]


class LiveServer:
    """`quality serve` as a subprocess on a free loopback port."""

    def __init__(self, settings: Settings, extra_env: dict[str, str] | None = None,
                 workers: int = 1, cwd: Path | None = None) -> None:
        assert settings.database_url and settings.secret_key
        self.workers = workers
        self.cwd = cwd  # where `python -m quality` finds the package: another copy of it
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "QUALITY_DATABASE_URL": settings.database_url.as_url(),
            "QUALITY_SECRET_KEY": settings.secret_key,
            "QUALITY_POOL_MAX": str(settings.pool_max),
            "QUALITY_POOL_TIMEOUT": str(settings.pool_timeout),
            **(extra_env or {}),
        }
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the fixture
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "quality", "serve", "--port", str(self.port),
             "--workers", str(self.workers)],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.cwd,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.output()
                self.stop()
                raise RuntimeError(f"server exited at start-up:\n{output}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        output = self.output()
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout:g}s:\n{output}")

    def stop(self) -> None:
        self.halt()
        self.log.close()

    def halt(self) -> None:
        """Stop the process (an app restarting, or redeployed); `start` runs it
        again on the same address."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(settings)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        await chromium.close()


async def browser_login(page: Any, server: LiveServer, username: str,
                        password: str = PASSWORD) -> None:
    await page.goto(server.url + "/login")
    await page.get_by_label("User name").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


@contextlib.contextmanager
def client_sockets_may_leak() -> Iterator[None]:
    """A burst of concurrent requests from this process's HTTP client, or one cut
    off by a server that goes away, now and then leaves a socket of its own
    unclosed (seen once in eight whole-suite runs, collected mid-burst, and
    once during a later test on a worker that had run a SIGTERM mid-burst): its
    ResourceWarning is the client's, not the app's, which runs in a process of
    its own, so it is let pass around such bursts only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"unclosed (transport|<socket)", ResourceWarning)
        try:
            yield
        finally:
            gc.collect()
