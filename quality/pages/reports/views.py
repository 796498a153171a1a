"""/reports: the page, its filter checked, the report built (report.py) and
drawn with its charts (charts.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quality.clock import utc_now
from quality.defects import catalogue
from quality.http.language import request_language
from quality.http.render import render
from quality.http.services import services
from quality.http.writes import written_at
from quality.i18n import lazy, translator
from quality.pages.reports import charts, control
from quality.pages.reports.report import (
    Links,
    Report,
    build,
    group_rows,
    local_stamp,
    report_filter,
    shift_rows,
)
from quality.permissions import guard
from quality.scan_filter import MAX_RANGE, ListRequest, ScanFilter, read_filter


@guard("reports.view")
async def page(request: Request) -> Response:
    listing = read_filter(request.query_params, services(request).settings)
    context: dict = {"listing": listing, "values": listing.checked.values,
                     "errors": listing.checked.errors, "report": None,
                     "shift_labels": listing.filter.shifts.labels() if listing.filter.shifts else []}
    if listing.ok:
        _check_span(listing, report_filter(listing.filter, utc_now()))
    if listing.ok:
        report = await build(services(request).db, listing.filter, written_at=written_at(request))
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
            **await _control(request, report, links, language),
        })
    return render(request, "reports/page.html", context, status_code=200 if listing.ok else 400)


async def _control(request: Request, report: Report, links: Links, language: str) -> dict:
    """The p-chart with its points' table (each linked to its scans) and the
    Pareto charts of defects and of their categories."""
    async with services(request).db.transaction() as cur:
        categories = {defect.code: defect.category for defect in await catalogue(cur)}
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
