"""/reports: the page, its filter checked, the report built (report.py) and
drawn with its charts (charts.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quality.clock import utc_now
from quality.http.language import request_language
from quality.http.render import render
from quality.http.services import services
from quality.i18n import lazy, translator
from quality.pages.reports import charts
from quality.pages.reports.report import (
    Links,
    Tables,
    build,
    group_rows,
    local_stamp,
    report_filter,
    shift_rows,
)
from quality.permissions import guard
from quality.scan_filter import MAX_RANGE, ListRequest, ScanFilter, read_filter
from quality.summary.query import filter_choices


@guard("reports.view")
async def page(request: Request) -> Response:
    listing = read_filter(request.query_params, services(request).settings)
    context: dict = {"listing": listing, "values": listing.checked.values,
                     "errors": listing.checked.errors, "report": None,
                     "shift_labels": listing.filter.shifts.labels() if listing.filter.shifts else []}
    async with services(request).db.transaction() as cur:
        context["choices"] = await filter_choices(cur)
    if listing.ok:
        _check_span(listing, report_filter(listing.filter, utc_now()))
    if listing.ok:
        tables = Tables(listing.sort, listing.table_page("order_page"), listing.table_page("operator_page"))
        report = await build(services(request).db, listing.filter, tables=tables)
        links = Links(report)
        language = request_language(request, services(request).settings.language)
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
        })
    return render(request, "reports/page.html", context, status_code=200 if listing.ok else 400)


def _check_span(listing: ListRequest, ranged: ScanFilter) -> None:
    """A report reads every day of its range: `from` alone may not reach back
    further than a list's range may span."""
    assert ranged.start is not None and ranged.end is not None
    if ranged.end - ranged.start > MAX_RANGE:
        listing.checked.errors["from"] = lazy(
            "A report may span at most %(days)s days: choose a later From, or a To as well.",
            days=MAX_RANGE.days)


routes = [Route("/reports", page, methods=["GET"], name="reports")]
