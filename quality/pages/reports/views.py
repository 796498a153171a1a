"""/reports: the page, its filter checked, the report built (report.py) and
drawn with its charts (charts.py)."""

from __future__ import annotations

from datetime import datetime

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quality.clock import utc_now
from quality.db import Database
from quality.defects import catalogue
from quality.http.htmx import is_htmx
from quality.http.language import request_language
from quality.http.render import render
from quality.http.services import services
from quality.http.writes import written_at
from quality.i18n import LazyText, lazy, translator
from quality.pages.reports import charts, control
from quality.pages.reports.report import (
    DEFAULT_DAYS,
    Links,
    Report,
    Tables,
    build,
    group_rows,
    local_stamp,
    report_filter,
    shift_rows,
)
from quality.permissions import guard
from quality.ranges import in_words, preset_choices, said
from quality.scan_filter import MAX_RANGE, ListRequest, ScanFilter, read_filter
from quality.summary.query import filter_choices

# An open report whose range includes now asks again this often; a report read
# this recently serves every page asking, so a page is at most their sum behind
# the floor, and however many pages are open, a filter's report is read at most
# once per FRESH_SECONDS.
REFRESH_SECONDS = 20
FRESH_SECONDS = 15
# Without a range of its own, a wall screen shows today.
WALL_RANGE = "today"


@guard("reports.view")
async def page(request: Request) -> Response:
    params = request.query_params
    wall = params.get("wall") == "1"
    if wall and not any(params.get(name) for name in ("range", "from", "to")):
        params = QueryParams([*params.multi_items(), ("range", WALL_RANGE)])
    listing = read_filter(params, services(request).settings)
    context: dict = {"listing": listing, "values": listing.checked.values,
                     "errors": listing.checked.errors, "report": None, "refresh": None,
                     "shift_labels": listing.filter.shifts.labels() if listing.filter.shifts else [],
                     "range_presets": preset_choices()}
    ranged = report_filter(listing.filter, utc_now()) if listing.ok else listing.filter
    if listing.ok:
        _check_span(listing, ranged)
    if listing.ok:
        tables = Tables(listing.sort, listing.table_page("order_page"), listing.table_page("operator_page"))
        watcher = services(request).scan_watcher
        asked = request.headers.get("if-none-match") if is_htmx(request) else None
        if asked == _etag(watcher.newest):  # a refresh, and no scan since
            return Response(status_code=304, headers={"ETag": asked})
        language = request_language(request, services(request).settings.language)
        db, wrote = services(request).db, written_at(request)
        answer = await services(request).answers.get(
            # Per language: the report names its defects in the reader's.
            ("report", listing.filter.query(), ranged.start, ranged.end, tables, language), watcher.newest,
            # A page opened reads its own; refreshes share.
            lambda mark, age: asked is not None and (mark >= watcher.newest or age < FRESH_SECONDS),
            lambda: _read(db, listing.filter, tables, wrote, language),
            holds=db.read_holds(), written_at=wrote)
        if asked == _etag(answer.mark):
            return Response(status_code=304, headers={"ETag": asked})
        report, categories = answer.value
        links = Links(report)
        context.update({
            "report": report, "links": links,
            "charts": charts.for_report(report, links, translator(language), language),
            "by_shift": shift_rows(report, links, language),
            "by_order": group_rows(report.by_order, "order", links, language),
            "by_operator": group_rows(report.by_operator, "operator", links, language),
            "by_defect": [(code, name, scans, href) for (code, name, scans), href in zip(
                report.by_defect, links.rejected_with([code for code, _, _ in report.by_defect]),
                strict=True)],
            "stamp": lambda at: local_stamp(at, report.shifts),
            **_control(report, categories, links, language),
            "range_words": _range_words(listing, report.start, report.end, request),
            "etag": _etag(answer.mark),
            "refresh": REFRESH_SECONDS if report.start <= utc_now() < report.end else None,
        })
    if not is_htmx(request):  # the form's pick lists; an htmx request gets the report's body alone
        async with services(request).db.transaction() as cur:
            context["choices"] = await filter_choices(
                cur, request_language(request, services(request).settings.language))
    # A refresh gets the report's body alone, in place: the page keeps its scroll.
    return render(request, "reports/wall.html" if wall else "reports/page.html", context,
                  block="report_body", status_code=200 if listing.ok else 400)


def _etag(mark: int) -> str:
    """A report's version: the newest scan the process had seen when it was read."""
    return f'"scans-{mark}"'


def _range_words(listing: ListRequest, start: datetime, end: datetime, request: Request) -> LazyText:
    """The report's range said in words; without a range asked, the default days'."""
    settings = services(request).settings
    language = request_language(request, settings.language)
    values, now = listing.checked.values, utc_now()
    if not any(values.get(name) for name in ("range", "from", "to")):
        return lazy("Last %(days)s days, since %(start)s", days=DEFAULT_DAYS,
                    start=said(start, now, settings.timezone, language))
    return in_words(values.get("range"), start, end, now, settings.timezone, language)


async def _read(db: Database, scan_filter: ScanFilter, tables: Tables, written: float | None,
                language: str) -> tuple[Report, dict[str, str]]:
    """A report and its defects' categories: one shared answer, so the pages
    refreshing it cost the database one reading."""
    report = await build(db, scan_filter, tables=tables, written_at=written, language=language)
    defects = await db.read(catalogue, written_at=written)
    return report, {defect.code: defect.category for defect in defects}


def _control(report: Report, categories: dict[str, str], links: Links, language: str) -> dict:
    """The p-chart with its points' table (each linked to its scans) and the
    Pareto charts of defects and of their categories."""
    by_category: dict[str, int] = {}
    for code, _name, rejected in report.by_defect:
        name = categories.get(code) or translator(language)(lazy("no category"))
        by_category[name] = by_category.get(name, 0) + rejected
    chart = control.p_chart(report)
    drawn = charts.control_charts(
        chart, control.pareto((f"{code} {name}", rejected) for code, name, rejected in report.by_defect),
        control.pareto(by_category.items()), translator(language), language)
    return {"p_chart": chart, "control_charts": drawn,
            "p_points": [(point, links.scans(point.start, point.end)) for point in chart.points]}


def _check_span(listing: ListRequest, ranged: ScanFilter) -> None:
    """A report reads every day of its range: `from` alone may not reach back
    further than a list's range may span."""
    assert ranged.start is not None and ranged.end is not None
    if ranged.end - ranged.start > MAX_RANGE:
        listing.checked.errors["from"] = lazy(
            "A report may span at most %(days)s days: choose a later From, or a To as well.",
            days=MAX_RANGE.days)


routes = [Route("/reports", page, methods=["GET"], name="reports")]
