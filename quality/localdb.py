"""A private MariaDB server for one installation (or one test run).

`quality serve` without QUALITY_DATABASE_URL starts `mariadbd` with its data
under `<data_dir>/mariadb`, listening only on a unix socket. Several app
processes share it: each holds a shared lock on `users.lock` while it runs and
the last one to leave stops the server.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from quality.settings import DatabaseURL

APP_USER = "quality"
MAINT_USER = "quality_maint"
DATABASE = "quality"
# The programs this module runs, each with the Debian/Ubuntu package that brings
# it (mariadb-install-db calls my_print_defaults, from the client package).
PACKAGES = {
    "mariadbd": "mariadb-server-core",
    "mariadb-install-db": "mariadb-server-core",
    "my_print_defaults": "mariadb-client-core",
}


class LocalDatabaseError(RuntimeError):
    """The private MariaDB server could not be set up or started."""


class LocalMariaDB:
    def __init__(
        self,
        base_dir: Path,
        *,
        buffer_pool: str = "128M",
        server_options: Sequence[str] = (),
        tcp_port: int | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.dir = Path(base_dir).resolve() / "mariadb"
        self.datadir = self.dir / "data"
        self.socket = self.dir / "mysqld.sock"
        self.pidfile = self.dir / "mysqld.pid"
        self.errorlog = self.dir / "error.log"
        # Its own temporary directory: the server's files in a shared /tmp can be
        # removed under it by other servers or cleaners.
        self.tmpdir = self.dir / "tmp"
        self.init_file = self.dir / "init.sql"
        self.credentials_file = self.dir / "credentials.json"
        self.buffer_pool = buffer_pool
        # For tests that need a server configured as a plant's DBA would: options
        # given here come last, so they override the defaults below.
        self.server_options = tuple(server_options)
        self.tcp_port = tcp_port
        # The server process's environment (a Galera node finds its state
        # transfer scripts on PATH); by default this process's own.
        self.environment = environment
        self._users_lock: IO[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.started_here = False

    # -- public --------------------------------------------------------------

    def url(self, *, maintenance: bool = False, database: str = DATABASE) -> DatabaseURL:
        creds = self._credentials()
        user = MAINT_USER if maintenance else APP_USER
        return DatabaseURL(
            user=user, password=creds[user], database=database, unix_socket=str(self.socket)
        )

    def ensure_running(self, timeout: float = 60.0) -> None:
        """Initialise on first use, start unless already running, join as a user."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmpdir.mkdir(exist_ok=True)
        if len(str(self.socket)) > 100:
            raise LocalDatabaseError(f"socket path too long for a unix socket: {self.socket}")
        with self._lock_file("start.lock", fcntl.LOCK_EX):
            if not self.is_running():
                self._initialise()
                self._start(timeout)
                self.started_here = True
        if self._users_lock is None:
            self._users_lock = self._open_lock("users.lock")
            fcntl.flock(self._users_lock, fcntl.LOCK_SH)

    def release(self) -> None:
        """Leave the server; stop it if no other process uses it."""
        if self._process is not None and self._process.poll() is not None:
            self._process = None  # started here, since stopped by another user: reaped
        if self._users_lock is None:
            return
        try:
            fcntl.flock(self._users_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        else:
            self.stop()
        finally:
            self._users_lock.close()
            self._users_lock = None

    def is_running(self) -> bool:
        pid = self._pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return self._socket_answers()

    def stop(self, timeout: float = 60.0) -> None:
        pid = self._pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        if self._process is not None:
            self._process.wait()
            self._process = None

    # -- setting up ------------------------------------------------------------

    def _credentials(self) -> dict[str, str]:
        if not self.credentials_file.exists():
            creds = {APP_USER: secrets.token_urlsafe(24), MAINT_USER: secrets.token_urlsafe(24)}
            self.credentials_file.touch(mode=0o600)
            self.credentials_file.write_text(json.dumps(creds))
        return json.loads(self.credentials_file.read_text())

    def _initialise(self) -> None:
        creds = self._credentials()
        # Runs at every start; every statement is idempotent.
        self.init_file.write_text(
            f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n"
            f"CREATE USER IF NOT EXISTS '{APP_USER}'@'localhost' "
            f"IDENTIFIED BY '{creds[APP_USER]}';\n"
            f"GRANT ALL PRIVILEGES ON `{DATABASE}`.* TO '{APP_USER}'@'localhost';\n"
            f"CREATE USER IF NOT EXISTS '{MAINT_USER}'@'localhost' "
            f"IDENTIFIED BY '{creds[MAINT_USER]}';\n"
            f"GRANT ALL PRIVILEGES ON *.* TO '{MAINT_USER}'@'localhost' WITH GRANT OPTION;\n"
        )
        self.init_file.chmod(0o600)
        if (self.datadir / "mysql").is_dir():
            return
        # All of them before anything runs: a half-initialised datadir is worse than none.
        binaries = {name: _binary(name) for name in PACKAGES}
        self.datadir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                binaries["mariadb-install-db"],
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--user={getpass.getuser()}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                f"--tmpdir={self.tmpdir}",
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            shutil.rmtree(self.datadir, ignore_errors=True)
            raise LocalDatabaseError(
                "mariadb-install-db failed: " + (result.stderr or result.stdout).strip()[-500:]
            )

    def _start(self, timeout: float) -> None:
        binary = _binary("mariadbd")
        self.socket.unlink(missing_ok=True)
        command = [
            binary,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--pid-file={self.pidfile}",
            f"--log-error={self.errorlog}",
            f"--init-file={self.init_file}",
            f"--user={getpass.getuser()}",
            *self._networking(),
            "--skip-name-resolve",
            f"--tmpdir={self.tmpdir}",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            f"--innodb-buffer-pool-size={self.buffer_pool}",
            "--max-connections=300",
            *self.server_options,
        ]
        # A session of its own: Ctrl-C in the terminal reaches the app, which
        # then stops the server in order, instead of killing both at once.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=self.environment,
        )
        self._process = process
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LocalDatabaseError(f"mariadbd exited at start-up: {self._log_tail()}")
            if self._socket_answers():
                return
            time.sleep(0.05)
        process.kill()
        raise LocalDatabaseError(f"mariadbd did not answer within {timeout:g}s: {self._log_tail()}")

    # -- helpers -----------------------------------------------------------------

    def _networking(self) -> list[str]:
        """Unix socket only, unless a loopback TCP port was asked for (TLS can only
        be tested over TCP: the server counts a unix socket as secure)."""
        if self.tcp_port is None:
            return ["--skip-networking"]
        return ["--bind-address=127.0.0.1", f"--port={self.tcp_port}"]

    def _pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _socket_answers(self) -> bool:
        """True once the server sends its greeting on the socket."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.socket))
                return len(sock.recv(4)) == 4
        except OSError:
            return False

    def _log_tail(self) -> str:
        try:
            lines = self.errorlog.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return "(no error log)"
        errors = [line for line in lines if "ERROR" in line] or lines
        return " | ".join(errors[-3:])

    def _open_lock(self, name: str) -> IO[str]:
        return open(self.dir / name, "a")

    def _lock_file(self, name: str, mode: int) -> _Locked:
        return _Locked(self._open_lock(name), mode)


class _Locked:
    def __init__(self, handle: IO[str], mode: int) -> None:
        self.handle = handle
        self.mode = mode

    def __enter__(self) -> None:
        fcntl.flock(self.handle, self.mode)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def _binary(name: str) -> str:
    """The path of one of the PACKAGES programs, or an error naming it and its package."""
    path = shutil.which(name, path=_SEARCH_PATH)
    if path is None:
        raise LocalDatabaseError(
            f"{name} not found: install the package {PACKAGES[name]} "
            f"(Debian/Ubuntu: sudo apt-get install {PACKAGES[name]}) or set QUALITY_DATABASE_URL"
        )
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours still answers kill(0): reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


# mariadbd lives in /usr/sbin, which is not on every user's PATH.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
