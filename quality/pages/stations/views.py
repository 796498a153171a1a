"""The scan pages: the form, its submit, the live table's event stream, and the
two small reads the page makes while a scan is typed: the piece's latest verdict
(the re-scan marker) and the operator's scans this shift (the counter)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from quality.clock import utc_now
from quality.fields import validate
from quality.http import live
from quality.http.csrf import csrf_token
from quality.http.errors import error_page
from quality.http.htmx import is_htmx
from quality.http.language import request_language
from quality.http.render import render
from quality.http.services import services
from quality.http.templates import STATIC_DIR
from quality.i18n import lazy
from quality.pages.stations.form import read_scan, scan_fields
from quality.permissions import PUBLIC, guard
from quality.scans.feed import StationFeed
from quality.scans.store import (
    Saved,
    SubmissionConflict,
    UnknownDefect,
    operator_scans,
    piece_verdict,
    save_scan,
)
from quality.shifts import Shifts
from quality.stations import STATIONS, Station, station_at

TEMPLATE = "stations/page.html"
RESCAN_TEMPLATE = "stations/_rescan.html"
COUNTER_TEMPLATE = "stations/_counter.html"
# What an htmx submit's answer swaps in (a normal request gets the whole page).
# The confirmation, the operator's counter and the refreshed table:
SAVED_BLOCKS = ("scan_result", "operator_count", "scan_table")
REPEATED_BLOCKS = ("scan_result", "scan_table")
REFUSED_BLOCKS = ("scan_result", "scan_form")  # the message and the form with its errors
NOT_SAVED_INVALID = lazy("Not saved — correct the marked field.")


def _context(request: Request, station: Station, **values: Any) -> dict[str, Any]:
    feed = services(request).scan_watcher.feeds[station.key]
    settings = services(request).settings
    codes = settings.codes
    context = {
        "station": station,
        "fields": scan_fields(codes),
        "values": {},
        "errors": {},
        "submission_id": secrets.token_hex(16),
        "outcome": None,
        "saved": None,
        "message": None,
        "counter": None,
        "counter_oob": False,
        "table_html": Markup(feed.table_html(request_language(request, settings.language))),
    }
    context.update(values)
    return context


def _answer(request: Request, station: Station, status: int, blocks: Sequence[str],
            headers: dict[str, str] | None = None, **values: Any) -> Response:
    """The whole page, or for htmx the named blocks, drawn over the page's own
    (out-of-band)."""
    context = _context(request, station, **values)
    context["oob"] = is_htmx(request)
    return render(request, TEMPLATE, context, block=blocks, status_code=status, headers=headers)


async def page(request: Request) -> Response:
    station = _station(request)
    return render(request, TEMPLATE, _context(request, station, oob=False))


async def page_when_unavailable(request: Request) -> Response:
    """Without the database the session cannot be checked, so no scans are
    shown; but the form and the browser's pending scans are, and they are
    sent as soon as the database is back."""
    context = _context(
        request, _station(request), oob=False, outcome="unavailable",
        message=lazy("The database is unreachable. Scans are kept and sent when it is back."),
        table_html=Markup(""),
    )
    return render(request, TEMPLATE, context, status_code=503, headers={"Retry-After": "2"})


async def submit(request: Request) -> Response:
    station = _station(request)
    form = await request.form()
    checked, scan = read_scan(form, services(request).settings.codes)
    kept = {"values": checked.values}
    if scan is None:
        if "submission_id" in checked.errors:
            return _answer(request, station, 400, REFUSED_BLOCKS, outcome="invalid", **kept,
                           message=checked.errors["submission_id"])
        return _answer(request, station, 422, REFUSED_BLOCKS, outcome="invalid",
                       errors=checked.errors, submission_id=str(form.get("submission_id")), **kept,
                       message=NOT_SAVED_INVALID)
    try:
        saved = await save_scan(services(request).db, station.key, scan, request.state.user.id,
                                _shifts(request))
    except UnknownDefect as exc:
        message = (lazy("This defect code is no longer in use; scan another.") if exc.inactive
                   else lazy("Unknown defect code."))
        return _answer(request, station, 422, REFUSED_BLOCKS, outcome="invalid", **kept,
                       errors={"defect_code": message},
                       submission_id=scan.submission_id.hex(),
                       message=NOT_SAVED_INVALID)
    except SubmissionConflict as exc:
        return _answer(request, station, 409, REFUSED_BLOCKS, outcome="invalid", **kept,
                       message=exc.args[0])
    _publish(request, saved)
    counter, blocks = None, SAVED_BLOCKS
    if saved.operator_scans is None:  # a repeat: the page keeps the counter it shows
        blocks = REPEATED_BLOCKS
    else:
        counter = Counter(scan.operator_code, saved.operator_scans,
                          _shifts(request).around(saved.row.created_at)[1])
    return _answer(request, station, 200, blocks, saved=saved,
                   outcome="approved" if saved.row.approved else "rejected",
                   values={"operator_code": scan.operator_code},
                   counter=counter, counter_oob=is_htmx(request))


async def piece(request: Request) -> Response:
    """The piece's latest verdict at this station, for the re-scan marker the page
    shows while the rest of the scan is typed; empty for a piece never scanned here."""
    station = _station(request)
    code = _code(request, "piece_code")
    if not isinstance(code, str):
        return code
    verdict = await piece_verdict(services(request).db, station.key, code)
    return render(request, RESCAN_TEMPLATE, {"piece_code": code, "verdict": verdict})


async def operator(request: Request) -> Response:
    """The operator code's scans at this station this shift, for the counter
    beside the operator field (a save's answer brings it too)."""
    station = _station(request)
    code = _code(request, "operator_code")
    if not isinstance(code, str):
        return code
    shift = _shifts(request).around(utc_now())
    count = await operator_scans(services(request).db, station.key, code, shift)
    return render(request, COUNTER_TEMPLATE,
                  {"counter": Counter(code, count, shift[1]), "counter_oob": False})


async def session(request: Request) -> Response:
    """Whose session this is, its CSRF token and the deployment's asset version:
    what the page checks before sending scans after the app was unreachable (it
    may have been loaded from the terminal's cache, static/sw.js, with a token
    since replaced, another user's page, or an older deployment's script)."""
    return JSONResponse(
        {"user": request.state.user.id, "csrf": csrf_token(request),
         "assets": services(request).renderer.asset_version},
        headers={"Cache-Control": "no-store"},
    )


@guard(PUBLIC)
async def service_worker(request: Request) -> Response:
    """The station's service worker, from the root so that its scope covers the
    station pages; a browser checks it for a new version at each registration."""
    return FileResponse(STATIC_DIR / "sw.js", media_type="text/javascript",
                        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"})


async def lookup_when_unavailable(request: Request) -> Response:
    """The marker and the counter are extras: without the database, nothing."""
    return Response(status_code=503, headers={"Retry-After": "2", "Cache-Control": "no-store"})


@dataclass(frozen=True)
class Counter:
    """What the counter beside the operator field shows, and until when."""

    operator_code: str
    scans: int
    until: datetime  # the shift's end, naive UTC: the page asks again then

    @property
    def until_ms(self) -> int:
        return int(self.until.replace(tzinfo=UTC).timestamp() * 1000)


def _code(request: Request, field_name: str) -> str | Response:
    """The `code` query parameter checked as the scan form's field would check
    it, or the 400 naming what is wrong."""
    fields = [field for field in scan_fields(services(request).settings.codes) if field.name == field_name]
    checked = validate({field_name: request.query_params.get("code", "")}, fields)
    if not checked.ok:
        return error_page(request, 400, checked.errors[field_name])
    return checked.values[field_name]


def _shifts(request: Request) -> Shifts:
    return Shifts.of_plant(services(request).settings)


async def submit_when_unavailable(request: Request) -> Response:
    """503 with the scan still in the form, whether the session lookup or
    the save met the busy database; the same submission id, so a retry
    cannot save it twice."""
    form = await request.form()
    checked, _ = read_scan(form, services(request).settings.codes)
    submission = form.get("submission_id")
    # No scans shown: the session and permission may not have been checked.
    return _answer(request, _station(request), 503, REFUSED_BLOCKS,
                   outcome="unavailable", values=checked.values,
                   submission_id=submission if isinstance(submission, str) else "",
                   message=lazy("Not saved — the database is busy. Try again."),
                   table_html=Markup(""), headers={"Retry-After": "2"})


async def stream(request: Request) -> Response:
    feed = services(request).scan_watcher.feeds[_station(request).key]
    return live.LiveStream(request, _table_events(request, feed, live.position(request)))


def _station(request: Request) -> Station:
    """The station whose route this request matched."""
    return station_at(request.scope["route"].path)


def _publish(request: Request, saved: Saved) -> None:
    """A saved scan goes to this process's live table and the scan counter."""
    services(request).scan_watcher.saved(saved)
    if not saved.repeated:
        verdict = "approved" if saved.row.approved else "rejected"
        services(request).metrics.scans_saved.labels(saved.row.station, verdict).inc()


def _station_routes(station: Station) -> list[Route]:
    permission = station.permission
    return [
        Route(station.path, guard(permission, when_unavailable=page_when_unavailable)(page),
              methods=["GET"], name=f"{station.key}_page"),
        Route(station.path, guard(permission, when_unavailable=submit_when_unavailable)(submit),
              methods=["POST"], name=f"{station.key}_submit"),
        Route(station.stream_path, guard(permission)(stream),
              methods=["GET"], name=f"{station.key}_stream"),
        Route(station.piece_path, guard(permission, when_unavailable=lookup_when_unavailable)(piece),
              methods=["GET"], name=f"{station.key}_piece"),
        Route(station.operator_path,
              guard(permission, when_unavailable=lookup_when_unavailable)(operator),
              methods=["GET"], name=f"{station.key}_operator"),
        Route(station.session_path,
              guard(permission, when_unavailable=lookup_when_unavailable)(session),
              methods=["GET"], name=f"{station.key}_session"),
    ]


def _table_events(request: Request, feed: StationFeed, seen: int | None) -> AsyncGenerator[bytes, None]:
    """The station's table, sent whole at each change in the page's language
    (a page that has the newest already gets it at the next change)."""
    language = request_language(request, services(request).settings.language)
    last = feed.event_frame(language) if seen == feed.version else None

    def fresh() -> bytes | None:
        nonlocal last
        frame = feed.event_frame(language)  # the same bytes until the table changes
        if frame is last:
            return None
        last = frame
        return frame

    return live.events(lambda: [feed.next_change()], fresh, lambda: live.still_allowed(request))


routes = [
    *(route for station in STATIONS.values() for route in _station_routes(station)),
    Route("/sw.js", service_worker, methods=["GET"]),
]
