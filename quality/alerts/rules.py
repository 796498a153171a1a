"""Alert rules: the one place they are checked, stored, listed and removed,
each change audited in its own transaction. The admin page (/admin/alerts)
and `quality alerts` both come here.

Three kinds, each scoped to a station, an order or both:
- `rejection_rate`: more than `threshold` % of the last `pieces` scans in
  scope rejected;
- `repeated_defect`: `pieces` scans in a row in scope with the same defect
  code (the rule's `defect_code`, or any rejecting code when it names none);
- `p_chart`: the rejection rate per shift, or per production day (the rule's
  `period`), out of its p-chart's control limits, or a run of such points on
  one side of its centre line (no threshold, no pieces, no defect code;
  windows.py's PChartWindow).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from quality.codes import APPROVED, DEFECT, ORDER
from quality.db import Cursor
from quality.fields import EMAIL, TEXT, Field, Validated, trim, validate
from quality.i18n import LANGUAGES, lazy
from quality.settings import CodePatterns
from quality.stations import STATIONS

RATE, REPEATED, P_CHART = "rejection_rate", "repeated_defect", "p_chart"
KINDS = {RATE: lazy("Rejection rate over the last scans"), REPEATED: lazy("Same defect in a row"),
         P_CHART: lazy("p-chart signal")}
SHIFT, DAY = "shift", "day"
# A p-chart rule's points (alert_rules.period, migration 0017).
PERIODS = {SHIFT: lazy("Shift"), DAY: lazy("Production day")}
MAX_PIECES = 1000
_NUMBER = re.compile(r"-?[0-9]{1,6}(\.[0-9]{1,2})?")


@dataclass(frozen=True, slots=True)
class Rule:
    id: int
    kind: str
    station: str | None
    order_code: str | None
    defect_code: str | None
    threshold: Decimal | None  # RATE only
    pieces: int
    at_station: bool
    recipients: tuple[str, ...]
    mail_language: str
    period: str = SHIFT  # P_CHART's points; SHIFT, meaning nothing, for the other kinds

    @property
    def limit(self) -> Decimal:
        """What the alert's value is compared with: the share, or the run's length."""
        return self.threshold if self.threshold is not None else Decimal(self.pieces)

    def matches(self, station: str, order_code: str) -> bool:
        return ((self.station is None or self.station == station)
                and (self.order_code is None or self.order_code == order_code))

    def described(self) -> dict[str, Any]:
        """The rule as the audit log and `quality alerts list` show it."""
        return {"kind": self.kind, "station": self.station, "order": self.order_code,
                "defect": self.defect_code,
                "threshold": None if self.threshold is None else str(self.threshold),
                "pieces": self.pieces, "period": self.period if self.kind == P_CHART else None,
                "at_station": self.at_station,
                "recipients": ",".join(self.recipients), "mail_language": self.mail_language}


def fields(codes: CodePatterns) -> tuple[Field, ...]:
    """A rule's fields, as the admin form and the terminal give them."""
    return (
        Field("kind", lazy("Kind"), TEXT, RATE, 20, trim, choices=KINDS),
        Field("station", lazy("Station"), TEXT, "fg", 20, trim, required=False, choices=STATIONS),
        Field("order", lazy("Order"), ORDER.pattern(codes), "CP00012345", 32, required=False),
        Field("defect", lazy("Defect code"), DEFECT.pattern(codes), "104", 3, required=False),
        Field("threshold", lazy("Rejection rate above (%)"), _NUMBER, "20", 10, trim, required=False),
        Field("pieces", lazy("Scans"), _NUMBER, "20", 10, trim, required=False),
        Field("period", lazy("Points per"), TEXT, SHIFT, 8, trim, required=False, choices=PERIODS),
        Field("recipients", lazy("E-mail recipients"), TEXT, "qa@example.com", 500, trim,
              required=False),
        Field("mail_language", lazy("Language of the e-mails"), TEXT, "en", 8, trim,
              required=False, choices=LANGUAGES),
    )


@dataclass(frozen=True, slots=True)
class Draft:
    """A rule as submitted, checked (`errors` by field) before anything is written."""

    values: dict[str, Any]
    errors: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.errors


def check(form: Mapping[str, Any], codes: CodePatterns, at_station: bool) -> Draft:
    """What can be checked without the database: formats, ranges, scope."""
    checked = validate(form, fields(codes))
    values: dict[str, Any] = dict(checked.values)
    errors = checked.errors
    values["at_station"] = at_station
    values["threshold"] = _threshold(checked, values.get("kind") == RATE)
    kind = values.get("kind")
    values["pieces"] = 0 if kind == P_CHART else _pieces(checked, kind == REPEATED)
    if not values["station"] and not values["order"] and "station" not in errors and "order" not in errors:
        errors["station"] = lazy("Choose a station, an order or both.")
    if values["defect"] and values.get("kind") in (RATE, P_CHART):
        errors["defect"] = lazy("This kind of rule counts every defect; leave the code empty.")
    if values["defect"] == APPROVED and "defect" not in errors:
        errors["defect"] = lazy("Code %(code)s approves; choose a defect.", code=APPROVED)
    values["period"] = _period(checked, kind)
    values["recipients"] = _recipients(checked)
    values["mail_language"] = values["mail_language"] or "en"
    return Draft(values, errors)


def _threshold(checked: Validated, wanted: bool) -> Decimal | None:
    raw = checked.values["threshold"]
    if not wanted:
        return None
    if "threshold" in checked.errors:
        return None
    try:
        value = Decimal(raw) if raw else None
    except InvalidOperation:
        value = None
    if value is None or not 0 < value < 100:
        checked.errors["threshold"] = lazy("Give a rejection rate above 0 and below 100 %.")
        return None
    return value


def _pieces(checked: Validated, in_a_row: bool) -> int | None:
    raw = checked.values["pieces"]
    if "pieces" in checked.errors:
        return None
    if not raw:
        checked.errors["pieces"] = lazy("Enter how many scans the rule looks at.")
        return None
    lowest = 2 if in_a_row else 1
    if "." in raw or not lowest <= int(raw) <= MAX_PIECES:
        checked.errors["pieces"] = lazy("Give a whole number of scans from %(low)s to %(high)s.",
                                        low=lowest, high=MAX_PIECES)
        return None
    return int(raw)


def _period(checked: Validated, kind: str | None) -> str:
    """A p-chart rule's points, which it must name; the other kinds name none
    (refused, as a defect code given to a kind that counts every defect)."""
    raw = checked.values["period"]
    if "period" in checked.errors or kind not in KINDS:
        return SHIFT
    if kind == P_CHART and not raw:
        checked.errors["period"] = lazy("Choose the p-chart's points: per shift or per production day.")
    elif kind != P_CHART and raw:
        checked.errors["period"] = lazy("Only a p-chart rule has points per shift or day; leave it empty.")
    return raw or SHIFT


def _recipients(checked: Validated) -> tuple[str, ...]:
    found = tuple(part.strip() for part in checked.values["recipients"].split(",") if part.strip())
    if any(not EMAIL.fullmatch(address) for address in found):
        checked.errors["recipients"] = lazy("Give e-mail addresses separated by commas.")
    return found


_SELECT = ("SELECT id, kind, station, order_code, defect_code, threshold, pieces, at_station, recipients,"
           " mail_language, period FROM alert_rules")


async def find(cur: Cursor, rule_id: int, lock: bool = False) -> Rule | None:
    """A rule in force."""
    await cur.execute(_SELECT + " WHERE id = %s AND removed_at IS NULL" + (" FOR UPDATE" if lock else ""),
                      (rule_id,))
    row = await cur.fetchone()
    return None if row is None else _rule(row)


async def in_force(cur: Cursor) -> list[Rule]:
    """Every rule not removed, oldest first."""
    await cur.execute(_SELECT + " WHERE removed_at IS NULL ORDER BY id")
    return [_rule(row) for row in await cur.fetchall()]


def _rule(row: tuple) -> Rule:
    (id_, kind, station, order_code, defect_code, threshold, pieces, at_station, recipients,
     mail_language, period) = row
    return Rule(id_, kind, station, order_code, defect_code, threshold, pieces, bool(at_station),
                tuple(address for address in recipients.split(",") if address), mail_language, period)
