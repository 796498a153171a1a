"""The `quality` command: serve, migrate, manage users and the local database."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import logging
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path

from asyncmy.errors import MySQLError

from quality import audit, demo
from quality.accounts import (
    AccountError,
    create_user,
    ensure_admin,
    list_users,
    set_password,
    update_user,
)
from quality.db import Database, DatabaseError, DatabaseUnavailable, describe
from quality.i18n import LANGUAGES
from quality.localdb import LocalDatabaseError, LocalMariaDB
from quality.logs import configure_logging
from quality.metrics import prepare_multiprocess_dir
from quality.migrate import MigrationError, migrate, pending
from quality.settings import Settings, SettingsError, load_settings
from quality.shifts import Shifts

# Exit statuses: 2 is argparse's usage error (and a command that failed);
# a bad setting is EX_CONFIG from sysexits.h, so scripts and supervisors can
# tell "fix the configuration" from "fix the command line"; 1 is a database
# error no command expected.
EXIT_CONFIG = 78

log = logging.getLogger(__name__)


class CommandError(RuntimeError):
    """Ends the command with its message on one line."""


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"quality: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    try:
        configure_logging(settings.log_level, settings.log_format)
        args.run(settings, args)
    except (CommandError, LocalDatabaseError, MigrationError, AccountError, DatabaseUnavailable) as exc:
        print(f"quality: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except (MySQLError, DatabaseError) as exc:
        # Whatever the command: one line, never a traceback.
        print(f"quality: the database answered {describe(exc)}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quality", description=__doc__,
        epilog=f"Exit status: 0 done, 2 bad usage or the command failed, {EXIT_CONFIG} a bad setting, "
               "1 an unexpected database error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('quality')}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the web app")
    serve.add_argument("--host", help="address to listen on (default: QUALITY_HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="port to listen on (default: QUALITY_PORT, else 8000)")
    serve.add_argument("--workers", type=_positive, default=1, help="uvicorn worker processes (default: 1)")
    serve.add_argument("--migrate", action="store_true",
                       help="apply pending migrations first (always done for the local database)")
    serve.set_defaults(run=_serve)

    commands.add_parser("migrate", help="apply pending schema migrations").set_defaults(
        run=_migrate
    )

    user = commands.add_parser("user", help="manage accounts").add_subparsers(
        required=True, metavar="ACTION"
    )
    add = user.add_parser("add", help="create an account")
    add.add_argument("name", help="user name (letters, digits, . _ -)")
    add.add_argument("--role", required=True, help="admin, supervisor, operator or your own")
    add.add_argument("--full-name", default="", help="the name shown in the app")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--language", choices=sorted(LANGUAGES), default="",
                     help="the language the app speaks to them (default: the plant's, QUALITY_LANGUAGE)")
    add.set_defaults(run=_user_add)
    passwd = user.add_parser("passwd", help="set a password (ends that user's sessions)")
    passwd.add_argument("name", help="user name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    passwd.set_defaults(run=_user_passwd)
    user.add_parser("list", help="list accounts with their role and state").set_defaults(
        run=_user_list
    )
    disable = user.add_parser("disable", help="disable an account (ends its sessions)")
    disable.add_argument("name", help="user name")
    disable.set_defaults(run=_user_disable)
    role = user.add_parser("role", help="give an account another role")
    role.add_argument("name", help="user name")
    role.add_argument("role", help="admin, supervisor, operator or your own")
    role.set_defaults(run=_user_role)
    language = user.add_parser("language", help="set the language the app speaks to an account")
    language.add_argument("name", help="user name")
    language.add_argument("language", choices=[*sorted(LANGUAGES), "default"],
                          help="a language code, or default for the plant's (QUALITY_LANGUAGE)")
    language.set_defaults(run=_user_language)

    _add_demo_data(commands)

    localdb = commands.add_parser("localdb", help="the private local MariaDB").add_subparsers(
        required=True, metavar="ACTION"
    )
    localdb.add_parser("status", help="is it running, and where").set_defaults(run=_localdb_status)
    localdb.add_parser("stop", help="stop it (apps using it lose their database)").set_defaults(
        run=_localdb_stop
    )
    return parser


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"must be 1 to 65535, not {number}")
    return number


# -- database set-up shared by the commands ------------------------------------


def _with_database(settings: Settings) -> tuple[Settings, LocalMariaDB | None]:
    """Fill in the database URL and secret key, starting the local server if needed."""
    if settings.database_url is not None:
        return settings, None
    local = LocalMariaDB(settings.data_dir)
    local.ensure_running()
    secret = settings.secret_key or _local_secret(settings.data_dir)
    return dataclasses.replace(settings, database_url=local.url(), secret_key=secret), local


def _local_secret(data_dir: Path) -> str:
    path = data_dir / "secret_key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    assert settings.database_url is not None
    db = Database(
        settings.database_url.connect_kwargs(), minsize=0, maxsize=2,
        timeout=settings.pool_timeout, query_timeout=settings.query_timeout,
    )
    try:
        yield db
    finally:
        await db.close()


def _run_with_database(settings: Settings, work: Callable[[Database], Awaitable[None]]) -> None:
    settings, local = _with_database(settings)

    async def run() -> None:
        async with _database(settings) as db:
            await work(db)

    try:
        asyncio.run(run())
    finally:
        if local:
            local.release()


# -- commands ----------------------------------------------------------------------


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    settings, local = _with_database(settings)
    # uvicorn re-raises the signal that stopped it; as an exception it lets the
    # `finally` below stop the local database in order.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        asyncio.run(_prepare(settings, migrate_first=args.migrate or local is not None))
        assert settings.database_url and settings.secret_key
        # Worker processes build their settings from the environment.
        os.environ["QUALITY_DATABASE_URL"] = settings.database_url.as_url()
        os.environ["QUALITY_SECRET_KEY"] = settings.secret_key
        prepare_multiprocess_dir()
        uvicorn.run(
            "quality.app:create_app",
            factory=True,
            host=args.host or settings.host,
            port=args.port or settings.port,
            workers=args.workers,
            log_config=None,
            # X-Forwarded-For/-Proto only from the proxies named in
            # QUALITY_FORWARDED_ALLOW_IPS; otherwise the peer is the client.
            proxy_headers=bool(settings.forwarded_allow_ips),
            forwarded_allow_ips=list(settings.forwarded_allow_ips),
            # Scans answer in milliseconds; what is still open after this is a
            # live-table stream, which the browser reopens by itself.
            timeout_graceful_shutdown=3,
        )
    finally:
        if local:
            local.release()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


async def _prepare(settings: Settings, *, migrate_first: bool) -> None:
    async with _database(settings) as db:
        if migrate_first:
            for name in await migrate(db):
                log.info("applied migration %s", name)
        else:
            await _require_current_schema(db)
        generated = await ensure_admin(db, settings.admin_password)
        if generated:
            _show_admin_password(generated)


def _show_admin_password(password: str) -> None:
    """Show a generated password to the person at the terminal, never to the logs."""
    if sys.stderr.isatty():
        print(f"quality: created user 'admin' with password: {password}\n"
              "quality: this password is shown once; change it after signing in", file=sys.stderr)
        log.info("created user 'admin'; its generated password was shown on the terminal")
    else:
        log.warning("created user 'admin' with a generated password that no terminal could show;"
                    " set one with 'quality user passwd admin'")


async def _require_current_schema(db: Database) -> None:
    missing = await pending(db)
    if missing:
        raise CommandError(
            f"the database lacks {len(missing)} migration(s); run 'quality migrate' first"
        )


def _migrate(settings: Settings, args: argparse.Namespace) -> None:
    async def work(db: Database) -> None:
        applied = await migrate(db)
        print("quality: " + (f"applied {', '.join(applied)}" if applied else "schema is current"))

    _run_with_database(settings, work)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise CommandError("the passwords differ")
    return first


def _user_add(settings: Settings, args: argparse.Namespace) -> None:
    password = _read_password(args.password_stdin)

    async def work(db: Database) -> None:
        await create_user(db, args.name, password, args.role, args.full_name, actor=audit.terminal(),
                          language=args.language)
        print(f"quality: created user {args.name.strip().lower()!r} with role {args.role!r}")

    _run_with_database(settings, work)


def _user_passwd(settings: Settings, args: argparse.Namespace) -> None:
    password = _read_password(args.password_stdin)

    async def work(db: Database) -> None:
        await set_password(db, args.name.strip().lower(), password, actor=audit.terminal())
        print(f"quality: password changed for {args.name!r}; their sessions have ended")

    _run_with_database(settings, work)


def _user_list(settings: Settings, args: argparse.Namespace) -> None:
    async def work(db: Database) -> None:
        async with db.transaction() as cur:
            accounts = await list_users(cur)
        print(f"{'USER':<24} {'ROLE':<16} {'STATE':<9} FULL NAME")
        for account in accounts:
            state = "active" if account.active else "disabled"
            print(f"{account.username:<24} {account.role:<16} {state:<9} {account.full_name}")

    _run_with_database(settings, work)


def _user_disable(settings: Settings, args: argparse.Namespace) -> None:
    async def work(db: Database) -> None:
        await update_user(db, args.name.strip().lower(), actor=audit.terminal(), active=False)
        print(f"quality: disabled {args.name!r}; their sessions have ended")

    _run_with_database(settings, work)


def _user_role(settings: Settings, args: argparse.Namespace) -> None:
    async def work(db: Database) -> None:
        await update_user(db, args.name.strip().lower(), actor=audit.terminal(), role=args.role)
        print(f"quality: {args.name!r} now has the role {args.role!r}")

    _run_with_database(settings, work)


def _user_language(settings: Settings, args: argparse.Namespace) -> None:
    language = "" if args.language == "default" else args.language

    async def work(db: Database) -> None:
        await update_user(db, args.name.strip().lower(), actor=audit.terminal(), language=language)
        print(f"quality: {args.name!r} now reads the app in {args.language!r}")

    _run_with_database(settings, work)


def _localdb_status(settings: Settings, args: argparse.Namespace) -> None:
    local = LocalMariaDB(settings.data_dir)
    state = "running" if local.is_running() else "stopped"
    print(f"quality: local MariaDB {state}; data in {local.datadir}, socket {local.socket}")


def _localdb_stop(settings: Settings, args: argparse.Namespace) -> None:
    LocalMariaDB(settings.data_dir).stop()
    print("quality: local MariaDB stopped")


# -- demo data -------------------------------------------------------------------


def _add_demo_data(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo-data", help="fill the database with realistic demo scans")
    demo.add_argument("--scans", type=_positive, required=True, help="how many scans to add")
    demo.add_argument("--days", type=_positive, default=90, help="spread over the last DAYS days (90)")
    demo.add_argument("--force", action="store_true",
                      help="add them even if the database holds scans not made by the demo")
    demo.set_defaults(run=_demo_data)


def _demo_data(settings: Settings, args: argparse.Namespace) -> None:
    def progress(done: int, total: int) -> None:
        print(demo.describe_progress(done, total), end="", file=sys.stderr, flush=True)

    async def work(db: Database) -> None:
        try:
            await demo.fill(db, args.scans, args.days, Shifts.of_plant(settings), force=args.force,
                            progress=progress)
        except demo.DemoDataRefused as exc:
            raise CommandError(str(exc)) from None
        print(f"\nquality: added {args.scans:,} demo scans; counters rebuilt", file=sys.stderr)

    # Rebuilding the counters reads every scan: one statement may take minutes.
    _run_with_database(dataclasses.replace(settings, query_timeout=3600.0), work)
