"""/scans: the filtered list, its totals, its live first page and its exports."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from quality.clock import utc_now
from quality.http import live
from quality.http.errors import error_page
from quality.http.htmx import is_htmx
from quality.http.language import request_language
from quality.http.render import render
from quality.http.services import services
from quality.http.writes import written_at
from quality.i18n import lazy
from quality.pages.scan_list import export, saved_views
from quality.pages.scan_list.groups import grouped
from quality.pages.scan_list.queries import fetch_page, totals
from quality.permissions import guard
from quality.ranges import in_words, preset_choices
from quality.saved_filters import saved
from quality.scan_filter import FILTER_NAMES, GROUPINGS, ListRequest, ScanFilter, read_filter
from quality.scans.feed import ScanWatcher
from quality.sse import event
from quality.summary.figures import Figures
from quality.summary.query import filter_choices

TEMPLATE = "scan_list/page.html"
ROWS_TEMPLATE = "scan_list/_rows.html"
# Every parameter whose error is shown beside its field.
RESULT_FIELDS = (*FILTER_NAMES, "group", "sort", "all", "before", "after")
GROUP_LABELS = {"order": lazy("Order"), "operator": lazy("Operator"), "defect": lazy("Defect"),
                "shift": lazy("Shift")}
assert tuple(GROUP_LABELS) == GROUPINGS


def _listing(request: Request) -> ListRequest:
    return read_filter(request.query_params, services(request).settings)


@guard("scans.view")
async def page(request: Request) -> Response:
    listing = _listing(request)
    if listing.ok and not is_htmx(request) and _has_empty_fields(request):
        # The form sent by the browser itself (Enter before the page's script
        # has loaded, or without it): the same list, at the address htmx shows.
        return RedirectResponse(_address(listing), 303)
    # A history restore after a back/forward wants the whole page; the filter
    # form's own requests get its results only, so what is being typed stays.
    results_only = is_htmx(request) and not request.headers.get("hx-history-restore-request")
    context: dict[str, Any] = {
        "listing": listing, "filter": listing.filter, "values": listing.checked.values,
        "errors": listing.checked.errors, "field_names": RESULT_FIELDS, "oob": results_only,
        "shift_labels": listing.filter.shifts.labels() if listing.filter.shifts else [],
        "range_presets": preset_choices(), "page": None, "grouping": None, "group_labels": GROUP_LABELS,
    }
    async with services(request).db.transaction() as cur:
        context["choices"] = await filter_choices(
            cur, request_language(request, services(request).settings.language))
        context["saved"] = await saved(cur, request.state.user.id)
    if not listing.ok:
        # A filter being corrected: its errors beside the fields, the results
        # and the address bar left as they were.
        if results_only:
            return render(request, TEMPLATE, context, block=["filter_status", "field_errors"],
                          status_code=400, headers={"HX-Reswap": "none", "HX-Push-Url": "false"})
        return render(request, TEMPLATE, context, status_code=400)
    if listing.group:
        # Groups read many summary rows, as the totals do: in the bulk lane, on
        # the replica while it keeps up, in one snapshot.
        context["grouping"] = await services(request).db.read(
            grouped, listing.filter, listing.group, listing.sort, listing.table_page("page"),
            bulk=True, snapshot=True, written_at=written_at(request))
    elif listing.before is None and listing.after is None:
        # The live first page, which new scans join as they come: the primary.
        async with services(request).db.transaction() as cur:
            context["page"] = await fetch_page(cur, listing.filter)
    else:  # a page further on: the replica may answer
        context["page"] = await services(request).db.read(
            fetch_page, listing.filter, before=listing.before, after=listing.after,
            written_at=written_at(request))
    settings = services(request).settings
    context["range_words"] = in_words(listing.checked.values.get("range"), listing.filter.start,
                                      listing.filter.end, utc_now(), settings.timezone,
                                      request_language(request, settings.language))
    blocks = ["list_results", "filter_status", "field_errors"] if results_only else None
    return render(request, TEMPLATE, context, block=blocks, headers={"HX-Push-Url": _address(listing)})


def _address(listing: ListRequest) -> str:
    """The list's address: its filter without empty fields, short enough to share."""
    values = listing.checked.values
    query = listing.filter.query(before=values.get("before"), after=values.get("after"),
                                 group=values.get("group"), sort=values.get("sort"), page=values.get("page"))
    return "/scans" + (f"?{query}" if query else "")


def _has_empty_fields(request: Request) -> bool:
    return any(not value for _, value in request.query_params.multi_items())


@guard("scans.view")
async def totals_fragment(request: Request) -> Response:
    listing = _listing(request)
    if not listing.ok:
        return error_page(request, 400, lazy("The filter is not valid."))
    # A page following the floor asks again after the newest matching scan it
    # was told of (`v`); any answer read since that scan came serves it, so
    # pages open on one filter share one reading. A page just opened reads its
    # own: it shows rows the watcher may not have seen yet.
    told = live.position(request)
    watcher, db, wrote = services(request).scan_watcher, services(request).db, written_at(request)

    async def count() -> Figures:
        # A long filter's totals read many rows: in the bulk lane, with exports and
        # reports, on the replica when it keeps up; in one snapshot, so its several
        # statements read one moment.
        return await db.read(totals, listing.filter, bulk=True, snapshot=True, written_at=wrote)

    scan_filter = listing.filter
    answer = await services(request).answers.get(
        ("totals", scan_filter.query(), scan_filter.start, scan_filter.end), watcher.newest,
        lambda mark, _age: told is not None and mark >= told, count, holds=db.read_holds(), written_at=wrote)
    return render(request, "scan_list/_totals.html", {"totals": answer.value, "filter": scan_filter})


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
