"""The one middleware: request id, body bound, security headers, request metrics."""

from __future__ import annotations

from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from quality.http.middleware import MAX_BODY_BYTES, RequestMiddleware
from quality.metrics import Metrics


def tiny_app(metrics: Metrics) -> Starlette:
    async def echo(request: Request) -> Response:
        body = await request.body()
        return PlainTextResponse(f"{len(body)} bytes, id {request.state.request_id}")

    async def framed(request: Request) -> Response:
        return PlainTextResponse("mine", headers={"X-Frame-Options": "SAMEORIGIN",
                                                  "X-Request-ID": "made-by-the-route"})

    return Starlette(
        routes=[Route("/echo/{name}", echo, methods=["GET", "POST"]), Route("/framed", framed)],
        middleware=[Middleware(RequestMiddleware, metrics=metrics)],
    )


def test_request_id_is_kept_when_sane_and_made_up_otherwise() -> None:
    with TestClient(tiny_app(Metrics())) as client:
        kept = client.get("/echo/a", headers={"X-Request-ID": "lb-1234.abc"})
        assert kept.headers["x-request-id"] == "lb-1234.abc" and kept.text.endswith("lb-1234.abc")
        made = client.get("/echo/a", headers={"X-Request-ID": "no spaces\tor tabs"})
        assert len(made.headers["x-request-id"]) == 32
        assert made.headers["x-request-id"] != client.get("/echo/a").headers["x-request-id"]


def test_a_body_over_the_bound_is_refused() -> None:
    with TestClient(tiny_app(Metrics())) as client:
        assert client.post("/echo/a", content=b"x" * MAX_BODY_BYTES).text.startswith(
            f"{MAX_BODY_BYTES} bytes")
        assert client.post("/echo/a", content=b"x" * (MAX_BODY_BYTES + 1)).status_code == 413


def test_every_answer_carries_the_security_headers() -> None:
    with TestClient(tiny_app(Metrics())) as client:
        for response in (client.get("/echo/a"), client.get("/missing")):
            csp = response.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
            assert "unsafe-inline" not in csp
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"


def test_a_routes_own_security_header_stays_and_the_request_id_is_ours() -> None:
    with TestClient(tiny_app(Metrics())) as client:
        response = client.get("/framed", headers={"X-Request-ID": "lb-1"})
        assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
        assert response.headers.get_list("x-request-id") == ["lb-1"]
        assert response.headers["x-content-type-options"] == "nosniff" and response.text == "mine"


def test_requests_are_counted_by_route_template_not_by_url() -> None:
    metrics = Metrics()
    with TestClient(tiny_app(metrics)) as client:
        client.get("/echo/a")
        client.get("/echo/b")
        client.get("/missing")
    text = generate_latest(metrics.registry).decode()
    assert 'quality_http_requests_total{method="GET",route="/echo/{name}",status="200"} 2.0' in text
    assert 'quality_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
