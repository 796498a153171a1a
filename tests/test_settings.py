"""Settings: typed, validated, one clear line per bad value."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from quality.settings import DatabaseURL, Settings, SettingsError, load_settings
from tests.conftest import make_certificates


def test_defaults_match_the_spec() -> None:
    settings = load_settings({})
    assert settings.database_url is None and settings.uses_local_database
    assert (settings.pool_min, settings.pool_max) == (3, 20)
    assert (settings.pool_timeout, settings.pool_recycle, settings.query_timeout) == (5, 3600, 10)
    assert settings.session_hours == 12 and settings.log_format == "text"
    assert settings.pool_bulk_share == 0.25
    assert (settings.exports_per_user, settings.exports_per_process) == (2, 4)


def test_each_default_has_one_home_and_the_readme_shows_it() -> None:
    # Settings() holds the defaults; reading an empty environment must give
    # exactly them, and the README's table is the copy a reader sees.
    assert load_settings({}, env_file=None) == Settings()
    defaults = Settings()
    shown = 0
    for line in (Path(__file__).parents[1] / "README.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if len(cells) != 3 or not cells[0].startswith("`QUALITY_"):
            continue
        names = [name.strip("` ") for name in cells[0].split(" / ")]
        values = [value.strip() for value in cells[1].split(" / ")]
        for name, value in zip(names, values, strict=False):
            field = name.removeprefix("QUALITY_").lower()
            default = getattr(defaults, field, None)
            if isinstance(default, bool) or not isinstance(default, (int, float, str)):
                continue
            shown += 1
            assert (float(value) == default if isinstance(default, (int, float))
                    else value == default), (name, value, default)
    assert shown >= 12


def test_values_are_typed() -> None:
    settings = load_settings({
        "QUALITY_DATABASE_URL": "mysql://app:p%40ss@db.local:3307/plant",
        "QUALITY_SECRET_KEY": "s" * 32,
        "QUALITY_POOL_MAX": "7",
        "QUALITY_POOL_TIMEOUT": "0.5",
        "QUALITY_TIMEZONE": "Europe/Bucharest",
        "QUALITY_LOG_FORMAT": "JSON",
        "QUALITY_POOL_BULK_SHARE": "0.5",
        "QUALITY_EXPORTS_PER_USER": "1",
        "QUALITY_EXPORTS_PER_PROCESS": "3",
    })
    assert settings.database_url == DatabaseURL("app", "p@ss", "plant", "db.local", 3307)
    assert settings.pool_max == 7 and settings.pool_timeout == 0.5
    assert settings.pool_bulk_share == 0.5
    assert (settings.exports_per_user, settings.exports_per_process) == (1, 3)
    assert str(settings.timezone) == "Europe/Bucharest" and settings.log_format == "json"


def test_listening_address_and_trusted_proxies() -> None:
    assert load_settings({}).forwarded_allow_ips == ()  # forwarded headers not believed by default
    settings = load_settings({
        "QUALITY_HOST": "0.0.0.0", "QUALITY_PORT": "8080",
        "QUALITY_FORWARDED_ALLOW_IPS": "10.0.0.5, 172.16.0.0/12,::1",
    })
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)
    assert settings.forwarded_allow_ips == ("10.0.0.5", "172.16.0.0/12", "::1")


def test_unix_socket_url_round_trips() -> None:
    url = DatabaseURL.parse("mysql://u:p@localhost/q?unix_socket=/tmp/x.sock")
    assert url.unix_socket == "/tmp/x.sock"
    assert DatabaseURL.parse(url.as_url()) == url


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"QUALITY_POOL_MAX": "lots"}, "QUALITY_POOL_MAX"),
        ({"QUALITY_POOL_MAX": "0"}, "QUALITY_POOL_MAX"),
        ({"QUALITY_POOL_MIN": "9", "QUALITY_POOL_MAX": "4"}, "QUALITY_POOL_MIN"),
        ({"QUALITY_POOL_TIMEOUT": "-1"}, "QUALITY_POOL_TIMEOUT"),
        ({"QUALITY_TIMEZONE": "Mars/Olympus"}, "QUALITY_TIMEZONE"),
        ({"QUALITY_LOG_LEVEL": "LOUD"}, "QUALITY_LOG_LEVEL"),
        ({"QUALITY_LOG_FORMAT": "xml"}, "QUALITY_LOG_FORMAT"),
        ({"QUALITY_DATABASE_URL": "postgres://x@y/z", "QUALITY_SECRET_KEY": "k" * 20},
         "QUALITY_DATABASE_URL"),
        ({"QUALITY_DATABASE_URL": "mysql://u:p@h/db"}, "QUALITY_SECRET_KEY"),
        ({"QUALITY_SECRET_KEY": "short"}, "QUALITY_SECRET_KEY"),
        ({"QUALITY_PIECE_PATTERN": "CP[0-9"}, "QUALITY_PIECE_PATTERN"),
        ({"QUALITY_SESSION_HOURS": "forever"}, "QUALITY_SESSION_HOURS"),
        ({"QUALITY_PORT": "abc"}, "QUALITY_PORT"),
        ({"QUALITY_PORT": "70000"}, "QUALITY_PORT"),
        ({"QUALITY_FORWARDED_ALLOW_IPS": "10.0.0.1, proxy.local"}, "QUALITY_FORWARDED_ALLOW_IPS"),
        ({"QUALITY_POOL_BULK_SHARE": "0"}, "QUALITY_POOL_BULK_SHARE"),
        ({"QUALITY_POOL_BULK_SHARE": "1.5"}, "QUALITY_POOL_BULK_SHARE"),
        ({"QUALITY_EXPORTS_PER_USER": "0"}, "QUALITY_EXPORTS_PER_USER"),
        ({"QUALITY_EXPORTS_PER_PROCESS": "many"}, "QUALITY_EXPORTS_PER_PROCESS"),
        ({"QUALITY_EXPORTS_PER_USER": "5", "QUALITY_EXPORTS_PER_PROCESS": "4"}, "QUALITY_EXPORTS_PER_USER"),
        ({"QUALITY_REPLICA_URL": "mysql://u:p@replica/db"}, "QUALITY_REPLICA_URL needs QUALITY_DATABASE_URL"),
        ({"QUALITY_DATABASE_URL": "mysql://u:p@h/db", "QUALITY_SECRET_KEY": "k" * 20,
          "QUALITY_REPLICA_URL": "mysql://u:p@replica/db?sslmode=on"}, "QUALITY_REPLICA_URL is not usable"),
        ({"QUALITY_REPLICA_MAX_LAG": "soon"}, "QUALITY_REPLICA_MAX_LAG"),
        ({"QUALITY_REPLICA_MAX_LAG": "0"}, "QUALITY_REPLICA_MAX_LAG"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named) as error:
        load_settings(env)
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_certificates(tmp_path_factory.mktemp("tls") / "certs")


def test_tls_options_parse_and_round_trip(certs: dict[str, Path]) -> None:
    url = DatabaseURL.parse(
        f"mysql://u:p@db.plant:3306/q?ssl=verify-full&ssl_ca={certs['ca']}"
        f"&ssl_cert={certs['server']}&ssl_key={certs['key']}"
    )
    assert (url.ssl, url.ssl_ca, url.ssl_cert, url.ssl_key) == (
        "verify-full", str(certs["ca"]), str(certs["server"]), str(certs["key"]))
    assert DatabaseURL.parse(url.as_url()) == url
    assert "ssl" not in DatabaseURL.parse("mysql://u:p@h/q").connect_kwargs()


def test_a_replica_url_takes_the_same_options_tls_included(certs: dict[str, Path]) -> None:
    settings = load_settings({
        "QUALITY_DATABASE_URL": "mysql://u:p@primary.plant/q", "QUALITY_SECRET_KEY": "k" * 20,
        "QUALITY_REPLICA_URL": f"mysql://r:p@replica.plant:3307/q?ssl=verify-full&ssl_ca={certs['ca']}",
        "QUALITY_REPLICA_MAX_LAG": "2.5",
    })
    assert settings.replica_url == DatabaseURL("r", "p", "q", "replica.plant", 3307, ssl="verify-full",
                                               ssl_ca=str(certs["ca"]))
    assert settings.replica_url.connect_kwargs()["ssl"].check_hostname
    assert settings.replica_max_lag == 2.5
    assert load_settings({}, env_file=None).replica_url is None


@pytest.mark.parametrize(
    ("mode", "verify", "check_hostname"),
    [("required", ssl.CERT_NONE, False), ("verify-ca", ssl.CERT_REQUIRED, False),
     ("verify-full", ssl.CERT_REQUIRED, True)],
)
def test_tls_modes_mean_what_other_drivers_mean(
    certs: dict[str, Path], mode: str, verify: ssl.VerifyMode, check_hostname: bool
) -> None:
    ca = "" if mode == "required" else f"&ssl_ca={certs['ca']}"
    context = DatabaseURL.parse(f"mysql://u:p@h/q?ssl={mode}{ca}").connect_kwargs()["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert (context.verify_mode, context.check_hostname) == (verify, check_hostname)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sslmode=require", "unknown option 'sslmode'"),
        ("ssl=true", "ssl='true' must be one of: required, verify-ca, verify-full"),
        ("ssl_ca=/etc/ca.pem", "ssl_ca needs ?ssl=required|verify-ca|verify-full"),
        ("ssl=required&ssl_ca={ca}", "ssl_ca is checked only with ssl=verify-ca or ssl=verify-full"),
        ("ssl=verify-ca&ssl_ca=/nonexistent/ca.pem", "ssl_ca: cannot use /nonexistent/ca.pem"),
        ("ssl=verify-full&ssl_key={key}", "ssl_key needs ssl_cert"),
        ("ssl=required&unix_socket=/tmp/db.sock", "ssl= is for TCP connections"),
    ],
)
def test_bad_tls_options_stop_start_up(certs: dict[str, Path], query: str, message: str) -> None:
    url = "mysql://u:p@h/q?" + query.format(ca=certs["ca"], key=certs["key"])
    with pytest.raises(SettingsError, match=r"^QUALITY_DATABASE_URL is not usable: ") as error:
        load_settings({"QUALITY_DATABASE_URL": url, "QUALITY_SECRET_KEY": "k" * 20})
    assert message in str(error.value) and "\n" not in str(error.value)


def test_env_file_is_read_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# plant settings\nQUALITY_POOL_MAX=9\nexport QUALITY_TIMEZONE='Europe/Berlin'\n")
    monkeypatch.setenv("QUALITY_POOL_MAX", "11")
    settings = load_settings(env_file=env_file)
    assert settings.pool_max == 11 and str(settings.timezone) == "Europe/Berlin"


def test_bad_setting_stops_the_command_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "QUALITY_POOL_MAX": "many"}
    result = subprocess.run(
        [sys.executable, "-m", "quality", "serve"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 78  # EX_CONFIG: not a usage error (2)
    assert result.stderr.strip().splitlines() == [
        "quality: QUALITY_POOL_MAX='many' is not a whole number"
    ]
