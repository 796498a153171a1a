"""What an alert says, in words: one sentence for the banners, the /alerts
list, the e-mails and the webhook, translated where it is shown."""

from __future__ import annotations

from decimal import Decimal

from quality.alerts.rules import DAY, P_CHART, RATE
from quality.i18n import LazyText, lazy
from quality.stations import STATIONS


def plain(value: Decimal) -> str:
    """35.00 → "35", 12.50 → "12.5"."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def scope(station: str | None, order_code: str | None) -> str:
    """Where a rule looks: a station's title, an order, or both (translated where shown)."""
    if station and order_code:
        return lazy("%(station)s, order %(order)s", station=STATIONS[station].title, order=order_code)
    if station:
        return STATIONS[station].title
    return lazy("order %(order)s", order=order_code or "")


def rule_text(kind: str, period: str, pieces: int, threshold: Decimal | None,
              defect_code: str | None) -> LazyText:
    """What a rule watches, without its scope."""
    if kind == P_CHART and period == DAY:
        return lazy("a production day's rejection rate beyond its control limits, or 8 production days"
                    " in a row on one side of the centre line")
    if kind == P_CHART:
        return lazy("a shift's rejection rate beyond its control limits, or 8 shifts in a row on one"
                    " side of the centre line")
    if kind == RATE:
        return lazy("more than %(threshold)s%% of the last %(pieces)s scans rejected",
                    threshold=plain(threshold or Decimal(0)), pieces=pieces)
    if defect_code:
        return lazy("defect %(defect)s %(pieces)s times in a row", defect=defect_code, pieces=pieces)
    return lazy("the same defect %(pieces)s times in a row", pieces=pieces)


def alert_text(kind: str, period: str, value: Decimal, threshold: Decimal, station: str,
               order_code: str, rule_station: str | None, rule_order: str | None) -> LazyText:
    """What was found, where: the rule's scope, and the order of the scan that breached it."""
    where = scope(rule_station or station, rule_order or (order_code if not rule_station else None))
    if kind == P_CHART and period == DAY:
        return lazy("%(where)s: a p-chart signal; %(value)s%% rejected this production day"
                    " (UCL %(threshold)s%%).", where=where, value=plain(value), threshold=plain(threshold))
    if kind == P_CHART:
        return lazy("%(where)s: a p-chart signal; %(value)s%% rejected this shift (UCL %(threshold)s%%).",
                    where=where, value=plain(value), threshold=plain(threshold))
    if kind == RATE:
        return lazy("%(where)s: %(value)s%% of the last scans rejected (limit %(threshold)s%%).",
                    where=where, value=plain(value), threshold=plain(threshold))
    return lazy("%(where)s: the same defect %(value)s times in a row.", where=where, value=plain(value))
