"""Page-or-fragment rendering: one template, its blocks for htmx, no caching of
either by a shared cache, and template typos as errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import jinja2
import pytest
from babel import Locale
from babel.dates import format_datetime
from babel.numbers import format_decimal
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from quality.http.htmx import is_htmx
from quality.http.session_cookie import SessionMiddleware
from quality.http.templates import Renderer, number
from quality.i18n import template_callables

CONTEXT = {"status": 404, "title": "Not found", "message": "Nothing here."}


def tiny_app(renderer: Renderer) -> Starlette:
    async def page(request: Request) -> Response:
        context = {key: value for key, value in CONTEXT.items()
                   if key not in request.query_params.getlist("without")}
        return renderer.render(request, "errors/error.html", context, block="error")

    return Starlette(
        routes=[Route("/", page)],
        middleware=[Middleware(SessionMiddleware, secret_key="k" * 32, max_age_seconds=60)],
    )


@pytest.fixture
def client() -> TestClient:
    return TestClient(tiny_app(Renderer(ZoneInfo("Europe/Bucharest"))))


def test_a_full_page_normally_and_just_the_block_for_htmx(client: TestClient) -> None:
    page = client.get("/")
    assert page.text.startswith("<!doctype html>") and "Nothing here." in page.text
    fragment = client.get("/", headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<section class="card narrow error-page"')
    assert "<html" not in fragment.text and "Nothing here." in fragment.text
    for response in (page, fragment):
        assert response.headers["vary"] == "HX-Request"
        assert response.headers["cache-control"] == "no-cache, private"


def test_a_navigation_carrying_the_htmx_header_gets_the_page(client: TestClient) -> None:
    page = client.get("/", headers={"HX-Request": "true", "Sec-Fetch-Mode": "navigate"})
    assert page.text.startswith("<!doctype html>")


def test_is_htmx_trusts_the_header_only_outside_navigations() -> None:
    def request(*headers: tuple[bytes, bytes]) -> Request:
        return Request({"type": "http", "headers": list(headers)})

    assert is_htmx(request((b"hx-request", b"true"), (b"sec-fetch-mode", b"cors")))
    assert not is_htmx(request((b"hx-request", b"true"), (b"sec-fetch-mode", b"navigate")))
    assert not is_htmx(request())


def test_a_missing_template_value_is_an_error_not_an_empty_string(client: TestClient) -> None:
    with pytest.raises(jinja2.UndefinedError, match="message"):
        client.get("/?without=message")


def test_times_are_shown_in_the_plant_zone_and_static_urls_carry_a_content_hash() -> None:
    renderer = Renderer(ZoneInfo("Europe/Bucharest"))
    assert renderer.local_time(datetime(2026, 1, 15, 10, 0)) == "2026-01-15 12:00:00"
    assert renderer.local_time(None) == ""
    url = renderer.static_url("scan.js")
    assert url.startswith("/static/scan.js?v=") and len(url.split("=")[1]) == 10
    assert renderer.static_url("no-such-file.js").endswith("?v=0")


@pytest.mark.parametrize("language", ["en", "ro"])
def test_dates_and_counts_are_written_exactly_as_babel_writes_them(language: str) -> None:
    """Both are assembled from remembered parts (a day's date, a count's text);
    the result is Babel's own, across a daylight-saving change, again and again."""
    zone = ZoneInfo("Europe/Bucharest")
    renderer = Renderer(zone)
    context = {"locale": Locale.parse(language)}
    start = datetime(2026, 3, 28, 20, 0, 5)  # the clocks go forward on 29 March, 01:00 UTC
    for step in [*range(0, 24 * 60, 17), *range(0, 24 * 60, 17)]:
        value = start + timedelta(minutes=step)
        expected = format_datetime(value.replace(tzinfo=UTC), "medium", tzinfo=zone,
                                   locale=language)
        assert renderer.local_datetime(context, value) == expected
    for value in [0, 7, 1234, 1234, 1234567, -5, 1234.5, Decimal("1234.5678"), Decimal("-0")]:
        assert number(context, value) == format_decimal(value, locale=language)


def test_translating_in_a_loop_does_not_copy_the_template_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A context function called in a loop or a block that sets variables gets
    a copy of every variable and global; a form would pay one per label."""

    def copied(*args: object, **kwargs: object) -> None:
        raise AssertionError("the template context was copied")

    renderer = Renderer(ZoneInfo("UTC"))
    template = renderer.env.from_string(
        '{% for n in [1, 2] %}{% set m = n %}{{ _("<Save>") }} '
        '{{ ngettext("%(num)s scan", "%(num)s scans", m) }};{% endfor %}'
        '{% autoescape false %}{{ _("<raw>") }}{% endautoescape %}')
    monkeypatch.setattr(jinja2.runtime.Context, "derived", copied)
    assert template.render(template_callables("en")) == (
        "&lt;Save&gt; 1 scan;&lt;Save&gt; 2 scans;<raw>")
