"""Database topologies beyond one server, which the suite starts itself.

`galera`: a three-node MariaDB Galera cluster (galera-4) on loopback, set up
as a plant's DBA would: Debian's server defaults plus what Galera requires
(`binlog_format=ROW`, `innodb_autoinc_lock_mode=2`, as Debian's 60-galera.cnf
has them), each node on free ports of its own (SQL, group communication,
incremental and full state transfer, the latter by rsync), and HAProxy in
front with node 1 the one writer and the others its backups.
`log_bin_trust_function_creators` is off, as on a fresh server. Each test
gets a database and a user with rights on that database only
(`Galera.app_database()`), as a DBA creates them.

`replica_pair`: a primary and a replica with MariaDB GTID replication.

Both are session-scoped: started once per test session by the first test that
asks for them (under xdist, once per worker that runs such a test: the tests
that use them are in the `cluster` xdist group so that is one worker), every
wait bounded, everything stopped at the end. Their tests are marked `cluster`:
`pytest -m "not cluster"` leaves them out.

The machine needs galera-4, rsync and haproxy, and Galera's wsrep_sst_*
scripts, which Debian ships only in mariadb-server (a package that would also
install and start a system service): `scripts/setup --test` installs the first
three and takes the scripts from that package into `.venv/wsrep-sst`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncmy
import pytest
from asyncmy.errors import MySQLError

from quality.db import DatabaseError
from quality.localdb import LocalDatabaseError, LocalMariaDB
from quality.settings import DatabaseURL
from tests.conftest import STOCK_SERVER, execute, free_ports, run_async

GALERA_PROVIDER = Path("/usr/lib/galera/libgalera_smm.so")
# Where scripts/setup --test puts the state transfer scripts (in the virtual
# environment running the suite); a machine with mariadb-server has them on PATH.
SST_SCRIPTS = Path(sys.prefix) / "wsrep-sst"
HAPROXY = shutil.which("haproxy", path=f"{os.environ.get('PATH', '')}:/usr/sbin") or "haproxy"
NODE_START_SECONDS = 90.0  # a joiner's start includes its state transfer
SYNC_SECONDS = 60.0
HAPROXY_CHECK_USER = "haproxy_check"
PACKAGES = "scripts/setup --test (galera-4, rsync, haproxy and the wsrep_sst_* scripts)"


@dataclass(frozen=True)
class AppDatabase:
    """A database and a user with every right on it and none elsewhere."""

    name: str
    password: str

    @property
    def user(self) -> str:
        return self.name

    def url(self, port: int) -> DatabaseURL:
        """The app's URL through a loopback port: a node's, a server's or HAProxy's."""
        return DatabaseURL(user=self.user, password=self.password, database=self.name,
                           host="127.0.0.1", port=port)


class Server(LocalMariaDB):
    """The project's LocalMariaDB on a loopback TCP port too, with the accounts'
    passwords shared with its peers (they replicate, so they must agree)."""

    def __init__(self, base: Path, *, port: int, credentials: dict[str, str],
                 options: tuple[str, ...], environment: dict[str, str] | None = None) -> None:
        super().__init__(base, buffer_pool="64M", server_options=(*STOCK_SERVER, *options),
                         tcp_port=port, environment=environment)
        self.port = port
        self.dir.mkdir(parents=True, exist_ok=True)
        self.credentials_file.touch(mode=0o600)
        self.credentials_file.write_text(json.dumps(credentials))

    @property
    def admin_url(self) -> DatabaseURL:
        """The maintenance account (every right) over the unix socket."""
        return self.url(maintenance=True, database="mysql")

    def query(self, *statements: str) -> list[list[tuple[Any, ...]]]:
        """Run statements as the maintenance account, in one session; their rows."""
        return run_async(execute(self.admin_url, *statements))

    def status(self, name: str) -> str | None:
        (rows,) = self.query(f"SHOW GLOBAL STATUS LIKE '{name}'")
        return rows[0][1] if rows else None

    def log_tail(self) -> str:
        return self._log_tail()


def _credentials() -> dict[str, str]:
    from quality.localdb import APP_USER, MAINT_USER

    return {APP_USER: secrets.token_urlsafe(24), MAINT_USER: secrets.token_urlsafe(24)}


def _stop_all(servers: list[Server]) -> None:
    """Stop servers at once (a Galera node's shutdown takes seconds)."""

    def stop(server: Server) -> None:
        server.release()
        server.stop()  # also one whose start failed half-way

    with concurrent.futures.ThreadPoolExecutor(max(1, len(servers))) as pool:
        for future in [pool.submit(stop, server) for server in servers]:
            future.result()


def _create_app_database(server: Server, hosts: tuple[str, ...] = ("127.0.0.1",)) -> AppDatabase:
    app = AppDatabase(name=f"app_{uuid.uuid4().hex[:10]}", password=secrets.token_urlsafe(16))
    statements = [f"CREATE DATABASE `{app.name}`"]
    for host in hosts:
        statements += [
            f"CREATE USER `{app.user}`@'{host}' IDENTIFIED BY '{app.password}'",
            f"GRANT ALL PRIVILEGES ON `{app.name}`.* TO `{app.user}`@'{host}'",
        ]
    server.query(*statements)
    return app


def _drop_app_database(server: Server, app: AppDatabase) -> None:
    server.query(f"DROP DATABASE IF EXISTS `{app.name}`", f"DROP USER IF EXISTS `{app.user}`@'127.0.0.1'")


# -- Galera ----------------------------------------------------------------------


@dataclass(frozen=True)
class NodePorts:
    sql: int
    gcomm: int  # group communication
    ist: int  # incremental state transfer
    sst: int  # full state transfer (the joiner's rsync daemon)


class GaleraNode(Server):
    def __init__(self, base: Path, index: int, ports: NodePorts, everyone: list[NodePorts],
                 credentials: dict[str, str], environment: dict[str, str]) -> None:
        self.name = f"node{index + 1}"
        self.ports = ports
        # Node 1 initialises its data; the others get theirs, accounts included,
        # by state transfer from a node already in the cluster.
        self.joiner = index > 0
        peers = ",".join(f"127.0.0.1:{p.gcomm}" for p in everyone)
        provider_options = ";".join([
            f"gmcast.listen_addr=tcp://127.0.0.1:{ports.gcomm}",
            f"ist.recv_addr=127.0.0.1:{ports.ist}",
            "gcache.size=32M",
        ])
        super().__init__(base / self.name, port=ports.sql, credentials=credentials, environment=environment,
                         options=(
            "--wsrep-on=ON",
            f"--wsrep-provider={GALERA_PROVIDER}",
            "--wsrep-cluster-name=quality-test",
            f"--wsrep-cluster-address=gcomm://{peers}",
            f"--wsrep-node-name={self.name}",
            f"--wsrep-node-address=127.0.0.1:{ports.gcomm}",
            f"--wsrep-node-incoming-address=127.0.0.1:{ports.sql}",
            f"--wsrep-provider-options={provider_options}",
            "--wsrep-sst-method=rsync",
            f"--wsrep-sst-receive-address=127.0.0.1:{ports.sst}",
            "--binlog-format=ROW",
            "--innodb-autoinc-lock-mode=2",
            "--default-storage-engine=InnoDB",
        ))

    def _initialise(self) -> None:
        if not self.joiner:
            super()._initialise()
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.init_file.write_text("")  # its accounts come with its data

    def start(self, *, bootstrap: bool = False) -> None:
        """Start and wait until the node is synced with the cluster; `bootstrap`
        starts a new cluster with this node alone."""
        plain = self.server_options
        if bootstrap:
            self.server_options = (*plain, "--wsrep-new-cluster")
        try:
            self.ensure_running(timeout=NODE_START_SECONDS)
        finally:
            self.server_options = plain
        self.wait_synced()

    def wait_synced(self, timeout: float = SYNC_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while self.state() != "Synced":
            if time.monotonic() > deadline:
                raise LocalDatabaseError(f"{self.name} not synced after {timeout:g}s: {self.log_tail()}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut would stop it; `start()` brings it back."""
        pid = self._pid()
        assert pid is not None, f"{self.name} is not running"
        os.kill(pid, signal.SIGKILL)
        if self._process is not None:
            self._process.wait(30)
            self._process = None
        deadline = time.monotonic() + 30
        while self.is_running():
            if time.monotonic() > deadline:
                raise LocalDatabaseError(f"{self.name} still answers after SIGKILL")
            time.sleep(0.1)

    @contextlib.contextmanager
    def isolated(self) -> Iterator[None]:
        """The node cut off from its peers (it loses quorum, they keep it) while
        inside; after, it rejoins and is synced again."""
        self.query("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=1'")
        try:
            deadline = time.monotonic() + SYNC_SECONDS
            while self.bare("SHOW GLOBAL STATUS LIKE 'wsrep_cluster_status'")[0][1] == "Primary":
                if time.monotonic() > deadline:
                    raise LocalDatabaseError(f"{self.name} still in the primary component when isolated")
                time.sleep(0.2)
            yield
        finally:
            self.bare("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=0'")
            self.wait_synced()

    @contextlib.asynccontextmanager
    async def applying_paused(self) -> AsyncIterator[None]:
        """Within the block the node applies nothing the others commit, as a
        node a moment behind: a backup's BLOCK_DDL stage pauses its replication
        and, unlike a global read lock, still lets its locking reads run."""
        conn = await asyncmy.connect(**self.admin_url.connect_kwargs(), autocommit=True)
        try:
            async with conn.cursor() as cur:
                await cur.execute("BACKUP STAGE START")
                await cur.execute("BACKUP STAGE BLOCK_DDL")
                try:
                    yield
                finally:
                    await cur.execute("BACKUP STAGE END")
        finally:
            conn.close()

    def bare(self, statement: str) -> list[tuple[Any, ...]]:
        """One statement as the maintenance account on a plain connection: a
        node without quorum answers SET and SHOW only, and the app's pool,
        which sets its sessions up with a SELECT, cannot connect to it."""
        async def run() -> list[tuple[Any, ...]]:
            conn = await asyncmy.connect(**self.admin_url.connect_kwargs())
            try:
                async with conn.cursor() as cur:
                    await cur.execute(statement)
                    return list(await cur.fetchall())
            finally:
                conn.close()

        return run_async(run())

    def state(self) -> str:
        """The node's state in the cluster, or why it has none."""
        try:
            return self.status("wsrep_local_state_comment") or "no wsrep state"
        except (DatabaseError, MySQLError) as exc:
            return str(exc)  # a node not ready yet answers every statement with 1047


class HAProxy:
    """HAProxy in TCP mode: one writer node, the others backups used only while it is down."""

    def __init__(self, directory: Path, nodes: list[GaleraNode]) -> None:
        self.directory = directory
        self.port = free_ports(1)[0]
        self.config = directory / "haproxy.cfg"
        self.stats_socket = directory / "haproxy.sock"
        self.log = directory / "haproxy.log"
        writer, *backups = nodes
        # on-marked-up shutdown-backup-sessions: when the writer is back, the
        # sessions still open on a backup are closed, so that pooled connections
        # come back to it too instead of making a second writer.
        lines = [
            "global",
            "    maxconn 2000",
            f"    stats socket {self.stats_socket} mode 600 level admin",
            "defaults",
            "    mode tcp",
            "    timeout connect 2s",
            "    timeout client 1h",
            "    timeout server 1h",
            "    timeout check 2s",
            "listen galera",
            f"    bind 127.0.0.1:{self.port}",
            f"    option mysql-check user {HAPROXY_CHECK_USER} post-41",
            "    default-server inter 1s fall 2 rise 2",
            f"    server {writer.name} 127.0.0.1:{writer.port} check"
            " on-marked-down shutdown-sessions on-marked-up shutdown-backup-sessions",
            *(f"    server {node.name} 127.0.0.1:{node.port} check backup" for node in backups),
        ]
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([HAPROXY, "-f", str(self.config), "-db"],
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not _greets(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise LocalDatabaseError(f"haproxy did not serve: {self.log.read_text()[-500:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _sst_script() -> str | None:
    return shutil.which("wsrep_sst_rsync", path=f"{SST_SCRIPTS}:{os.environ.get('PATH', '')}")


def _greets(port: int) -> bool:
    """Whether a MySQL server's greeting arrives through this port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            return len(sock.recv(4)) == 4
    except OSError:
        return False


class Galera:
    """Three nodes and HAProxy; `app_database()` for each test."""

    def __init__(self, base: Path) -> None:
        self.base = base
        ports = free_ports(12)
        everyone = [NodePorts(*ports[i:i + 4]) for i in range(0, 12, 4)]
        credentials = _credentials()
        environment = {**os.environ, "PATH": f"{self._sst_path()}:{os.environ.get('PATH', '')}"}
        self.nodes = [GaleraNode(base, i, p, everyone, credentials, environment)
                      for i, p in enumerate(everyone)]
        self.haproxy = HAProxy(base, self.nodes)
        self.started_in = 0.0

    def _sst_path(self) -> str:
        """The directories a node needs on PATH for its state transfers."""
        directories = [str(SST_SCRIPTS)] if (SST_SCRIPTS / "wsrep_sst_rsync").exists() else []
        script = _sst_script()
        if os.geteuid() != 0 or script is None:
            return ":".join(directories)
        # Run by root, the joiner's rsync daemon drops to `nobody` for its
        # modules, which then cannot write the root-owned data directory (the
        # first transfer fails with rsync code 23): this `rsync` keeps it root.
        # mariadbd puts its own bin directory (/usr//bin) first on PATH, so the
        # state transfer script is wrapped too, to put this one first again.
        wrappers = self.base / "bin"
        wrappers.mkdir(parents=True, exist_ok=True)
        rsync = shutil.which("rsync") or "/usr/bin/rsync"
        for name, text in [
            ("rsync", 'case " $* " in *" --daemon "*)\n'
                      '    set -- --dparam=uid=root --dparam=gid=root "$@";;\nesac\n'
                      f'exec {rsync} "$@"\n'),
            ("wsrep_sst_rsync", f'PATH="{wrappers}:$PATH" exec {script} "$@"\n'),
        ]:
            (wrappers / name).write_text("#!/bin/sh\n" + text)
            (wrappers / name).chmod(0o755)
        return ":".join([str(wrappers), *directories])

    def start(self) -> None:
        missing = [what for what, there in [
            ("galera-4", GALERA_PROVIDER.exists()), ("rsync", shutil.which("rsync")),
            ("haproxy", Path(HAPROXY).exists()),
            ("wsrep_sst_rsync", _sst_script()),
        ] if not there]
        if missing:
            raise LocalDatabaseError(f"the Galera test cluster needs {', '.join(missing)}: run {PACKAGES}")
        started = time.monotonic()
        first, *joiners = self.nodes
        try:
            first.start(bootstrap=True)
            first.query(f"CREATE USER IF NOT EXISTS '{HAPROXY_CHECK_USER}'@'127.0.0.1'")
            for node in joiners:
                node.start()
            self.haproxy.start()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - started

    def stop(self) -> None:
        self.haproxy.stop()
        _stop_all(list(self.nodes))

    @property
    def writer(self) -> GaleraNode:
        return self.nodes[0]

    def set_trust_function_creators(self, on: bool) -> None:
        """`log_bin_trust_function_creators` is a node's own setting: set on each."""
        for node in self.nodes:
            node.query(f"SET GLOBAL log_bin_trust_function_creators = {int(on)}")

    @contextlib.contextmanager
    def app_database(self) -> Iterator[AppDatabase]:
        """A fresh database and its user, reachable through every node and
        HAProxy, with the trust setting off as a DBA leaves it; dropped after."""
        for node in self.nodes:  # an earlier test may have broken the cluster: say so here
            node.wait_synced(timeout=10.0)
        self.set_trust_function_creators(False)
        app = _create_app_database(self.writer)
        for node in self.nodes:  # what the writer did reaches the others a moment later
            node.query("SET SESSION wsrep_sync_wait = 1",
                       f"SELECT 1 FROM mysql.global_priv WHERE User = '{app.user}'")
        try:
            yield app
        finally:
            self.set_trust_function_creators(False)
            _drop_app_database(self.writer, app)


async def open_connections(db: Any, count: int) -> None:
    """`count` connections in the pool, so that transactions started together run together."""
    opened = asyncio.Event()
    entered = 0

    async def hold() -> None:
        nonlocal entered
        async with db.transaction() as cur:
            await cur.execute("SELECT 1")
            entered += 1
            if entered == count:
                opened.set()
            await opened.wait()

    await asyncio.gather(*(hold() for _ in range(count)))



# -- primary and replica ------------------------------------------------------------


class ReplicaPair:
    """A primary writing a binary log and a read-only replica following it by GTID."""

    def __init__(self, base: Path) -> None:
        primary_port, replica_port = free_ports(2)
        credentials = _credentials()
        self.primary = Server(base / "primary", port=primary_port, credentials=credentials, options=(
            "--server-id=1", "--log-bin=primary-bin", "--binlog-format=ROW", "--gtid-strict-mode=ON"))
        self.replica = Server(base / "replica", port=replica_port, credentials=credentials, options=(
            "--server-id=2", "--relay-log=replica-relay", "--read-only=ON", "--gtid-strict-mode=ON"))
        self.started_in = 0.0

    def start(self) -> None:
        started = time.monotonic()
        password = secrets.token_urlsafe(16)
        try:
            self.primary.ensure_running()
            self.replica.ensure_running()
            self.primary.query(
                f"CREATE USER 'replication'@'127.0.0.1' IDENTIFIED BY '{password}'",
                "GRANT REPLICATION SLAVE ON *.* TO 'replication'@'127.0.0.1'",
            )
            self.replica.query(
                f"CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {self.primary.port},"
                f" MASTER_USER = 'replication', MASTER_PASSWORD = '{password}',"
                " MASTER_USE_GTID = slave_pos",
                "START SLAVE",
            )
            self.wait_caught_up()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - started

    def stop(self) -> None:
        _stop_all([self.replica, self.primary])

    def wait_caught_up(self, timeout: float = 30.0) -> None:
        """Until the replica has applied everything the primary has written."""
        ((position,),) = self.primary.query("SELECT @@gtid_binlog_pos")[0]
        ((result,),) = self.replica.query(f"SELECT MASTER_GTID_WAIT('{position}', {timeout})")[0]
        if result != 0:
            raise LocalDatabaseError(f"the replica did not reach {position} within {timeout:g}s")

    @contextlib.contextmanager
    def app_database(self) -> Iterator[AppDatabase]:
        """A fresh database and its user, made on the primary and replicated."""
        app = _create_app_database(self.primary)
        self.wait_caught_up()
        try:
            yield app
        finally:
            _drop_app_database(self.primary, app)


# -- fixtures -----------------------------------------------------------------------

_started: dict[str, float] = {}


@pytest.fixture(scope="session")
def galera() -> Iterator[Galera]:
    base = Path(tempfile.mkdtemp(prefix="qgc-", dir="/tmp"))  # short: unix socket paths
    cluster = Galera(base)
    try:
        cluster.start()
        _started["Galera cluster (3 nodes + HAProxy)"] = cluster.started_in
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def replica_pair() -> Iterator[ReplicaPair]:
    base = Path(tempfile.mkdtemp(prefix="qrp-", dir="/tmp"))
    pair = ReplicaPair(base)
    try:
        pair.start()
        _started["primary + replica"] = pair.started_in
        yield pair
    finally:
        pair.stop()
        shutil.rmtree(base, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for what, seconds in _started.items():
        terminalreporter.write_line(f"{what} started in {seconds:.1f}s")
