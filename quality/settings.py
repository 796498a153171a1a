"""Typed settings read from the environment and an optional `.env` file.

Every setting is validated once at start-up; a bad value raises `SettingsError`
whose message is one line naming the setting, which the CLI prints and exits on.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from quality.i18n import LANGUAGES

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting is missing or has a value the app cannot run with."""


# TLS to the database, as other drivers name it: `required` encrypts without
# checking who answers; `verify-ca` also checks the certificate chain;
# `verify-full` also checks that the certificate names the host in the URL.
SSL_MODES = ("required", "verify-ca", "verify-full")
_URL_OPTIONS = {"unix_socket", "ssl", "ssl_ca", "ssl_cert", "ssl_key"}


@dataclass(frozen=True)
class DatabaseURL:
    user: str
    password: str
    database: str
    host: str = "127.0.0.1"
    port: int = 3306
    unix_socket: str | None = None
    ssl: str | None = None
    ssl_ca: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None

    @classmethod
    def parse(cls, url: str) -> DatabaseURL:
        parts = urlsplit(url)
        if parts.scheme not in ("mysql", "mariadb"):
            raise ValueError("scheme must be mysql:// or mariadb://")
        database = parts.path.lstrip("/")
        if not database or "/" in database:
            raise ValueError("the URL must name one database, e.g. mysql://user:pass@host/db")
        if not parts.username:
            raise ValueError("the URL must name a user")
        query = parse_qs(parts.query)
        # A misspelt option (say `sslmode=`) must not quietly mean "no TLS".
        if unknown := sorted(set(query) - _URL_OPTIONS):
            raise ValueError(
                f"unknown option {unknown[0]!r}; known: {', '.join(sorted(_URL_OPTIONS))}"
            )
        options = {name: values[-1] for name, values in query.items()}
        try:
            port = parts.port or 3306
        except ValueError as exc:
            raise ValueError("the port must be a number") from exc
        parsed = cls(
            user=unquote(parts.username),
            password=unquote(parts.password or ""),
            database=unquote(database),
            host=parts.hostname or "127.0.0.1",
            port=port,
            **options,
        )
        parsed.ssl_context()  # unreadable certificate files fail here, at start-up
        return parsed

    def as_url(self) -> str:
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        name = quote(self.database, safe="")
        if self.unix_socket:
            return f"mysql://{auth}@localhost/{name}?unix_socket={quote(self.unix_socket)}"
        options = {
            "ssl": self.ssl, "ssl_ca": self.ssl_ca, "ssl_cert": self.ssl_cert, "ssl_key": self.ssl_key,
        }
        query = urlencode({key: value for key, value in options.items() if value})
        return f"mysql://{auth}@{self.host}:{self.port}/{name}" + (f"?{query}" if query else "")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context `ssl=` asks for, or None for an unencrypted connection."""
        files = [name for name in ("ssl_ca", "ssl_cert", "ssl_key") if getattr(self, name)]
        if self.ssl is None:
            if files:
                raise ValueError(f"{files[0]} needs ?ssl={'|'.join(SSL_MODES)}")
            return None
        if self.ssl not in SSL_MODES:
            raise ValueError(f"ssl={self.ssl!r} must be one of: {', '.join(SSL_MODES)}")
        if self.unix_socket:
            raise ValueError("ssl= is for TCP connections; a unix socket never leaves this machine")
        if self.ssl == "required":
            if self.ssl_ca:
                raise ValueError("ssl_ca is checked only with ssl=verify-ca or ssl=verify-full")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = _load("ssl_ca", self.ssl_ca, ssl.create_default_context, cafile=self.ssl_ca)
            context.check_hostname = self.ssl == "verify-full"
        if self.ssl_key and not self.ssl_cert:
            raise ValueError("ssl_key needs ssl_cert (the client certificate)")
        if self.ssl_cert:
            _load("ssl_cert", self.ssl_cert, context.load_cert_chain, self.ssl_cert, self.ssl_key)
        return context

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "user": self.user,
            "password": self.password,
            "db": self.database,
        }
        if self.unix_socket:
            kwargs["unix_socket"] = self.unix_socket
        else:
            kwargs["host"] = self.host
            kwargs["port"] = self.port
        if context := self.ssl_context():
            kwargs["ssl"] = context
        return kwargs


def _load(option: str, path: str | None, load: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run an SSL file loader, naming the URL option whose file it could not use."""
    try:
        return load(*args, **kwargs)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"{option}: cannot use {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class CodePatterns:
    """Barcode formats (SPEC §5); each is a full-match regular expression."""

    operator: str = r"OP[A-Z0-9]{2}"
    piece: str = r"CP\d{8}-\d{4}"
    checker: str = r"OC[A-Z0-9]{2}"
    defect: str = r"\d{3}"
    order_length: int = 10
    order: str = r"CP\d{8}"  # the first order_length characters of a piece code


DEFAULT_TIMEZONE = "UTC"


@dataclass(frozen=True)
class Settings:
    """The settings and their defaults: `load_settings` reads each from the
    environment and falls back on the default written here, the one place it is."""

    database_url: DatabaseURL | None = None
    # A read replica of it (optional): lists past their first page, totals,
    # reports and exports read there while it lags at most replica_max_lag seconds.
    replica_url: DatabaseURL | None = None
    replica_max_lag: float = 5.0
    secret_key: str | None = None
    pool_min: int = 3
    pool_max: int = 20
    pool_timeout: float = 5.0
    pool_recycle: float = 3600.0
    query_timeout: float = 10.0
    # The share of the pool exports, reports and list totals may hold at once.
    pool_bulk_share: float = 0.25
    # Exports running at once, per user and in all (each process).
    exports_per_user: int = 2
    exports_per_process: int = 4
    log_level: str = "INFO"
    log_format: str = "text"
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    language: str = "en"  # the UI's language for users who chose none
    session_hours: float = 12.0
    data_dir: Path = Path("var")
    admin_password: str | None = None
    metrics_token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    # Proxies whose X-Forwarded-For/-Proto are believed; none by default.
    forwarded_allow_ips: tuple[str, ...] = ()
    codes: CodePatterns = field(default_factory=CodePatterns)
    # Where each shift starts, in the plant's local time, minutes after midnight.
    shifts: tuple[int, ...] = (6 * 60, 14 * 60, 22 * 60)
    # Quality alerts' notifications (quality/alerts/outbox.py): none by default.
    alert_webhook: str | None = None
    smtp_url: str | None = None
    public_url: str | None = None  # the app's address in notifications' links; None: host and port

    @property
    def uses_local_database(self) -> bool:
        return self.database_url is None


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            raise SettingsError(f"{path}:{number}: expected NAME=value")
        values[key.strip()] = value.strip().strip("'\"")
    return values


class _Reader:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return value if value not in (None, "") else None

    def number(self, name: str, default: float, *, minimum: float, integer: bool = False) -> Any:
        value = self.raw(name)
        if value is None:
            return default
        kind = "a whole number" if integer else "a number"
        try:
            parsed = int(value) if integer else float(value)
        except ValueError:
            raise SettingsError(f"{name}={value!r} is not {kind}") from None
        if parsed < minimum:
            raise SettingsError(f"{name}={value!r} must be at least {minimum:g}")
        return parsed

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = (self.raw(name) or default).strip()
        if value.upper() in choices:
            return value.upper()
        if value.lower() in choices:
            return value.lower()
        raise SettingsError(f"{name}={value!r} must be one of: {', '.join(choices)}")

    def addresses(self, name: str) -> tuple[str, ...]:
        """A comma-separated list of IP addresses or networks, or `*` for any."""
        items = tuple(item.strip() for item in (self.raw(name) or "").split(",") if item.strip())
        for item in items:
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise SettingsError(f"{name}: {item!r} is not an IP address, a network or '*'") from None
        return items

    def shifts(self, name: str, default: tuple[int, ...]) -> tuple[int, ...]:
        """Shift start times `HH:MM,HH:MM,...`, ascending, on the local hour
        (in any zone: quality.summary.query cuts reports at the shifts)."""
        value = self.raw(name)
        if value is None:
            return default
        starts = []
        for item in value.split(","):
            found = re.fullmatch(r"\s*([01]?\d|2[0-3]):([0-5]\d)\s*", item)
            if not found or int(found[2]):
                raise SettingsError(f"{name}={value!r}: each shift start must be a whole hour, e.g. 06:00")
            starts.append(int(found[1]) * 60 + int(found[2]))
        if starts != sorted(set(starts)):
            raise SettingsError(f"{name}={value!r}: shift starts must be in ascending order, no repeats")
        return tuple(starts)

    def url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        """An address with one of these schemes and a host, or nothing."""
        value = self.raw(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            raise SettingsError(f"{name}={value!r} must be a {' or '.join(schemes)} address with a host")
        return value

    def pattern(self, name: str, default: str) -> str:
        value = self.raw(name) or default
        try:
            re.compile(value)
        except re.error as exc:
            raise SettingsError(f"{name}={value!r} is not a valid regular expression: {exc}") from None
        return value


def load_settings(env: dict[str, str] | None = None, env_file: Path | None = Path(".env")) -> Settings:
    """Build `Settings` from `env` (default: os.environ over the `.env` file)."""
    if env is None:
        merged = _read_env_file(env_file) if env_file else {}
        merged.update(os.environ)
        env = merged
    read = _Reader(env)

    database_url = None
    if url := read.raw("QUALITY_DATABASE_URL"):
        try:
            database_url = DatabaseURL.parse(url)
        except ValueError as exc:
            raise SettingsError(f"QUALITY_DATABASE_URL is not usable: {exc}") from None

    replica_url = None
    if url := read.raw("QUALITY_REPLICA_URL"):
        if database_url is None:
            raise SettingsError("QUALITY_REPLICA_URL needs QUALITY_DATABASE_URL (the primary it follows)")
        try:
            replica_url = DatabaseURL.parse(url)
        except ValueError as exc:
            raise SettingsError(f"QUALITY_REPLICA_URL is not usable: {exc}") from None

    secret_key = read.raw("QUALITY_SECRET_KEY")
    if database_url is not None and secret_key is None:
        raise SettingsError("QUALITY_SECRET_KEY is required when QUALITY_DATABASE_URL is set")
    if secret_key is not None and len(secret_key) < 16:
        raise SettingsError("QUALITY_SECRET_KEY must be at least 16 characters")

    pool_min = read.number("QUALITY_POOL_MIN", Settings.pool_min, minimum=0, integer=True)
    pool_max = read.number("QUALITY_POOL_MAX", Settings.pool_max, minimum=1, integer=True)
    if pool_min > pool_max:
        raise SettingsError(f"QUALITY_POOL_MIN={pool_min} is larger than QUALITY_POOL_MAX={pool_max}")

    zone_name = read.raw("QUALITY_TIMEZONE") or DEFAULT_TIMEZONE
    try:
        timezone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"QUALITY_TIMEZONE={zone_name!r} is not a known time zone") from None

    codes = CodePatterns(
        operator=read.pattern("QUALITY_OPERATOR_PATTERN", CodePatterns.operator),
        piece=read.pattern("QUALITY_PIECE_PATTERN", CodePatterns.piece),
        checker=read.pattern("QUALITY_CHECKER_PATTERN", CodePatterns.checker),
        defect=read.pattern("QUALITY_DEFECT_PATTERN", CodePatterns.defect),
        order_length=read.number("QUALITY_ORDER_LENGTH", CodePatterns.order_length, minimum=1, integer=True),
        order=read.pattern("QUALITY_ORDER_PATTERN", CodePatterns.order),
    )

    bulk_share = read.number("QUALITY_POOL_BULK_SHARE", Settings.pool_bulk_share, minimum=0.01)
    if bulk_share > 1:
        raise SettingsError(f"QUALITY_POOL_BULK_SHARE={bulk_share:g} must be at most 1 (the whole pool)")
    exports_per_process = read.number("QUALITY_EXPORTS_PER_PROCESS", Settings.exports_per_process,
                                      minimum=1, integer=True)
    exports_per_user = read.number("QUALITY_EXPORTS_PER_USER", Settings.exports_per_user,
                                   minimum=1, integer=True)
    if exports_per_user > exports_per_process:
        raise SettingsError(f"QUALITY_EXPORTS_PER_USER={exports_per_user} is larger than "
                            f"QUALITY_EXPORTS_PER_PROCESS={exports_per_process}")

    port = read.number("QUALITY_PORT", Settings.port, minimum=1, integer=True)
    if port > 65535:
        raise SettingsError(f"QUALITY_PORT={port} must be at most 65535")

    return Settings(
        database_url=database_url,
        replica_url=replica_url,
        replica_max_lag=read.number("QUALITY_REPLICA_MAX_LAG", Settings.replica_max_lag, minimum=0.1),
        secret_key=secret_key,
        pool_min=pool_min,
        pool_max=pool_max,
        pool_timeout=read.number("QUALITY_POOL_TIMEOUT", Settings.pool_timeout, minimum=0.05),
        pool_recycle=read.number("QUALITY_POOL_RECYCLE", Settings.pool_recycle, minimum=1),
        query_timeout=read.number("QUALITY_QUERY_TIMEOUT", Settings.query_timeout, minimum=0.01),
        pool_bulk_share=bulk_share,
        exports_per_user=exports_per_user,
        exports_per_process=exports_per_process,
        log_level=read.choice("QUALITY_LOG_LEVEL", Settings.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")),
        log_format=read.choice("QUALITY_LOG_FORMAT", Settings.log_format, ("text", "json")),
        timezone=timezone,
        language=read.choice("QUALITY_LANGUAGE", Settings.language, tuple(LANGUAGES)),
        session_hours=read.number("QUALITY_SESSION_HOURS", Settings.session_hours, minimum=0.01),
        data_dir=Path(read.raw("QUALITY_DATA_DIR") or Settings.data_dir),
        admin_password=read.raw("QUALITY_ADMIN_PASSWORD"),
        metrics_token=read.raw("QUALITY_METRICS_TOKEN"),
        host=read.raw("QUALITY_HOST") or Settings.host,
        port=port,
        forwarded_allow_ips=read.addresses("QUALITY_FORWARDED_ALLOW_IPS"),
        codes=codes,
        shifts=read.shifts("QUALITY_SHIFTS", Settings.shifts),
        alert_webhook=read.url("QUALITY_ALERT_WEBHOOK", ("http", "https")),
        smtp_url=read.url("QUALITY_SMTP_URL", ("smtp", "smtps")),
        public_url=read.url("QUALITY_PUBLIC_URL", ("http", "https")),
    )
