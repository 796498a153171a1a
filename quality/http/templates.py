"""The templates: one Jinja environment (StrictUndefined, translations, the
page's language's dates and numbers, content-hashed static URLs) and
`Renderer.render`, which decides page or fragment in one place: a whole page,
or for an htmx request just the named blocks of the same template
(jinja2-fragments), so a fragment is never a second copy of the page's markup."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale
from babel.dates import (
    DateTimePattern,
    format_date,
    get_datetime_format,
    get_time_format,
    parse_pattern,
)
from babel.numbers import format_decimal
from jinja2_fragments import render_blocks
from starlette.requests import Request
from starlette.responses import HTMLResponse

from quality.clock import to_plant
from quality.http.csrf import csrf_token
from quality.http.htmx import is_htmx
from quality.http.language import request_language
from quality.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    count,
    percent,
    template_callables,
)
from quality.stations import STATIONS

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _assets(name: str) -> Path:
    """`templates/` or `static/`: beside the package in a checkout (and an editable
    install), inside it when installed from a wheel (setup.py copies them there)."""
    installed = PACKAGE_DIR / name
    return installed if installed.is_dir() else PACKAGE_DIR.parent / name


TEMPLATES_DIR = _assets("templates")
STATIC_DIR = _assets("static")


class Renderer:
    def __init__(self, timezone: ZoneInfo, helpers: Mapping[str, Any] | None = None,
                 language: str = DEFAULT_LANGUAGE) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            extensions=["jinja2.ext.i18n"],
            auto_reload=False,
        )
        self.env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
        self.timezone = timezone
        self.language = language  # the plant's, when the request names none we speak
        self._static_versions = _static_versions()
        # The deployment's assets as one version: the station's service worker
        # (static/sw.js) is registered under it, so new assets mean a new worker.
        self.asset_version = _asset_version(self._static_versions)
        self.env.globals["static_url"] = self.static_url
        self.env.globals["asset_version"] = self.asset_version
        self.env.globals["languages"] = LANGUAGES
        self.env.globals["stations"] = STATIONS
        self.env.globals["plant_zone"] = timezone.key  # for times a page writes itself
        self.env.filters["local_time"] = self.local_time
        self.env.filters["local_datetime"] = self.local_datetime
        self.env.filters["number"] = number
        self.env.filters["percent"] = share
        self.env.globals.update(helpers or {})

    def static_url(self, path: str) -> str:
        return f"/static/{path}?v={self._static_versions.get(path, '0')}"

    def local_time(self, value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        """Times are stored in UTC; people read them in the plant's zone."""
        if value is None:
            return ""
        return to_plant(value, self.timezone).strftime(fmt)

    @jinja2.pass_context
    def local_datetime(self, context: jinja2.runtime.Context, value: datetime) -> str:
        """A date and time the way the page's language writes them, in the plant's
        zone: Babel's `format_datetime(value, "medium")`, in parts, since every
        row of a live table has one: the day's part is written once per day."""
        local = to_plant(value, self.timezone)
        locale = context["locale"]
        joined, time_pattern = _medium_datetime(locale)
        day = local.date()
        written_time = time_pattern.apply(local.timetz(), locale, reference_date=day)
        return joined.replace("{0}", written_time).replace("{1}", _medium_date(day, locale))

    def macros(self, template: str, language: str) -> Any:
        """A template's macros in a language, for HTML pieces shared by many responses."""
        return self.env.get_template(template).make_module(template_callables(language))

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        block: str | Sequence[str] | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        language = request_language(request, self.language)
        values = {
            **template_callables(language),
            "request": request,
            "user": getattr(request.state, "user", None),
            "csrf_token": csrf_token(request),
            **(context or {}),
        }
        if block is not None and is_htmx(request):
            names = [block] if isinstance(block, str) else list(block)
            html = render_blocks(self.env, template, names, values)
        else:
            html = self.env.get_template(template).render(values)
        response = HTMLResponse(html, status_code=status_code, headers=headers)
        response.headers["Vary"] = "HX-Request"
        # A signed-in page is never kept: not by a proxy, nor in the browser's
        # history for the next person at a shared terminal.
        response.headers["Cache-Control"] = "no-store" if values["user"] else "no-cache, private"
        return response


@jinja2.pass_context
def number(context: jinja2.runtime.Context, value: float) -> str:
    """A count or measure with the page's language's separators."""
    locale = context["locale"]
    if type(value) is int:
        return count(value, str(locale))  # the whole locale, territory included
    return format_decimal(value, locale=locale)


@jinja2.pass_context
def share(context: jinja2.runtime.Context, value: float | None) -> str:
    """A rejection rate or other share as the page's language writes it."""
    return percent(value, context["language"])


@functools.cache
def _medium_datetime(locale: Locale) -> tuple[str, DateTimePattern]:
    """How a language joins a date and a time ("{1}, {0}"), and writes a time."""
    joined = get_datetime_format("medium", locale=locale).replace("'", "")
    return joined, parse_pattern(get_time_format("medium", locale=locale))


@functools.lru_cache(maxsize=64)
def _medium_date(day: date, locale: Locale) -> str:
    return format_date(day, "medium", locale=locale)


def _asset_version(versions: Mapping[str, str]) -> str:
    """One short hash of every static file's."""
    listed = "".join(f"{path}={version}\n" for path, version in sorted(versions.items()))
    return hashlib.sha256(listed.encode()).hexdigest()[:12]


def _static_versions() -> dict[str, str]:
    """A short content hash per static file, so browsers drop stale copies."""
    versions = {}
    for path in STATIC_DIR.rglob("*"):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
            versions[path.relative_to(STATIC_DIR).as_posix()] = digest
    return versions
