"""The floor of the stack: uvicorn + Starlette answering a form POST with a
small HTML fragment, no database, no session, no template. `scan_load.py`
measures its CPU per request next to the app's, to show how much of a scan's
cost is the HTTP stack itself."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route


async def scan(request: Request) -> HTMLResponse:
    form = await request.form()
    piece = str(form.get("piece_code", ""))
    return HTMLResponse(f'<div id="scan-result">Saved {len(piece)}</div>')


async def healthz(request: Request) -> HTMLResponse:
    return HTMLResponse("ok")


app = Starlette(routes=[Route("/scan", scan, methods=["POST"]),
                        Route("/healthz", healthz, methods=["GET"])])
