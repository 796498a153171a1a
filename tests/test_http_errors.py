"""Error pages: every failure is a page (or, for htmx, a fragment) with the right
status, and an ended session sends the user to sign in again."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from quality.app import create_app
from quality.db import DatabaseUnavailable
from quality.http.middleware import SECURITY_HEADERS
from quality.permissions import PUBLIC, SIGNED_IN, guard
from quality.settings import Settings
from tests.conftest import login
from tests.test_i18n import choose


async def fine(request: Request) -> Response:
    return PlainTextResponse("fine")


async def broken(request: Request) -> Response:
    raise RuntimeError("a bug")


async def database_gone(request: Request) -> Response:
    raise DatabaseUnavailable("lost mid-request")


def test_unknown_page_is_a_404_page(client: TestClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "There is no page at this address." in response.text
    fragment = client.get("/no/such/page", headers={"HX-Request": "true"})
    assert fragment.status_code == 404 and "<html" not in fragment.text


def test_without_a_session_a_page_redirects_and_htmx_gets_a_401(client: TestClient) -> None:
    client.app.router.routes.append(Route("/mine", guard(SIGNED_IN)(fine), methods=["GET", "POST"]))
    page = client.get("/mine?x=1", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/mine"
    htmx = client.get("/mine", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["hx-location"] == "/login?next=/mine"
    assert "Your session has ended. Sign in again." in htmx.text
    posted = client.post("/mine")
    assert posted.status_code == 401 and "hx-location" not in posted.headers


def test_an_unhandled_error_is_a_500_page_without_details(settings: Settings) -> None:
    app = create_app(settings)
    app.router.routes.append(Route("/broken", guard(PUBLIC)(broken)))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/broken")
    assert response.status_code == 500
    assert "The server could not finish this request." in response.text
    assert "a bug" not in response.text


def test_a_500_page_carries_the_security_headers_and_request_id(settings: Settings) -> None:
    app = create_app(settings)
    app.router.routes.append(Route("/broken", guard(PUBLIC)(broken)))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/broken", headers={"X-Request-ID": "trace-500"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-500"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


# -- error pages in the reader's language, with the normal header --------------------

# How each failure is met, and what its page says, in English and in Romanian.
FAILURES = {
    404: ("GET", "/no/such/page", {"en": ("Not found", "There is no page at this address."),
                                  "ro": ("Nu a fost găsit", "Nu există nicio pagină la această adresă.")}),
    405: ("PUT", "/", {"en": ("Not allowed here", "This address does not take this kind of request."),
                       "ro": ("Nepermis aici", "Această adresă nu acceptă acest tip de cerere.")}),
    403: ("GET", "/admin/users", {"en": ("Not allowed", "Your role does not allow this page."),
                                  "ro": ("Acces interzis",
                                         "Rolul dumneavoastră nu permite accesul la această pagină.")}),
    503: ("GET", "/database-gone", {"en": ("Database busy", "The database is busy or unreachable."),
                                    "ro": ("Baza de date este ocupată",
                                           "Baza de date este ocupată sau inaccesibilă.")}),
    500: ("GET", "/broken", {"en": ("Something went wrong", "The server could not finish this request."),
                             "ro": ("Ceva nu a mers bine", "Serverul nu a putut finaliza această cerere.")}),
}
NAVIGATION = {"en": ('href="/scan"', "Quality scan", "Sign out"),
              "ro": ('href="/scan"', "Scanare calitate", "Ieșire")}


@pytest.fixture
def failing_client(settings: Settings) -> Any:
    """The app with a route that loses the database and one with a bug, each behind a sign-in."""
    app = create_app(settings)
    app.router.routes.append(Route("/database-gone", guard(SIGNED_IN)(database_gone)))
    app.router.routes.append(Route("/broken", guard(SIGNED_IN)(broken)))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("language", ["en", "ro"])
def test_error_pages_come_in_the_users_language_with_their_navigation(
    failing_client: TestClient, make_user: Any, language: str
) -> None:
    make_user("ioana", "operator")
    login(failing_client, "ioana")
    choose(failing_client, language)
    other = "ro" if language == "en" else "en"
    for status, (method, path, texts) in FAILURES.items():
        page = failing_client.request(method, path, headers={"Accept-Language": other})
        assert page.status_code == status, path
        title, message = texts[language]
        assert f'<html lang="{language}">' in page.text, status
        assert title in page.text and message in page.text, status
        for shown in NAVIGATION[language]:
            assert shown in page.text, (status, shown)
        assert 'data-testid="sign-in"' not in page.text
        fragment = failing_client.request(method, path, headers={"HX-Request": "true"})
        assert fragment.status_code == status
        assert "<html" not in fragment.text and title in fragment.text and "topbar" not in fragment.text


@pytest.mark.parametrize("language", ["en", "ro"])
def test_error_pages_signed_out_offer_the_sign_in_in_the_browsers_language(
    client: TestClient, language: str
) -> None:
    for status in (404, 405):
        method, path, texts = FAILURES[status]
        page = client.request(method, path, headers={"Accept-Language": language})
        assert page.status_code == status
        assert f'<html lang="{language}">' in page.text and texts[language][1] in page.text
        sign_in = {"en": "Sign in", "ro": "Autentificare"}[language]
        assert f'<a class="signin" href="/login" data-testid="sign-in">{sign_in}</a>' in page.text
        assert "Sign out" not in page.text and "Ieșire" not in page.text
