"""/admin/audit: the audit log, read-only, newest first, filtered by who,
what and when, a page at a time (keyset: each page starts below the last
id shown, so paging stays fast however long the log grows)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, tzinfo

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quality.audit import Filters, entries
from quality.clock import FIRST_DAY, LAST_DAY, in_calendar, to_utc
from quality.fields import TEXT, Field, trim, validate
from quality.http.render import render
from quality.http.services import services
from quality.i18n import lazy
from quality.permissions import guard

TEMPLATE = "admin/audit.html"
PAGE = 50
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
FIELDS = (
    Field("actor", lazy("Who"), TEXT, "ana.pop", 64, trim, required=False),
    Field("action", lazy("What"), re.compile(r"[a-z.]*"), lazy("user or role.permissions"), 64, trim,
          required=False),
    Field("since", lazy("From"), DAY, "2026-01-31", 10, trim, required=False),
    Field("until", lazy("To"), DAY, "2026-01-31", 10, trim, required=False),
)


@guard("admin.audit")
async def audit_page(request: Request) -> Response:
    checked = validate(request.query_params, FIELDS)
    days = {key: _day(checked.values[key]) for key in ("since", "until")}
    for key, day in days.items():
        if key in checked.errors or not checked.values[key]:
            continue
        if day is None:
            checked.errors[key] = lazy("Not a date in the calendar.")
        elif not in_calendar(day):
            checked.errors[key] = lazy("Choose a day between %(first)s and %(last)s.",
                                       first=FIRST_DAY, last=LAST_DAY)
    before_id = _before(request)
    found = []
    if checked.ok:
        zone = services(request).settings.timezone
        filters = Filters(
            actor=checked.values["actor"], action=checked.values["action"],
            since=_utc(days["since"], zone) if days["since"] else None,
            until=_utc(days["until"] + timedelta(days=1), zone) if days["until"] else None,
        )
        async with services(request).db.transaction() as cur:
            found = await entries(cur, filters, before_id, PAGE + 1)
    context = {
        "entries": found[:PAGE], "values": checked.values, "errors": checked.errors,
        "older": found[PAGE - 1].id if len(found) > PAGE else None,
        "query": {key: value for key, value in checked.values.items() if value},
    }
    return render(request, TEMPLATE, context, status_code=200 if checked.ok else 422)


def _before(request: Request) -> int | None:
    value = request.query_params.get("before", "")
    if not value:
        return None
    if not value.isdigit() or len(value) > 19:
        raise HTTPException(400, lazy("That page of the audit log does not exist."))
    return int(value)


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _utc(day: date, zone: tzinfo) -> datetime:
    """Midnight of a plant day, as the naive UTC the log stores."""
    return to_utc(datetime.combine(day, time(), tzinfo=zone))


routes = [Route("/admin/audit", audit_page, methods=["GET"])]
