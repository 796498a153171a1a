"""The app on servers configured as a plant's DBA would, not as the project prefers.

Two kinds of server: the suite's usual one (stock defaults, utf8mb4_general_ci),
on which databases are created with whatever default collation a DBA's
`CREATE DATABASE` gives; and, for this module, one MariaDB with everything a
hardened shared server may impose at once: a strict, ANSI-flavoured sql_mode,
latin1 as the server's character set, `wait_timeout=20` and TLS-only
connections (over loopback TCP: the server counts a unix socket as secure) with
a certificate from a CA made here. On each, the whole flow runs: migrate,
create users, sign in, scan at both stations (a re-scan and a replayed
submission included), and check what was saved.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from asyncmy.errors import OperationalError
from starlette.testclient import TestClient

from quality.accounts import create_user
from quality.app import create_app
from quality.db import COLLATION, SQL_MODE, DatabaseUnavailable, TLSRequired
from quality.localdb import LocalMariaDB
from quality.migrate import MIGRATIONS_DIR, available, migrate
from quality.settings import DatabaseURL, Settings
from tests.conftest import (
    PASSWORD,
    LiveServer,
    csrf_token_in,
    database_for,
    execute,
    free_port,
    login,
    make_certificates,
    migrated,
    new_database,
    run_async,
)
from tests.test_cli import quality
from tests.test_stations import post_scan

DBA_SQL_MODE = (
    "ANSI_QUOTES,ONLY_FULL_GROUP_BY,STRICT_ALL_TABLES,PIPES_AS_CONCAT,NO_ZERO_DATE,"
    "NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
)
PLANT_USER = "plant"
PLANT_DATABASE = "plant_quality"
SECRET = "server-settings-secret-0123456789"
ORDER = "CP00012345"
PIECE = ORDER + "-0001"


# -- the flow every configuration must serve ---------------------------------------


def add_user(url: DatabaseURL, name: str, role: str) -> str:
    async def work() -> None:
        db = database_for(url, maxsize=1)
        try:
            await create_user(db, name, PASSWORD, role)
        finally:
            await db.close()

    run_async(work())
    return name


def scan_both_stations(http: Any, url: DatabaseURL, piece: str = PIECE) -> None:
    """Scan at both stations (first scan, re-scan, replay) as a signed-in operator;
    check the answers and the rows saved."""
    page = http.get("/scan")
    assert page.status_code == 200, page.text
    csrf = csrf_token_in(page.text)
    order = piece[:10]
    steps = [
        ("/scan", "000", f"Order {order}: 1 approved · 0 rejected"),
        ("/scan", "104", f"Order {order}: 0 approved · 1 rejected"),  # a re-scan flips it
        ("/fgscan", "000", f"Order {order}: 1 approved · 0 rejected"),
    ]
    for path, defect, counts in steps:
        submission = secrets.token_hex(16)
        for _ in range(2):  # the replay saves nothing new and answers the same
            response = post_scan(http, csrf, path, submission, piece_code=piece, defect_code=defect)
            assert response.status_code == 200, response.text
            assert counts in response.text
    assert http.get("/fgscan").status_code == 200
    (scans, counts) = run_async(execute(
        url,
        f"SELECT station, defect_code, approved, is_rescan FROM scans"
        f" WHERE piece_code = '{piece}' ORDER BY id",
        f"SELECT station, approved, rejected FROM order_counts WHERE order_code = '{order}'"
        " ORDER BY station",
    ))
    assert scans == [("quality", "000", 1, 0), ("quality", "104", 0, 1), ("fg", "000", 1, 0)]
    assert counts == [("quality", 0, 1), ("fg", 1, 0)]


def scan_through_the_app(url: DatabaseURL) -> None:
    settings = Settings(database_url=url, secret_key=SECRET, pool_min=1, pool_max=5,
                        pool_timeout=2.0)
    operator = add_user(url, f"op{secrets.token_hex(3)}", "operator")
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as client:
        assert login(client, operator, "not-the-password").status_code == 401  # throttle SQL
        assert login(client, operator).status_code == 303
        scan_both_stations(client, url)


def database_default(url: DatabaseURL) -> str:
    (rows,) = run_async(execute(url, "SELECT @@collation_database"))
    return rows[0][0]


# -- a stock server, databases made by a DBA ---------------------------------------------


@pytest.mark.parametrize(
    ("create_options", "default"),
    [
        ("", "utf8mb4_general_ci"),  # the server's default
        ("CHARACTER SET latin1", "latin1_swedish_ci"),
        ("CHARACTER SET utf8mb4 COLLATE utf8mb4_uca1400_ai_ci", "utf8mb4_uca1400_ai_ci"),
    ],
    ids=["server-default-general-ci", "latin1", "uca1400"],
)
def test_scans_work_on_a_database_made_with_other_defaults(
    mariadb: LocalMariaDB, create_options: str, default: str, caplog: pytest.LogCaptureFixture
) -> None:
    with new_database(mariadb, create_options) as url:
        assert database_default(url) == default
        with caplog.at_level(logging.INFO, "quality.migrate"):
            migrated(url)
        assert f"set the database's default collation to {COLLATION} (it was {default})" \
            in caplog.text
        assert database_default(url) == COLLATION
        scan_through_the_app(url)


def test_a_user_who_may_not_alter_the_database_gets_a_working_schema(
    mariadb: LocalMariaDB, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The declarations of migration 0003 alone carry the schema: a database at
    0002 on a utf8mb4_general_ci default (a plant's state before the fix) fails
    every scan, and works once migrated, without its default being changed."""
    with new_database(mariadb) as maintenance:
        user = f"dba_{secrets.token_hex(3)}"
        password = secrets.token_urlsafe(12)
        run_async(execute(
            maintenance,
            f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '{password}'",
            "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, REFERENCES,"
            f" CREATE ROUTINE, ALTER ROUTINE, EXECUTE ON `{maintenance.database}`.*"
            f" TO '{user}'@'localhost'",
        ))
        url = dataclasses.replace(maintenance, user=user, password=password)
        try:
            for name in ("0001_initial.sql", "0002_procedures.sql"):
                shutil.copy(MIGRATIONS_DIR / name, tmp_path / name)
            run_async(apply_migrations(url, tmp_path))
            # What later migrations need on their tables (columns and
            # triggers), granted per table: the user still may not alter the
            # database itself.
            run_async(execute(maintenance, *(
                f"GRANT ALTER, TRIGGER ON `{maintenance.database}`.`{table}` TO '{user}'@'localhost'"
                for table in ("users", "defect_codes", "scans", "audit_log",  # 0004
                              "sessions", "roles", "role_permissions"))))  # 0006
            with pytest.raises(OperationalError, match="Illegal mix of collations"):
                run_async(execute(
                    url, "CALL record_scan('quality', UNHEX(REPEAT('AB', 16)), 'OP01',"
                    f" '{PIECE}', '{ORDER}', 'OC01', 'OC02', '000', 1, UTC_TIMESTAMP(6))",
                ))
            with caplog.at_level(logging.INFO, "quality.migrate"):
                # Up to 0010; then 0011 alters a table 0006 made, granted as a DBA
                # would once it exists.
                for migration in available()[2:10]:
                    (tmp_path / f"{migration.version:04d}_{migration.name}.sql").write_text(migration.sql)
                run_async(apply_migrations(url, tmp_path))
                run_async(execute(maintenance, f"GRANT ALTER ON `{maintenance.database}`.`login_attempts`"
                                               f" TO '{user}'@'localhost'"))
                # Up to 0016; then 0017 alters the table 0015 made, granted so too.
                for migration in (m for m in available() if 10 < m.version < 17):
                    (tmp_path / f"{migration.version:04d}_{migration.name}.sql").write_text(migration.sql)
                run_async(apply_migrations(url, tmp_path))
                # 0019 alters the table 0006 made: granted so too.
                run_async(execute(maintenance, *(
                    f"GRANT ALTER ON `{maintenance.database}`.`{table}` TO '{user}'@'localhost'"
                    for table in ("alert_rules", "auth_version"))))
                migrated(url)
            assert "this user may not change it; left as it is" in caplog.text
            assert database_default(url) == "utf8mb4_general_ci"
            assert routines_settings(url) == ({(SQL_MODE, COLLATION)}, {COLLATION})
            scan_through_the_app(url)
        finally:
            run_async(execute(maintenance, f"DROP USER '{user}'@'localhost'"))


def routines_settings(url: DatabaseURL) -> tuple[set[tuple[str, str]], set[str]]:
    """The sql_mode and connection collation every stored routine was created
    under, and the collations of their text parameters: a rule for every
    routine a later migration adds, too."""
    (routines, parameters) = run_async(execute(
        url,
        "SELECT sql_mode, collation_connection FROM information_schema.routines"
        " WHERE routine_schema = DATABASE()",
        "SELECT collation_name FROM information_schema.parameters"
        " WHERE specific_schema = DATABASE() AND collation_name IS NOT NULL",
    ))
    return set(routines), {collation for (collation,) in parameters}


async def apply_migrations(url: DatabaseURL, directory: Path) -> None:
    db = database_for(url, maxsize=1)
    try:
        await migrate(db, directory)
    finally:
        await db.close()


def test_the_apps_sql_is_valid_under_a_dba_sql_mode(
    mariadb: LocalMariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every session sets the app's own sql_mode; were it the DBA's instead, the
    migrations, the procedures they create and the app's queries still work."""
    monkeypatch.setattr("quality.db.SQL_MODE", DBA_SQL_MODE)
    with new_database(mariadb) as url:
        migrated(url)
        (modes,) = run_async(execute(
            url, "SELECT DISTINCT sql_mode FROM information_schema.routines"
            " WHERE routine_schema = DATABASE()",
        ))
        assert [set(mode.split(",")) for (mode,) in modes] == [set(DBA_SQL_MODE.split(","))]
        scan_through_the_app(url)


# -- a hardened shared server -------------------------------------------------------


@dataclasses.dataclass
class PlantServer:
    server: LocalMariaDB
    ca: Path
    password: str

    def url(self, host: str = "127.0.0.1", **options: str) -> DatabaseURL:
        assert self.server.tcp_port
        return DatabaseURL(PLANT_USER, self.password, PLANT_DATABASE, host, self.server.tcp_port,
                           **options)

    def verified_url(self) -> DatabaseURL:
        return self.url(ssl="verify-full", ssl_ca=str(self.ca))

    def server_timeouts(self) -> list[str]:
        """The error log's lines for connections the server cut at wait_timeout."""
        log = self.server.errorlog.read_text(errors="replace")
        return [line for line in log.splitlines()
                if f"user: '{PLANT_USER}'" in line and "Got timeout reading" in line]


@pytest.fixture(scope="module")
def plant_server() -> Iterator[PlantServer]:
    base = Path(tempfile.mkdtemp(prefix="qps-", dir="/tmp"))  # unix socket paths are short
    certs = make_certificates(base / "tls")
    server = LocalMariaDB(
        base, buffer_pool="32M", tcp_port=free_port(),
        server_options=(
            f"--sql-mode={DBA_SQL_MODE}",
            "--character-set-server=latin1", "--collation-server=latin1_swedish_ci",
            "--wait-timeout=20",
            "--require-secure-transport=ON",
            f"--ssl-ca={certs['ca']}", f"--ssl-cert={certs['server']}", f"--ssl-key={certs['key']}",
        ),
    )
    server.ensure_running()
    password = secrets.token_urlsafe(12)
    try:
        # What the DBA does: a database with the server's defaults, a user for the app host.
        run_async(execute(
            server.url(maintenance=True, database="mysql"),
            f"CREATE DATABASE {PLANT_DATABASE}",
            f"CREATE USER '{PLANT_USER}'@'127.0.0.1' IDENTIFIED BY '{password}'",
            f"GRANT ALL PRIVILEGES ON {PLANT_DATABASE}.* TO '{PLANT_USER}'@'127.0.0.1'",
        ))
        yield PlantServer(server, certs["ca"], password)
    finally:
        server.release()
        shutil.rmtree(base, ignore_errors=True)


def pool_figure(http: httpx2.Client, name: str) -> float:
    text = http.get("/metrics").text
    return float(re.search(rf"^quality_db_pool_{name} (\S+)$", text, re.M)[1])


def test_everything_works_on_a_hardened_tls_only_server(plant_server: PlantServer) -> None:
    url = plant_server.verified_url()
    migrated_now = quality(url, "migrate")
    assert migrated_now.returncode == 0, migrated_now.stderr
    assert "applied 0001_initial, 0002_procedures, 0003_server_independent_procedures" \
        in migrated_now.stdout
    assert f"set the database's default collation to {COLLATION} (it was latin1_swedish_ci)" \
        in migrated_now.stderr
    # Not the server's: routines keep the sql_mode they were created under.
    assert routines_settings(url) == ({(SQL_MODE, COLLATION)}, {COLLATION})
    for name, role in (("op1", "operator"), ("boss", "supervisor")):
        added = quality(url, "user", "add", name, "--role", role, "--password-stdin",
                        stdin=PASSWORD + "\n")
        assert added.returncode == 0, added.stderr

    server = LiveServer(Settings(database_url=url, secret_key=SECRET, pool_max=5, pool_timeout=5.0))
    server.start()
    try:
        with httpx2.Client(base_url=server.url, timeout=30) as operator, \
                httpx2.Client(base_url=server.url, timeout=30) as supervisor:
            health = operator.get("/healthz").json()
            assert health["status"] == "ok" and health["encrypted"] is True
            assert login(operator, "op1").status_code == 303
            scan_both_stations(operator, url)
            assert login(supervisor, "boss").status_code == 303
            watch_a_scan_from_elsewhere_arrive(supervisor, url)

            # Idle past the server's wait_timeout (the app, and meanwhile a pool
            # in this process whose connections all went idle at one moment).
            discarded = pool_figure(operator, "discarded_total")
            run_async(idle_past_wait_timeout(url))
            assert pool_figure(operator, "discarded_total") > discarded
            scan_both_stations(operator, url, piece="CP00067890-0001")  # a new order
        output = server.output()
    finally:
        server.stop()
    assert "database connections are encrypted (TLS" in output
    assert re.search(r" POST /fgscan 200 ", output)  # the access log is there...
    assert not re.search(r" (GET|POST) \S+ 5\d\d ", output), output  # ...and has no 5xx
    assert "Traceback" not in output, output
    assert "found dead" not in output, output  # no request met a connection the server had cut
    assert plant_server.server_timeouts() == []


async def idle_past_wait_timeout(url: DatabaseURL) -> None:
    """Connections left idle are retired and replaced by the pool itself before
    the server's wait_timeout (20 s) would cut them, so the next request finds a
    live connection and opens none (no error, no connect on the request path)."""
    db = database_for(url, minsize=3, maxsize=3)
    await db.open()
    try:
        async def use_one() -> None:
            async with db.transaction() as cur:
                await cur.execute("SELECT SLEEP(0.2)")

        # All three in use at once, so each goes idle now, whatever the
        # housekeeping's phase.
        await asyncio.gather(*(use_one() for _ in range(3)))
        before = db.stats()
        await asyncio.sleep(25)
        idle = db.stats()
        async with db.transaction() as cur:
            await cur.execute("SELECT 1")
        after = db.stats()
    finally:
        await db.close()
    assert idle.discarded - before.discarded >= 3  # retired while idle...
    assert idle.idle == 3  # ...and replaced
    assert after.created == idle.created  # the request after the idle minute opened nothing


def watch_a_scan_from_elsewhere_arrive(http: httpx2.Client, url: DatabaseURL) -> None:
    """The live table shows a scan saved by another process (found by the
    watcher's poll, which runs the app's own queries on this server)."""
    piece = ORDER + "-0009"
    with http.stream("GET", "/scan/stream") as stream:
        lines = stream.iter_lines()
        assert any(line.startswith("event: table") for line in lines)  # the current table
        run_async(execute(
            url, "CALL record_scan('quality', UNHEX(REPEAT('CD', 16)), 'OP09',"
            f" '{piece}', '{ORDER}', 'OC01', 'OC02', '101', FALSE, 1, UTC_TIMESTAMP(6),"
            " UTC_DATE(), UTC_DATE() + INTERVAL 1 DAY)",  # a day-long shift holding the scan
        ))
        deadline = time.monotonic() + 10  # the watcher polls every 0.5 s
        for line in lines:  # (a keepalive arrives at least every 15 s)
            if line.startswith("data:") and piece in line:
                break
            assert time.monotonic() < deadline, "the scan never reached the live table"
        else:
            pytest.fail("the live table's stream ended before the scan arrived")


def test_a_plain_url_to_a_tls_only_server_stops_start_up_with_one_line(
    plant_server: PlantServer,
) -> None:
    result = quality(plant_server.url(), "serve", "--port", str(free_port()))
    assert result.returncode == 2
    assert result.stderr.strip() == f"quality: {TLSRequired()}"
    assert "?ssl=required|verify-ca|verify-full" in result.stderr


async def connects(url: DatabaseURL) -> bool | None:
    """Whether the connection is encrypted (raises when it cannot be made)."""
    db = database_for(url, maxsize=1)
    try:
        async with db.transaction() as cur:
            await cur.execute("SELECT 1")
        return db.encrypted
    finally:
        await db.close()


async def test_tls_modes_check_what_they_promise(plant_server: PlantServer) -> None:
    ca = str(plant_server.ca)
    assert await connects(plant_server.url(ssl="required")) is True  # encrypts, checks nothing
    assert await connects(plant_server.url(ssl="verify-full", ssl_ca=ca)) is True
    # The certificate names 127.0.0.1, not localhost: the chain is good, the name is not.
    assert await connects(plant_server.url("localhost", ssl="verify-ca", ssl_ca=ca)) is True
    with pytest.raises(DatabaseUnavailable, match="Hostname mismatch"):
        await connects(plant_server.url("localhost", ssl="verify-full", ssl_ca=ca))
    # Without the plant's CA the chain is not trusted.
    with pytest.raises(DatabaseUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        await connects(plant_server.url(ssl="verify-ca"))
    with pytest.raises(TLSRequired):
        await connects(plant_server.url())


async def test_a_wrong_password_is_not_mistaken_for_missing_tls(plant_server: PlantServer) -> None:
    wrong = dataclasses.replace(plant_server.url(), password="not-the-password")
    with pytest.raises(DatabaseUnavailable, match="Access denied") as refused:
        await connects(wrong)
    assert not isinstance(refused.value, TLSRequired)


async def test_a_unix_socket_connection_reports_unencrypted(db_url: DatabaseURL) -> None:
    assert await connects(db_url) is False
