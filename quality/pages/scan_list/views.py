"""/scans: the filtered list, its totals, its live first page and its exports."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quality.http import live
from quality.http.errors import error_page
from quality.http.language import request_language
from quality.http.render import render
from quality.http.services import services
from quality.i18n import lazy
from quality.pages.scan_list import export, saved_views
from quality.pages.scan_list.groups import grouped
from quality.pages.scan_list.queries import fetch_page, totals
from quality.permissions import guard
from quality.saved_filters import saved
from quality.scan_filter import GROUPINGS, ListRequest, ScanFilter, read_filter
from quality.scans.feed import ScanWatcher
from quality.sse import event
from quality.summary.query import filter_choices

TEMPLATE = "scan_list/page.html"
ROWS_TEMPLATE = "scan_list/_rows.html"
GROUP_LABELS = {"order": lazy("Order"), "operator": lazy("Operator"), "defect": lazy("Defect"),
                "shift": lazy("Shift")}
assert tuple(GROUP_LABELS) == GROUPINGS


def _listing(request: Request) -> ListRequest:
    return read_filter(request.query_params, services(request).settings)


@guard("scans.view")
async def page(request: Request) -> Response:
    listing = _listing(request)
    context: dict[str, Any] = {
        "listing": listing, "filter": listing.filter, "values": listing.checked.values,
        "errors": listing.checked.errors,
        "shift_labels": listing.filter.shifts.labels() if listing.filter.shifts else [],
        "page": None, "grouping": None, "group_labels": GROUP_LABELS,
    }
    async with services(request).db.transaction() as cur:
        context["choices"] = await filter_choices(cur)
        context["saved"] = await saved(cur, request.state.user.id)
    if listing.ok and listing.group:
        # Groups read many summary rows, as the totals do: in the bulk lane.
        async with services(request).db.bulk.transaction() as cur:
            context["grouping"] = await grouped(cur, listing.filter, listing.group, listing.sort,
                                                listing.table_page("page"))
    elif listing.ok:
        async with services(request).db.transaction() as cur:
            context["page"] = await fetch_page(cur, listing.filter, before=listing.before,
                                               after=listing.after)
    # A history restore after a back/forward wants the whole page, not the block.
    block = None if request.headers.get("hx-history-restore-request") else "list_view"
    # The address bar gets the filter without its empty fields: short enough to share.
    values = listing.checked.values
    query = listing.filter.query(before=values.get("before"), after=values.get("after"),
                                 group=values.get("group"), sort=values.get("sort"), page=values.get("page"))
    return render(request, TEMPLATE, context, block=block, status_code=200 if listing.ok else 400,
                  headers={"HX-Push-Url": "/scans" + (f"?{query}" if query else "")})


@guard("scans.view")
async def totals_fragment(request: Request) -> Response:
    listing = _listing(request)
    if not listing.ok:
        return error_page(request, 400, lazy("The filter is not valid."))
    # A long filter's totals read many rows: in the bulk lane, with exports and reports.
    async with services(request).db.bulk.transaction() as cur:
        counted = await totals(cur, listing.filter)
    return render(request, "scan_list/_totals.html", {"totals": counted, "filter": listing.filter})


@guard("scans.view")
async def stream(request: Request) -> Response:
    """New scans matching the filter, as rendered rows for the top of the first page.
    Fed by the process's scan watcher: an open list costs no database work."""
    listing = _listing(request)
    if not listing.ok:
        return error_page(request, 400, lazy("The filter is not valid."))
    since = live.position(request) or 0
    language = request_language(request, services(request).settings.language)
    macros = services(request).renderer.macros(ROWS_TEMPLATE, language)
    # Live lists share the scan pages' stream bounds per user and per process.
    return live.LiveStream(request, _row_events(services(request).scan_watcher, listing.filter, since,
                                                macros, lambda: live.still_allowed(request)))


def _row_events(watcher: ScanWatcher, scan_filter: ScanFilter, since: int, macros: Any,
                allowed: Callable[[], Awaitable[bool]]) -> AsyncGenerator[bytes, None]:
    """New matching scans as rows to put on top, newest first, each sent once."""
    feeds = [feed for key, feed in watcher.feeds.items()
             if scan_filter.station is None or scan_filter.station.holds(key)]
    sent: set[int] = set()

    def fresh() -> bytes | None:
        rows = sorted(
            (row for feed in feeds for row in feed.rows_after(since)
             if row.id not in sent and scan_filter.matches(row)),
            key=lambda row: (row.created_at, row.id), reverse=True)
        if not rows:
            return None
        sent.update(row.id for row in rows)
        return event("rows", max(sent), "".join(str(macros.row(row)) for row in rows))

    return live.events(lambda: [feed.next_change() for feed in feeds], fresh, allowed)


routes = [
    Route("/scans", page, methods=["GET"], name="scan_list"),
    Route("/scans/totals", totals_fragment, methods=["GET"], name="scan_list_totals"),
    Route("/scans/stream", stream, methods=["GET"], name="scan_list_stream"),
    *export.routes,
    *saved_views.routes,
]
