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

from quality import alert_changes, audit, demo, scan_import
from quality.accounts import (
    AccountError,
    create_user,
    ensure_admin,
    list_users,
    set_password,
    update_user,
)
from quality.alerts import rules as alert_rules
from quality.alerts.text import rule_text, scope
from quality.clock import to_plant
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
    add.add_argument("--email", metavar="ADDRESS", default="",
                     help="their e-mail address: alert e-mails to it come in their language")
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
    email = user.add_parser("email", help="set or clear an account's e-mail address")
    email.add_argument("name", help="user name")
    email.add_argument("address", help="an e-mail address, or none to clear it")
    email.set_defaults(run=_user_email)

    _add_alerts(commands)
    _add_demo_data(commands)
    _add_import(commands)

    summary = commands.add_parser("summary", help="the summary tables behind totals and reports")
    summary_actions = summary.add_subparsers(required=True, metavar="ACTION")
    summary_actions.add_parser(
        "rebuild", help="recompute every summary table, piece verdict, order count and operator counter"
                        " from the scans (safe while the app runs)").set_defaults(run=_summary_rebuild)

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
async def _database(settings: Settings, connections: int = 2) -> AsyncIterator[Database]:
    assert settings.database_url is not None
    db = Database(
        settings.database_url.connect_kwargs(), minsize=0, maxsize=connections,
        timeout=settings.pool_timeout, query_timeout=settings.query_timeout,
    )
    try:
        yield db
    finally:
        await db.close()


def _run_with_database(settings: Settings, work: Callable[[Database], Awaitable[None]],
                       connections: int = 2) -> None:
    settings, local = _with_database(settings)

    async def run() -> None:
        async with _database(settings, connections) as db:
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
                          language=args.language, email=args.email)
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
        print(f"{'USER':<24} {'ROLE':<16} {'STATE':<9} {'E-MAIL':<32} FULL NAME")
        for account in accounts:
            state = "active" if account.active else "disabled"
            print(f"{account.username:<24} {account.role:<16} {state:<9} {account.email:<32}"
                  f" {account.full_name}")

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


def _add_alerts(commands: argparse._SubParsersAction) -> None:
    alerts = commands.add_parser("alerts", help="manage quality alert rules").add_subparsers(
        required=True, metavar="ACTION")
    add = alerts.add_parser("add", help="add a rule (scoped to a station, an order or both)")
    add.add_argument("--station", default="", help="quality or fg")
    add.add_argument("--order", default="", help="an order code")
    add.add_argument("--max-rejection-rate", metavar="PERCENT", default="",
                     help="fire when more than PERCENT %% of the last N scans are rejected (with --last)")
    add.add_argument("--last", metavar="N", default="", help="the scans the rejection rate counts")
    add.add_argument("--same-defect", metavar="K", default="",
                     help="fire at K scans in a row with the same defect code")
    add.add_argument("--defect", default="", help="with --same-defect: only this defect code")
    add.add_argument("--p-chart", action="store_true",
                     help="fire at a p-chart signal: a shift's (or day's) rejection rate beyond its control"
                          " limits, or 8 shifts (days) in a row on one side of the centre line")
    add.add_argument("--per", metavar="shift|day", default="",
                     help="with --p-chart: a point per shift (the default) or per production day")
    add.add_argument("--at-station", action="store_true", help="show it at the station too")
    add.add_argument("--email", default="", help="recipients, separated by commas")
    add.add_argument("--mail-language", default="en",
                     help="the e-mails' language (en, ro), for addresses that are not a user's"
                          " with a language")
    add.set_defaults(run=_alerts_add)
    alerts.add_parser("list", help="the rules in force").set_defaults(run=_alerts_list)
    remove = alerts.add_parser("remove", help="remove a rule (its alerts stay)")
    remove.add_argument("id", type=_positive, help="the rule's number (quality alerts list)")
    remove.set_defaults(run=_alerts_remove)


def _alerts_add(settings: Settings, args: argparse.Namespace) -> None:
    if bool(args.max_rejection_rate) + bool(args.same_defect) + args.p_chart != 1:
        raise CommandError("give one of --max-rejection-rate PERCENT --last N, --same-defect K or --p-chart")
    rate = bool(args.max_rejection_rate)
    kind = alert_rules.RATE if rate else alert_rules.P_CHART if args.p_chart else alert_rules.REPEATED
    form = {"kind": kind, "station": args.station,
            "order": args.order, "defect": args.defect, "threshold": args.max_rejection_rate,
            "pieces": args.last if rate else args.same_defect, "recipients": args.email,
            "mail_language": args.mail_language,
            "period": args.per or (alert_rules.SHIFT if args.p_chart else "")}
    draft = alert_rules.check(form, settings.codes, args.at_station)

    async def work(db: Database) -> None:
        if draft.ok:
            rule_id = await db.run(alert_changes.add, audit.terminal(), draft)
            if rule_id is not None:
                print(f"quality: added alert rule {rule_id}")
                return
        field, message = next(iter(draft.errors.items()))
        raise CommandError(f"{_OPTIONS.get(field, field)}: {message}")

    if not draft.ok:  # no database needed to say so
        field, message = next(iter(draft.errors.items()))
        raise CommandError(f"{_OPTIONS.get(field, field)}: {message}")
    _run_with_database(settings, work)


# The option that gave each field of a rule.
_OPTIONS = {"station": "--station", "order": "--order", "defect": "--defect",
            "threshold": "--max-rejection-rate", "pieces": "--last/--same-defect",
            "recipients": "--email", "mail_language": "--mail-language", "kind": "kind", "period": "--per"}


def _alerts_list(settings: Settings, args: argparse.Namespace) -> None:
    async def work(db: Database) -> None:
        async with db.transaction() as cur:
            found = await alert_rules.in_force(cur)
        print(f"{'ID':<6} {'WHERE':<34} FIRES WHEN")
        for rule in found:
            where = scope(rule.station, rule.order_code)
            fires = rule_text(rule.kind, rule.period, rule.pieces, rule.threshold, rule.defect_code)
            extra = " (at the station)" if rule.at_station else ""
            print(f"{rule.id:<6} {where:<34} {fires}{extra}")

    _run_with_database(settings, work)


def _alerts_remove(settings: Settings, args: argparse.Namespace) -> None:
    async def work(db: Database) -> None:
        if not await db.run(alert_changes.remove, audit.terminal(), args.id):
            raise CommandError(f"there is no alert rule {args.id}")
        print(f"quality: removed alert rule {args.id}")

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


# -- import ----------------------------------------------------------------------


def _add_import(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "import", help="save a plant's scans from a CSV file with the columns of the scan list's CSV export")
    command.add_argument("file", type=Path, help="the CSV file (UTF-8; the export's columns, see README)")
    command.add_argument("--dry-run", action="store_true",
                         help="report what the import would do, and change nothing")
    command.add_argument("--batch", type=_positive, default=scan_import.BATCH,
                         help=f"rows looked up at once (default: {scan_import.BATCH})")
    command.set_defaults(run=_import)


def _import(settings: Settings, args: argparse.Namespace) -> None:
    # The whole file is checked before the database is touched: a bad file changes nothing.
    try:
        parsed = scan_import.read_file(args.file, settings.codes, settings.timezone)
    except scan_import.ImportFileError as exc:
        raise CommandError(str(exc)) from None
    shifts = Shifts.of_plant(settings)
    terminal = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        print(demo.describe_progress(done, total), end="", file=sys.stderr, flush=True)

    async def work(db: Database) -> None:
        await _require_current_schema(db)
        outcome = await scan_import.run(db, parsed, shifts, file_name=args.file.name, dry_run=args.dry_run,
                                        batch=args.batch, progress=progress if terminal else None)
        if terminal:
            print(file=sys.stderr)
        for rejected in outcome.rejected:
            print(f"quality: {args.file.name} row {rejected.number}, {rejected.column}: {rejected.reason}",
                  file=sys.stderr)
        print(scan_import.describe(outcome, args.file.name, dry_run=args.dry_run))

    # Catching up the summaries after a large import may read for minutes.
    _run_with_database(dataclasses.replace(settings, query_timeout=3600.0), work,
                       connections=scan_import.SAVERS)


# -- summaries -------------------------------------------------------------------


def _summary_rebuild(settings: Settings, args: argparse.Namespace) -> None:
    from quality.summary.writer import rebuild

    shown = sys.stderr.isatty()

    def progress(step: str, done: int, total: int) -> None:
        if shown:
            print(f"\r{step:>6}: {_bar(done, total)} {done:>11,} / {total:,}", end="", file=sys.stderr,
                  flush=True)
            if done >= total:
                print(file=sys.stderr)

    async def work(db: Database) -> None:
        rebuilt = await rebuild(db, Shifts.of_plant(settings), progress)
        print(f"quality: summaries rebuilt from {rebuilt.scans:,} scans; set right the verdicts of"
              f" {rebuilt.pieces:,} pieces and the counts of {rebuilt.orders:,} orders;"
              " operator counters count again", file=sys.stderr)

    # Comparing every piece reads every scan: one statement may take minutes.
    _run_with_database(dataclasses.replace(settings, query_timeout=3600.0), work)


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = width * done // max(total, 1)
    return f"[{'#' * filled}{'.' * (width - filled)}] {100 * done // max(total, 1):>3}%"


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
            went_wrong = await demo.fill(db, args.scans, args.days, Shifts.of_plant(settings),
                                         force=args.force, progress=progress)
        except demo.DemoDataRefused as exc:
            raise CommandError(str(exc)) from None
        print(f"\nquality: added {args.scans:,} demo scans; counters rebuilt", file=sys.stderr)
        bad_hour = to_plant(went_wrong.bad_hour, settings.timezone)
        if went_wrong.bad_station:
            print(f"quality: a bad hour at the {went_wrong.bad_station} station from"
                  f" {bad_hour:%Y-%m-%d %H:%M}", file=sys.stderr)
        if went_wrong.recurring_order:
            print(f"quality: defect {went_wrong.recurring_defect} keeps coming on order"
                  f" {went_wrong.recurring_order}", file=sys.stderr)

    # Rebuilding the counters reads every scan: one statement may take minutes.
    _run_with_database(dataclasses.replace(settings, query_timeout=3600.0), work)


def _user_email(settings: Settings, args: argparse.Namespace) -> None:
    address = "" if args.address == "none" else args.address

    async def work(db: Database) -> None:
        await update_user(db, args.name.strip().lower(), actor=audit.terminal(), email=address)
        print(f"quality: {args.name!r} now has " + (f"the e-mail address {address.strip()!r}" if address
                                                      else "no e-mail address"))

    _run_with_database(settings, work)
