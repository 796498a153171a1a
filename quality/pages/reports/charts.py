"""The reports' charts as inline SVG, drawn on the server: readable without
JavaScript, printable, with a title, a description and a tooltip per mark for
screen readers. A chart is an image: it holds nothing a keyboard stops at
(the page gives each chart one link to its data table, whose figures link to
their lists); a pointer follows a mark's `data-href` to the scan list behind
it (static/charts.js). Axis labels print exactly (steps of 1, 2 or 5), counts
with the language's separators."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from markupsafe import Markup, escape

from quality.i18n import count, lazy, percent
from quality.pages.reports.control import PChart
from quality.pages.reports.report import Links, Report

WIDTH = 640
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 28
# Axis steps, in percent: the first that covers the highest share in at most
# five steps, each printed exactly with the decimals it needs.
_RATE_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50)
_HEAT = "179,38,30"  # the heat map's red, from pale (no rejects) to full (the worst shift)


def for_report(report: Report, links: Links, tr: Callable[[str], str], language: str) -> dict[str, Markup]:
    """The three charts of a report: rejection rate by day, top defects, day by shift;
    their texts translated with `tr` (quality.i18n.translator) and shares written
    as `language` writes them, their marks linking where the report's tables
    link for the same figures."""
    return {
        "rate_by_day": _rate_line(report, links, tr, language),
        "top_defects": _defect_bars(report, links, tr, language),
        "heat_map": _heat_map(report, links, tr, language),
    }


def _svg(chart_id: str, title: str, description: str, height: int, body: str) -> Markup:
    return Markup(
        f'<svg class="chart" id="{chart_id}" viewBox="0 0 {WIDTH} {height}" role="img"'
        f' aria-labelledby="{chart_id}-title {chart_id}-desc" data-testid="{chart_id}">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>{body}</svg>'
    )


def _escaped(text: str) -> str:
    """Text escaped for HTML as a plain string, to fill with `%`: a mark's tooltip
    is escaped once per chart, not once per mark, since what fills it (days,
    counts, shares as `percent` writes them, escaped labels) holds nothing to escape."""
    return str(escape(text))


def _rate_line(report: Report, links: Links, tr: Callable[[str], str], language: str) -> Markup:
    height = 220
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    rates = [report.by_day.get(day) for day in report.days]
    values = [figures.rejection_rate for figures in rates if figures and figures.rejection_rate is not None]
    top, ticks, decimals = rate_axis(max(values, default=0.0))
    step = plot_w / max(len(report.days) - 1, 1)

    def x(i: int) -> float:
        return LEFT + i * step

    def y(rate: float) -> float:
        return TOP + plot_h * (1 - rate / top)

    parts = [f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}"/>',
             f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>']
    for rate in ticks:
        parts.append(f'<text x="{LEFT - 6}" y="{y(rate) + 4:.1f}" text-anchor="end">'
                     f'{percent(rate, language, decimals)}</text>')
    label_every = max(1, len(report.days) // 10)
    tip_text = _escaped(tr(lazy("%(day)s: %(rate)s rejected (%(rejected)s of %(pieces)s pieces)")))
    segment: list[str] = []
    lines: list[list[str]] = [segment]
    for i, day in enumerate(report.days):
        cx = f"{x(i):.1f}"
        if i % label_every == 0:
            parts.append(_day_label(x(i), height - 8, day))
        figures = report.by_day.get(day)
        rate = figures.rejection_rate if figures else None
        if rate is None:
            segment = []
            lines.append(segment)
            continue
        cy = f"{y(rate):.1f}"
        segment.append(f"{cx},{cy}")
        start, end = report.shifts.day_span(day)
        pieces = figures.approved + figures.rejected
        tip = tip_text % {"day": day.isoformat(), "rate": percent(rate, language),
                          "rejected": count(figures.rejected, language), "pieces": count(pieces, language)}
        parts.append(f'<circle class="point" cx="{cx}" cy="{cy}" r="4"'
                     f' data-href="{escape(links.scans(start, end))}"><title>{tip}</title></circle>')
    polylines = [f'<polyline class="line" points="{" ".join(points)}"/>' for points in lines if points]
    return _svg("rate-by-day", tr(lazy("Rejection rate by day")),
                tr(lazy("Share of pieces rejected (by their latest scan) on each production day; "
                        "each point links to that day's scans.")), height, "".join(polylines + parts))


def rate_axis(highest: float) -> tuple[float, list[float], int]:
    """The rate axis for shares up to `highest` (0 to 1): its top, its ticks
    (0 and each step up to the top: at most five steps of 1, 2 or 5 times 10^k
    percent) and the decimals that print every tick exactly."""
    wanted = max(highest, 0.001) * 100
    step = next((step for step in _RATE_STEPS if wanted <= step * 5), 100)
    steps = max(1, -int(-wanted // step))  # ceil, in steps
    decimals = 1 if step < 1 else 0
    ticks = [round(n * step, decimals) / 100 for n in range(steps + 1)]
    return ticks[-1], ticks, decimals


def _day_label(x: float, y: float, day: date) -> str:
    """A day under the axis, kept inside the chart: the last ones end at their mark."""
    anchor = "end" if x > WIDTH - RIGHT - 16 else "middle"
    return f'<text x="{x:.1f}" y="{y}" text-anchor="{anchor}">{day:%d.%m}</text>'


def _defect_bars(report: Report, links: Links, tr: Callable[[str], str], language: str) -> Markup:
    shown = report.by_defect[:8]
    hrefs = links.rejected_with([code for code, _, _ in shown])
    bar_h, gap, label_w = 22, 6, 220
    height = max(TOP + len(shown) * (bar_h + gap) + 8, 60)
    most = max([scans for _, _, scans in shown] or [1])
    parts = []
    for i, (code, name, scans) in enumerate(shown):
        top = TOP + i * (bar_h + gap)
        width = (WIDTH - label_w - 60) * scans / most
        href = escape(hrefs[i])
        written = count(scans, language)
        tip = tr(lazy("%(code)s %(name)s: %(count)s rejected scans", code=code, name=name, count=written))
        parts.append(
            f'<g class="mark" data-href="{href}"><text x="{label_w - 8}" y="{top + bar_h * 0.7:.1f}"'
            f' text-anchor="end">{escape(code)} {escape(name[:28])}</text>'
            f'<rect class="bar" x="{label_w}" y="{top}" width="{max(width, 1):.1f}" height="{bar_h}">'
            f'<title>{escape(tip)}</title></rect>'
            f'<text x="{label_w + width + 6:.1f}" y="{top + bar_h * 0.7:.1f}">{written}</text></g>')
    if not shown:
        parts.append(f'<text x="{WIDTH / 2}" y="36" text-anchor="middle">'
                     f'{escape(tr(lazy("No rejected scans in this range.")))}</text>')
    return _svg("top-defects", tr(lazy("Top defects")),
                tr(lazy("Rejected scans per defect code, most frequent first; each bar links to those"
                        " scans.")),
                height, "".join(parts))


def _heat_map(report: Report, links: Links, tr: Callable[[str], str], language: str) -> Markup:
    labels = report.shifts.labels()
    cell_h, label_w = 26, 96
    legend_y = TOP + len(labels) * cell_h + 30  # the scale, under the days
    height = legend_y + 30
    cell_w = (WIDTH - label_w - RIGHT) / max(len(report.days), 1)
    worst = max([f.rejection_rate or 0 for f in report.by_shift.values()] + [0.01])
    tip_text = _escaped(tr(lazy("%(day)s shift %(shift)s (%(hours)s): %(rate)s rejected, %(scans)s scans")))
    no_pieces = _escaped(tr(lazy("no pieces")))
    # What every row repeats, written once: a 90-day map has 270 cells.
    xs = [f"{label_w + col * cell_w:.1f}" for col in range(len(report.days))]
    iso_days = [day.isoformat() for day in report.days]
    size = f'width="{max(cell_w - 1, 1):.1f}" height="{cell_h - 2}"'
    parts = []
    for row, label in enumerate(labels):
        y = TOP + row * cell_h
        hours = _escaped(label)
        parts.append(f'<text x="{label_w - 6}" y="{y + cell_h * 0.65:.1f}" text-anchor="end">{hours}</text>')
        for col, day in enumerate(report.days):
            figures = report.by_shift.get((day, row))
            rate = figures.rejection_rate if figures else None
            # From pale to full red with the rejection rate; grey where nothing was scanned.
            fill = "#e6e8eb" if rate is None else f"rgba({_HEAT},{0.08 + 0.92 * rate / worst:.2f})"
            start, end = report.shifts.span(day, row)
            scanned = count(figures.scans if figures else 0, language)
            tip = tip_text % {"day": iso_days[col], "shift": row + 1, "hours": hours, "scans": scanned,
                              "rate": no_pieces if rate is None else percent(rate, language)}
            parts.append(f'<rect x="{xs[col]}" y="{y}" {size} fill="{fill}"'
                         f' data-href="{escape(links.scans(start, end))}"><title>{tip}</title></rect>')
    label_every = max(1, len(report.days) // 10)
    for col, day in enumerate(report.days):
        if col % label_every == 0:
            parts.append(_day_label(label_w + (col + 0.5) * cell_w, legend_y - 12, day))
    parts.append(_heat_legend(label_w, legend_y, worst, no_pieces, language))
    return _svg("heat-map", tr(lazy("Rejection rate by day and shift")),
                tr(lazy("One cell per production day and shift, darker red for a higher share of rejected"
                        " pieces; each cell links to that shift's scans.")), height, "".join(parts))


def control_charts(chart: PChart, by_defect: list[tuple[str, int, float]],
                   by_category: list[tuple[str, int, float]], tr: Callable[[str], str],
                   language: str) -> dict[str, Markup]:
    """The p-chart and the two Pareto charts (control.py computes them). No mark
    is a link: the page's tables beside them hold the links (nothing interactive
    inside an image)."""
    return {
        "p_chart": _p_chart(chart, tr, language),
        "pareto_defects": _pareto("pareto-defects", tr(lazy("Pareto of defects")), by_defect, tr, language),
        "pareto_categories": _pareto("pareto-categories", tr(lazy("Pareto of defect categories")),
                                     by_category, tr, language),
    }


def _p_chart(chart: PChart, tr: Callable[[str], str], language: str) -> Markup:
    height, label_w = 240, 64
    plot_w, plot_h = WIDTH - LEFT - label_w, height - TOP - BOTTOM
    points = chart.points
    top = min(1.0, max([0.05, *(max(point.ucl, point.p) for point in points)]) * 1.1)
    step = plot_w / max(len(points) - 1, 1)

    def x(i: int) -> float:
        return LEFT + i * step

    def y(rate: float) -> float:
        return TOP + plot_h * (1 - rate / top)

    parts = [f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>',
             f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>']
    for tick in range(5):
        rate = top * tick / 4
        parts.append(f'<text x="{LEFT - 6}" y="{y(rate) + 4:.1f}" text-anchor="end">'
                     f'{percent(rate, language, 0)}</text>')
    if chart.centre is None or not points:
        parts.append(f'<text x="{WIDTH / 2}" y="{height / 2}" text-anchor="middle">'
                     f'{escape(tr(lazy("No pieces in this range.")))}</text>')
    else:
        end = x(len(points) - 1)
        # Each point's own limits, drawn as steps half-way between points.
        for name, limit in (("ucl", lambda point: point.ucl), ("lcl", lambda point: point.lcl)):
            steps = []
            for i, point in enumerate(points):
                left, right = max(LEFT, x(i) - step / 2), min(end, x(i) + step / 2)
                if len(points) == 1:
                    right = end + 1  # one point: a short bar, not nothing
                steps += [f"{left:.1f},{y(limit(point)):.1f}", f"{right:.1f},{y(limit(point)):.1f}"]
            parts.append(f'<polyline class="limit {name}" points="{" ".join(steps)}"/>')
        centre_y = y(chart.centre)
        parts.append(f'<line class="centre" x1="{LEFT}" y1="{centre_y:.1f}" x2="{end:.1f}"'
                     f' y2="{centre_y:.1f}"/>')
        for label, at in (("UCL", points[-1].ucl), ("p̄", chart.centre), ("LCL", points[-1].lcl)):
            parts.append(f'<text class="limit-label" x="{end + 6:.1f}" y="{y(at) + 4:.1f}">{label}</text>')
        drawn = " ".join(f"{x(i):.1f},{y(point.p):.1f}" for i, point in enumerate(points))
        parts.append(f'<polyline class="line" points="{drawn}"/>')
        tip_text = _escaped(tr(lazy(
            "%(label)s: %(rate)s rejected of %(pieces)s pieces; limits %(lcl)s to %(ucl)s")))
        signal_text = _escaped(tr(lazy("signal")))
        label_every = max(1, len(points) // 10)
        for i, point in enumerate(points):
            tip = tip_text % {"label": point.label, "rate": percent(point.p, language),
                              "pieces": point.pieces, "lcl": percent(point.lcl, language),
                              "ucl": percent(point.ucl, language)}
            if point.signal:  # a larger ringed mark, so colour is not the only cue
                parts.append(f'<circle class="point signal" cx="{x(i):.1f}" cy="{y(point.p):.1f}" r="6">'
                             f"<title>{tip} — {signal_text}</title></circle>")
            else:
                parts.append(f'<circle class="point" cx="{x(i):.1f}" cy="{y(point.p):.1f}" r="3">'
                             f"<title>{tip}</title></circle>")
            if i % label_every == 0:
                parts.append(f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="middle">'
                             f"{escape(point.label[5:])}</text>")
    signals = sum(point.signal for point in points)
    description = tr(lazy("Share of pieces rejected per %(unit)s with the centre line p̄ and each point's"
                          " control limits UCL and LCL (3 sigma); %(signals)s points signal: beyond a"
                          " limit or in a run of 8 on one side. The table below lists each point and"
                          " links to its scans.",
                          unit=lazy("shift") if chart.per_shift else lazy("day"), signals=signals))
    return _svg("p-chart", tr(lazy("p-chart of the rejection rate")), description, height, "".join(parts))


def _pareto(chart_id: str, title: str, items: list[tuple[str, int, float]], tr: Callable[[str], str],
            language: str) -> Markup:
    height, right_w = 240, 44
    shown = items[:12]
    plot_w, plot_h = WIDTH - LEFT - right_w, height - TOP - BOTTOM - 14
    most = max([rejected for _, rejected, _ in shown] or [1])
    slot = plot_w / max(len(shown), 1)
    parts = [f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>']
    for tick in range(5):
        share = tick / 4
        at = TOP + plot_h * (1 - share)
        parts.append(f'<text x="{LEFT - 6}" y="{at + 4:.1f}" text-anchor="end">'
                     f'{count(round(most * share), language)}</text>'
                     f'<text x="{LEFT + plot_w + 6}" y="{at + 4:.1f}">{percent(share, language, 0)}</text>')
    tip_text = _escaped(tr(lazy("%(label)s: %(count)s rejected scans, %(share)s cumulative")))
    line = []
    for i, (label, rejected, share) in enumerate(shown):
        left = LEFT + i * slot + slot * 0.15
        bar_h = plot_h * rejected / most
        tip = tip_text % {"label": _escaped(label), "count": count(rejected, language),
                          "share": percent(share, language)}
        parts.append(f'<rect class="bar" x="{left:.1f}" y="{TOP + plot_h - bar_h:.1f}"'
                     f' width="{slot * 0.7:.1f}" height="{max(bar_h, 1):.1f}"><title>{tip}</title></rect>'
                     f'<text x="{left + slot * 0.35:.1f}" y="{height - 8}" text-anchor="middle">'
                     f"{escape(label[:12])}</text>")
        line.append(f"{left + slot * 0.35:.1f},{TOP + plot_h * (1 - share):.1f}")
    if shown:
        parts.append(f'<polyline class="cumulative" points="{" ".join(line)}"/>')
        for point in line:
            cx, cy = point.split(",")
            parts.append(f'<circle class="cumulative-point" cx="{cx}" cy="{cy}" r="3"/>')
    else:
        parts.append(f'<text x="{WIDTH / 2}" y="{height / 2}" text-anchor="middle">'
                     f'{escape(tr(lazy("No rejected scans in this range.")))}</text>')
    return _svg(chart_id, title, tr(lazy("Rejected scans per group, most frequent first, with the cumulative"
                                         " percentage as a line (right axis).")), height, "".join(parts))


def _heat_legend(x: float, y: float, worst: float, no_pieces: str, language: str) -> str:
    """The heat map's scale: pale for no rejected pieces to full red for the
    worst shift's share, and the grey of a shift without pieces."""
    width = 160
    return (f'<g class="legend"><defs><linearGradient id="heat-map-scale">'
            f'<stop offset="0" stop-color="rgb({_HEAT})" stop-opacity="0.08"/>'
            f'<stop offset="1" stop-color="rgb({_HEAT})" stop-opacity="1"/></linearGradient></defs>'
            f'<text x="{x - 6}" y="{y + 11}" text-anchor="end">{percent(0, language, 0)}</text>'
            f'<rect x="{x}" y="{y}" width="{width}" height="14" fill="url(#heat-map-scale)"/>'
            f'<text x="{x + width + 6}" y="{y + 11}">{percent(worst, language)}</text>'
            f'<rect x="{x + width + 80}" y="{y}" width="14" height="14" fill="#e6e8eb"/>'
            f'<text x="{x + width + 100}" y="{y + 11}">{no_pieces}</text></g>')
