"""The alerts fired: read back with filters for /alerts, and one with the
scans that caused it (acknowledging one is quality/alert_changes.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from quality.alerts.text import alert_text
from quality.db import Cursor
from quality.i18n import LazyText
from quality.scans.store import ROW_SELECT, Saved, saved_from_row


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    rule_id: int
    kind: str
    fired_at: datetime
    station: str
    order_code: str
    value: Decimal
    threshold: Decimal
    scan_ids: tuple[int, ...]
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    comment: str | None
    rule_station: str | None
    rule_order: str | None
    period: str  # the rule's (rules.PERIODS)

    @property
    def text(self) -> LazyText:
        return alert_text(self.kind, self.period, self.value, self.threshold, self.station, self.order_code,
                          self.rule_station, self.rule_order)


@dataclass(frozen=True, slots=True)
class Filters:
    station: str = ""
    order: str = ""
    rule: int | None = None
    state: str = ""  # "open", "acknowledged" or either
    since: datetime | None = None
    until: datetime | None = None


_SELECT = (
    "SELECT a.id, a.rule_id, r.kind, a.fired_at, a.station, a.order_code, a.value, a.threshold,"
    " a.scan_ids, a.acknowledged_by, a.acknowledged_at, a.comment, r.station, r.order_code,"
    " r.period FROM alerts a JOIN alert_rules r ON r.id = a.rule_id"
)


async def history(cur: Cursor, filters: Filters, before_id: int | None, limit: int) -> list[Alert]:
    """Newest first, at most `limit`, older than `before_id` (keyset pagination:
    a page starts below the last id shown, so paging stays fast however many
    alerts a plant keeps)."""
    where, params = ["TRUE"], []
    for column, value in (("a.station", filters.station), ("a.order_code", filters.order),
                          ("a.rule_id", filters.rule)):
        if value:
            where.append(f"{column} = %s")
            params.append(value)
    if filters.state:
        where.append("a.acknowledged_at IS " + ("NULL" if filters.state == "open" else "NOT NULL"))
    if filters.since:
        where.append("a.fired_at >= %s")
        params.append(filters.since)
    if filters.until:
        where.append("a.fired_at < %s")
        params.append(filters.until)
    if before_id is not None:
        where.append("a.id < %s")
        params.append(before_id)
    await cur.execute(f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY a.id DESC LIMIT %s",
                      (*params, limit))
    return [_alert(row) for row in await cur.fetchall()]


async def find(cur: Cursor, alert_id: int, lock: bool = False) -> Alert | None:
    await cur.execute(_SELECT + " WHERE a.id = %s" + (" FOR UPDATE" if lock else ""), (alert_id,))
    row = await cur.fetchone()
    return None if row is None else _alert(row)


async def causes(cur: Cursor, alert: Alert) -> list[Saved]:
    """The scans that caused the alert, oldest first."""
    if not alert.scan_ids:
        return []
    await cur.execute(ROW_SELECT + f" WHERE s.id IN ({', '.join(['%s'] * len(alert.scan_ids))})"
                      " ORDER BY s.id", alert.scan_ids)
    return [saved_from_row(row) for row in await cur.fetchall()]


def _alert(row: tuple) -> Alert:
    values = list(row)
    values[8] = tuple(int(part) for part in values[8].split(",") if part)
    return Alert(*values)
