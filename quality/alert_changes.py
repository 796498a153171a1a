"""Changes to quality alerts (quality/alerts/), each with its audit row in
the same transaction (quality/audit.py): adding and removing rules (the admin
page and `quality alerts`), acknowledging an alert (/alerts)."""

from __future__ import annotations

from quality import audit, defects
from quality.alerts.history import Alert
from quality.alerts.history import find as find_alert
from quality.alerts.rules import Draft, find
from quality.audit import Actor
from quality.clock import utc_now
from quality.db import Cursor
from quality.i18n import lazy


async def add(cur: Cursor, actor: Actor, draft: Draft) -> int | None:
    """Store a checked rule with its audit row; None (nothing written) when its
    defect code is not in the catalogue, which is then named in `draft.errors`."""
    values = draft.values
    if values["defect"] and await defects.find(cur, values["defect"], lock=True) is None:
        draft.errors["defect"] = lazy("There is no defect code %(code)s.", code=values["defect"])
        return None
    await cur.execute(
        "INSERT INTO alert_rules (kind, station, order_code, defect_code, threshold, pieces, period,"
        " at_station, recipients, mail_language, created_at, created_by) VALUES (%s, %s, %s, %s, %s, %s,"
        " %s, %s, %s, %s, %s, %s)",
        (values["kind"], values["station"] or None, values["order"] or None, values["defect"] or None,
         values["threshold"], values["pieces"], values["period"], values["at_station"],
         ",".join(values["recipients"]), values["mail_language"], utc_now(), actor.name[:64]),
    )
    rule_id = cur.lastrowid
    rule = await find(cur, rule_id)
    assert rule is not None
    await audit.record(cur, actor, "alert_rule.create", str(rule_id), None, rule.described())
    return rule_id


async def remove(cur: Cursor, actor: Actor, rule_id: int) -> bool:
    """Remove a rule (its alerts stay), audited; False when there is no such rule."""
    rule = await find(cur, rule_id, lock=True)
    if rule is None:
        return False
    await cur.execute("UPDATE alert_rules SET removed_at = %s WHERE id = %s", (utc_now(), rule_id))
    await audit.record(cur, actor, "alert_rule.remove", str(rule_id), rule.described(), None)
    return True


async def acknowledge(cur: Cursor, actor: Actor, alert_id: int, comment: str) -> Alert | None:
    """Acknowledge an open alert with a comment, audited; the alert as it
    was (None: no such alert). An alert acknowledged already is left as it is."""
    alert = await find_alert(cur, alert_id, lock=True)
    if alert is None or alert.acknowledged_at is not None:
        return alert
    await cur.execute("UPDATE alerts SET acknowledged_by = %s, acknowledged_at = %s, comment = %s"
                      " WHERE id = %s", (actor.name[:64], utc_now(), comment, alert_id))
    await audit.record(cur, actor, "alert.acknowledge", str(alert_id), {"acknowledged": False},
                       {"acknowledged": True, "comment": comment})
    return alert
