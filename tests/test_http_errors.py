"""Error pages: every failure is a page (or, for htmx, a fragment) with the right
status, and an ended session sends the user to sign in again."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from quality.app import create_app
from quality.http.middleware import SECURITY_HEADERS
from quality.permissions import PUBLIC, SIGNED_IN, guard
from quality.settings import Settings


async def fine(request: Request) -> Response:
    return PlainTextResponse("fine")


async def broken(request: Request) -> Response:
    raise RuntimeError("a bug")


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
