"""/alerts: the alerts fired, filtered by station, order, rule, state and
date, a page at a time (keyset, as the audit log: each page starts below the
last id shown); one alert with the scans that caused it; acknowledging with a comment.
And the live banners: every supervisor page (/scans, /reports, /alerts) and
the stations whose rules ask for it show the open alerts within a second or
two of the poll that finds them, over the live machinery of quality/http/live.py."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable
from datetime import date, datetime, time, timedelta

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from quality.alert_changes import acknowledge
from quality.alerts.engine import OpenAlert
from quality.alerts.history import Filters, causes, find, history
from quality.alerts.text import alert_text
from quality.audit import Actor
from quality.clock import to_utc
from quality.codes import ORDER
from quality.fields import PAGE_LINK, TEXT, Field, page_link, trim, validate
from quality.http import live
from quality.http.language import request_language
from quality.http.render import render
from quality.http.services import services
from quality.i18n import lazy
from quality.permissions import guard
from quality.session_cache import User
from quality.sse import event
from quality.stations import STATIONS

PAGE = 100
SUPERVISOR_PAGES = ("/scans", "/reports", "/alerts")
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
STATES = {"open": lazy("open"), "acknowledged": lazy("acknowledged")}


def _filter_fields(request: Request) -> tuple[Field, ...]:
    codes = services(request).settings.codes
    return (
        Field("station", lazy("Station"), TEXT, "fg", 20, trim, required=False, choices=STATIONS),
        Field("order", lazy("Order"), ORDER.pattern(codes), "CP00012345", 32, required=False),
        Field("rule", lazy("Rule"), re.compile(r"[0-9]{1,9}"), "3", 9, trim, required=False),
        Field("state", lazy("State"), TEXT, "open", 20, trim, required=False, choices=STATES),
        Field("since", lazy("From"), DAY, "2026-01-31", 10, trim, required=False),
        Field("until", lazy("To"), DAY, "2026-01-31", 10, trim, required=False),
        PAGE_LINK,
    )


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@guard("alerts.view")
async def alerts_page(request: Request) -> Response:
    checked = validate(request.query_params, _filter_fields(request))
    days = {key: _day(checked.values[key]) for key in ("since", "until")}
    for key in days:
        if checked.values[key] and key not in checked.errors and days[key] is None:
            checked.errors[key] = lazy("Not a date in the calendar.")
    before = page_link(checked)
    found = []
    if checked.ok:
        zone = services(request).settings.timezone
        since, until = days["since"], days["until"]
        filters = Filters(
            station=checked.values["station"], order=checked.values["order"],
            rule=int(checked.values["rule"]) if checked.values["rule"] else None,
            state=checked.values["state"],
            since=to_utc(datetime.combine(since, time()), zone) if since else None,
            until=to_utc(datetime.combine(until + timedelta(days=1), time()), zone) if until else None,
        )
        async with services(request).db.transaction() as cur:
            found = await history(cur, filters, before, PAGE + 1)
    return render(request, "alerts/list.html",
                  {"alerts": found[:PAGE], "values": checked.values, "errors": checked.errors,
                   "states": STATES, "done": request.query_params.get("done") == "acknowledged",
                   "older": found[PAGE - 1].id if len(found) > PAGE else None,
                   "query": {key: value for key, value in checked.values.items() if value}},
                  status_code=200 if checked.ok else 422)


@guard("alerts.view")
async def alert_page(request: Request) -> Response:
    async with services(request).db.transaction() as cur:
        alert = await find(cur, request.path_params["alert_id"])
        if alert is None:
            raise HTTPException(404, lazy("There is no such alert."))
        scans = await causes(cur, alert)
    return render(request, "alerts/alert.html", {"alert": alert, "scans": scans, "errors": {}})


COMMENT = Field("comment", lazy("Comment"), TEXT, lazy("Die changed, line restarted"), 500, trim,
                missing=lazy("Say what was done about it."))


@guard("alerts.view")
async def acknowledge_alert(request: Request) -> Response:
    alert_id = request.path_params["alert_id"]
    checked = validate(await request.form(), (COMMENT,))
    if checked.ok:
        alert = await services(request).db.run(acknowledge, Actor.of(request), alert_id,
                                               checked.values["comment"])
        if alert is None:
            raise HTTPException(404, lazy("There is no such alert."))
        await services(request).alerts.refresh()
        return RedirectResponse("/alerts?done=acknowledged", 303)
    async with services(request).db.transaction() as cur:
        alert = await find(cur, alert_id)
        if alert is None:
            raise HTTPException(404, lazy("There is no such alert."))
        scans = await causes(cur, alert)
    return render(request, "alerts/alert.html", {"alert": alert, "scans": scans, "errors": checked.errors},
                  status_code=422)


def banner_stream(request: Request, user: User) -> str | None:
    """The stream a page's alert banner listens to, if it has one: the open
    alerts on the supervisors' pages, those meant for the station at a station."""
    path = request.url.path
    if path in SUPERVISOR_PAGES and user.can("alerts.view"):
        return "/alerts/stream"
    for station in STATIONS.values():
        if path == station.path and user.can(station.permission):
            return _station_stream(station.key)
    return None


def _station_stream(key: str) -> str:
    return f"/alerts/stream/{key}"


async def stream(request: Request) -> Response:
    board = services(request).alerts.board
    return live.LiveStream(request, _banner_events(request, lambda: board.open, False))


async def station_stream(request: Request) -> Response:
    board = services(request).alerts.board
    key = request.scope["route"].path.rsplit("/", 1)[1]
    return live.LiveStream(request, _banner_events(request, lambda: board.at_station(key), True))


def _banner_events(request: Request, shown: Callable[[], tuple[OpenAlert, ...]],
                   at_station: bool) -> AsyncGenerator[bytes, None]:
    """The banner, sent whole whenever the open alerts change (and once at the start)."""
    board = services(request).alerts.board
    renderer = services(request).renderer
    language = request_language(request, services(request).settings.language)
    last: tuple[OpenAlert, ...] | None = None

    def fresh() -> bytes | None:
        nonlocal last
        alerts = shown()
        if alerts == last:
            return None
        last = alerts
        texts = [(alert, alert_text(alert.kind, alert.period, alert.value, alert.threshold,
                                    alert.station, alert.order_code, alert.rule_station, alert.rule_order))
                 for alert in alerts]
        html = str(renderer.macros("alerts/_banner.html", language).banner(texts, at_station))
        return event("alerts", board.version, html)

    return live.events(lambda: [board.next_change()], fresh, lambda: live.still_allowed(request))


routes = [
    Route("/alerts", alerts_page, methods=["GET"]),
    Route("/alerts/{alert_id:int}", alert_page, methods=["GET"]),
    Route("/alerts/{alert_id:int}/acknowledge", acknowledge_alert, methods=["POST"]),
    Route("/alerts/stream", guard("alerts.view")(stream), methods=["GET"]),
    *(Route(_station_stream(key), guard(station.permission)(station_stream), methods=["GET"])
      for key, station in STATIONS.items()),
]
