"""The floor of the stack: uvicorn + Starlette answering a form POST with a
small HTML fragment, no database, no session, no template. `scan_load.py`
measures its CPU per request next to the app's, to show how much of a scan's
cost is the HTTP stack itself.

With `QUALITY_DATABASE_URL` set, `POST /scan-saved` also saves the scan the
way the app does (`save_scan`: the pool, `record_scan`, one round trip) and
nothing else: no session, CSRF, validation, rendering, live table, metrics or
log. That is the least any implementation of a scan's POST costs on this
stack, the lower bound the app's CPU per scan is compared with."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quality.db import Database
from quality.scans.store import ScanInput, save_scan
from quality.settings import DatabaseURL, Settings
from quality.shifts import Shifts

BENCH_USER_ID = 1  # the first account scan_load.py creates
SHIFTS = Shifts(Settings.shifts, ZoneInfo("UTC"))  # as scan_load.py runs the app


async def scan(request: Request) -> HTMLResponse:
    form = await request.form()
    piece = str(form.get("piece_code", ""))
    return HTMLResponse(f'<div id="scan-result">Saved {len(piece)}</div>')


async def scan_saved(request: Request) -> HTMLResponse:
    form = {key: str(value) for key, value in (await request.form()).items()}
    scan = ScanInput(bytes.fromhex(form["submission_id"]), form["operator_code"],
                     form["piece_code"], form["piece_code"][:10], form["checker1_code"],
                     form["checker2_code"], form["defect_code"])
    saved = await save_scan(request.state.db, "quality", scan, BENCH_USER_ID, SHIFTS)
    return HTMLResponse(f'<div id="scan-result">Saved {saved.row.id}: {saved.approved}'
                        f' / {saved.rejected}</div>')


async def healthz(request: Request) -> HTMLResponse:
    return HTMLResponse("ok")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Database]]:
    url = os.environ.get("QUALITY_DATABASE_URL")
    if not url:
        yield {}
        return
    db = Database(DatabaseURL.parse(url).connect_kwargs(), maxsize=20)
    await db.open()
    try:
        yield {"db": db}
    finally:
        await db.close()


app = Starlette(routes=[Route("/scan", scan, methods=["POST"]),
                        Route("/scan-saved", scan_saved, methods=["POST"]),
                        Route("/healthz", healthz, methods=["GET"])],
                lifespan=lifespan)
