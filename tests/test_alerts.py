"""Quality alerts through real requests on a real MariaDB: rules from the
admin page (refused beside the field, audited), firing once per breach as an
operator's scans are saved, re-armed when the line recovers, exactly once
however many processes see the breach, acknowledged with a comment."""

from __future__ import annotations

import asyncio
import html
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from starlette.testclient import TestClient

from quality import alert_changes as changes
from quality.alerts import history, rules
from quality.alerts.engine import AlertBoard, AlertEngine, Channels, fire
from quality.audit import SYSTEM
from quality.db import Database
from quality.scans.store import Saved, ScanRow
from quality.settings import CodePatterns, Settings
from tests.admin_support import audit_rows, query, sign_in, snapshot
from tests.conftest import UTC_SHIFTS, csrf_token_in, eventually, login
from tests.test_stations import post_scan

RULE = {"kind": "rejection_rate", "station": "fg", "order": "", "defect": "", "threshold": "40",
        "pieces": "5", "recipients": "", "mail_language": "en"}


def add_rule(client: TestClient, token: str, **changes: str) -> Any:
    return client.post("/admin/alerts", data={"csrf_token": token, **RULE, **changes},
                       follow_redirects=False)


def fg_scans(client: TestClient, token: str, defects: list[str], start: int = 1) -> None:
    for number, defect in enumerate(defects, start):
        saved = post_scan(client, token, "/fgscan", piece_code=f"CP00012345-{number:04d}", defect_code=defect)
        assert saved.status_code == 200, saved.text


# An alert's row on /alerts, by the link to its page; and the link to the older ones.
ROW_ID = re.compile(r'<tr data-testid="alert-row">\s*<td><a href="/alerts/(\d+)"')
OLDER = re.compile(r'<a rel="next" href="([^"]+)" data-testid="older">')


def alerts(settings: Settings) -> list[tuple[Any, ...]]:
    return query(settings, "SELECT rule_id, breach, station, value, threshold FROM alerts ORDER BY id")


def test_an_admin_adds_and_removes_a_rule_and_both_are_audited(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    assert add_rule(client, token, at_station="on", recipients="qa@example.com").status_code == 303
    page = client.get("/admin/alerts")
    assert "more than 40% of the last 5 scans rejected" in page.text
    (rule_id,) = query(settings, "SELECT id FROM alert_rules")[0]
    assert client.post(f"/admin/alerts/{rule_id}/remove", data={"csrf_token": token},
                       follow_redirects=False).status_code == 303
    assert query(settings, "SELECT removed_at IS NOT NULL FROM alert_rules") == [(1,)]
    assert [row[1:3] for row in audit_rows(settings) if row[1].startswith("alert_rule.")] == [
        ("alert_rule.create", str(rule_id)), ("alert_rule.remove", str(rule_id))]
    assert "No rules yet." in client.get("/admin/alerts").text
    assert client.post(f"/admin/alerts/{rule_id}/remove", data={"csrf_token": token}).status_code == 404


def test_a_p_chart_rule_per_production_day_is_added_shown_and_audited(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    added = add_rule(client, token, kind="p_chart", threshold="", pieces="", period="day")
    assert added.status_code == 303
    assert query(settings, "SELECT kind, period FROM alert_rules") == [("p_chart", "day")]
    shown = client.get("/admin/alerts").text
    assert "a production day&#39;s rejection rate beyond its control limits" in shown
    [(_, _, _, _, after)] = [row for row in audit_rows(settings) if row[1] == "alert_rule.create"]
    assert '"period": "day"' in after


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"threshold": "-5"}, "threshold", "above 0 and below 100"),
    ({"threshold": "0"}, "threshold", "above 0 and below 100"),
    ({"threshold": "150"}, "threshold", "above 0 and below 100"),
    ({"threshold": ""}, "threshold", "above 0 and below 100"),
    ({"pieces": "0"}, "pieces", "from 1 to 1000"),
    ({"pieces": "-3"}, "pieces", "from 1 to 1000"),
    ({"station": "paint"}, "station", "choose one from the list"),
    ({"station": ""}, "station", "Choose a station, an order or both."),
    ({"kind": "repeated_defect", "defect": "999", "pieces": "3"}, "defect", "There is no defect code 999."),
    ({"kind": "repeated_defect", "defect": "000", "pieces": "3"}, "defect", "approves"),
    ({"order": "XX1"}, "order", "must look like"),
    ({"recipients": "not-an-address"}, "recipients", "e-mail addresses"),
    ({"kind": "p_chart", "threshold": "", "pieces": ""}, "period", "per shift or per production day"),
    ({"kind": "p_chart", "period": "week"}, "period", "choose one from the list"),
    ({"period": "day"}, "period", "Only a p-chart rule has points"),
])
def test_a_bad_rule_is_refused_beside_its_field_and_nothing_is_saved(
    client: TestClient, make_user: Any, settings: Settings, changes: dict[str, str], field: str,
    message: str,
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    before = snapshot(settings), query(settings, "SELECT COUNT(*) FROM alert_rules")
    refused = add_rule(client, token, **changes)
    assert refused.status_code == 422
    assert f'data-testid="{field}-error"' in refused.text and message in refused.text
    assert (snapshot(settings), query(settings, "SELECT COUNT(*) FROM alert_rules")) == before


def test_a_rule_fires_once_per_breach_and_is_re_armed_when_the_line_recovers(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    assert add_rule(client, token).status_code == 303  # > 40 % of the last 5 at fg
    (rule_id,) = query(settings, "SELECT id FROM alert_rules")[0]
    # 2 of 5 rejected: 40 %, not above it; the third rejection breaches.
    fg_scans(client, token, ["000", "101", "000", "101", "000"])
    assert eventually(lambda: alerts(settings) == [], 2)
    fg_scans(client, token, ["102"], start=6)
    assert eventually(lambda: len(alerts(settings)) == 1)
    assert alerts(settings) == [(rule_id, 1, "fg", Decimal("60.00"), Decimal("40.00"))]
    # Still breached: no second alert.
    fg_scans(client, token, ["101", "101"], start=7)
    # Recovers (1 of the last 5 rejected), then breaches again: a second alert.
    fg_scans(client, token, ["000", "000", "000", "000"], start=9)
    assert eventually(lambda: query(settings, "SELECT breached FROM alert_rules") == [(0,)])
    assert len(alerts(settings)) == 1
    fg_scans(client, token, ["103", "103", "103"], start=13)
    assert eventually(lambda: len(alerts(settings)) == 2)
    assert alerts(settings)[1][:2] == (rule_id, 2)
    (scan_ids,) = query(settings, "SELECT scan_ids FROM alerts WHERE breach = 1")[0]
    assert query(settings, f"SELECT defect_code FROM scans WHERE id IN ({scan_ids}) ORDER BY id") == [
        ("101",), ("101",), ("102",)]


def test_the_same_defect_in_a_row_fires_for_its_order(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    assert add_rule(client, token, kind="repeated_defect", station="", order="CP00012345",
                    threshold="", pieces="3").status_code == 303
    fg_scans(client, token, ["104", "104", "101", "104", "104"])
    assert eventually(lambda: alerts(settings) == [], 2)
    fg_scans(client, token, ["104"], start=6)
    assert eventually(lambda: len(alerts(settings)) == 1)
    assert alerts(settings)[0][3:] == (Decimal("3.00"), Decimal("3.00"))


def _row(scan_id: int, defect: str) -> Saved:
    return Saved(ScanRow(scan_id, "fg", datetime(2026, 1, 1), "OP07", f"CP00012345-{scan_id:04d}",
                         "CP00012345", "OC12", "OC13", defect, "", "", defect == "000", False), 0, 0)


async def test_a_breach_seen_by_several_processes_fires_once(db: Database, settings: Settings) -> None:
    """Four engines (as four processes or hosts would) each act on the same
    breaching scans as if they had saved them: one alert, one breach."""
    draft = rules.check({**RULE, "threshold": "50", "pieces": "2"}, CodePatterns(), False)
    await db.run(changes.add, SYSTEM, draft)
    engines = [AlertEngine(db, AlertBoard(), Channels(webhook=True, email=False), UTC_SHIFTS)
               for _ in range(4)]
    for engine in engines:
        await engine.poll()
    scans = [_row(1, "101"), _row(2, "102")]
    for engine in engines:
        engine.observe(scans, own=True)
    await asyncio.gather(*(task for engine in engines for task in list(engine._work)))
    async with db.transaction() as cur:
        await cur.execute("SELECT rule_id, breach, value FROM alerts")
        fired = await cur.fetchall()
        await cur.execute("SELECT channel FROM alert_outbox")
        outbox = await cur.fetchall()
    assert fired == [(1, 1, Decimal("100.00"))] and outbox == [("webhook",)]
    assert [len(engine.board.open) for engine in engines if engine.fired.is_set()] == [1]


async def test_an_alert_of_more_scans_than_its_column_holds_keeps_whole_ids(db: Database) -> None:
    """A long window's rejected scans outrun the 2,000 characters of
    `alerts.scan_ids`: the list stops before the id that does not fit, so the
    alert's page reads only scans that did cause it."""
    draft = rules.check({**RULE, "threshold": "50", "pieces": str(rules.MAX_PIECES)}, CodePatterns(), False)
    rule_id = await db.run(changes.add, SYSTEM, draft)
    scan_ids = list(range(100_000, 100_400))  # seven characters each with its comma: 2,000 is mid-id
    async with db.transaction() as cur:
        rule = await rules.find(cur, rule_id)
        assert rule is not None
        alert_id = await fire(cur, rule, (Decimal("100.00"), Decimal("50.00"), scan_ids, "fg", "CP00012345"),
                              Channels(webhook=False, email=False), datetime(2026, 1, 1))
        assert alert_id is not None
        alert = await history.find(cur, alert_id)
    assert alert is not None
    kept = len(alert.scan_ids)
    assert alert.scan_ids == tuple(scan_ids[:kept])
    assert kept == 285  # 285 ids and their commas: 1,994 characters, room for no more


def test_a_supervisor_acknowledges_an_alert_with_a_comment_and_it_is_audited(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    add_rule(client, token, pieces="1", threshold="50")
    fg_scans(client, token, ["101"])
    assert eventually(lambda: len(alerts(settings)) == 1)
    (alert_id,) = query(settings, "SELECT id FROM alerts")[0]
    client.post("/logout", data={"csrf_token": token})
    make_user("sam", "supervisor")
    login(client, "sam")
    listed = client.get("/alerts", params={"state": "open", "station": "fg"})
    assert listed.status_code == 200 and f'href="/alerts/{alert_id}"' in listed.text
    detail = client.get(f"/alerts/{alert_id}")
    assert "CP00012345-0001" in detail.text  # the scan that caused it
    token = csrf_token_in(detail.text)
    refused = client.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": token, "comment": " "})
    assert refused.status_code == 422 and "Say what was done about it." in refused.text
    assert client.post(f"/alerts/{alert_id}/acknowledge",
                       data={"csrf_token": token, "comment": "Die changed"},
                       follow_redirects=False).status_code == 303
    assert query(settings, "SELECT acknowledged_by, comment FROM alerts") == [("sam", "Die changed")]
    assert [row[:3] for row in audit_rows(settings) if row[1] == "alert.acknowledge"] == [
        ("sam", "alert.acknowledge", str(alert_id))]
    assert "Nothing matches." in client.get("/alerts", params={"state": "open"}).text
    assert client.get("/alerts", params={"station": "paint"}).status_code == 422
    assert client.post("/alerts/999999/acknowledge",
                       data={"csrf_token": token, "comment": "x"}).status_code == 404


def fired_alerts(settings: Settings, rule_id: int, count: int, every_sixth: str) -> None:
    """`count` alerts fired by the rule, one a minute, every sixth at `every_sixth`, the rest at fg."""
    query(settings, "INSERT INTO alerts (rule_id, breach, fired_at, station, order_code, value, threshold,"
                    f" scan_ids) SELECT {rule_id}, seq, '2026-01-05 08:00' + INTERVAL seq MINUTE,"
                    f" IF(seq % 6 = 0, '{every_sixth}', 'fg'), 'CP00012345', 60, 40, ''"
                    f" FROM seq_1_to_{count}")


def test_alerts_come_a_hundred_a_page_older_ones_behind_a_link_that_keeps_the_filters(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    assert add_rule(client, token).status_code == 303
    (rule_id,) = query(settings, "SELECT id FROM alert_rules")[0]
    fired_alerts(settings, rule_id, 276, every_sixth="quality")  # 230 at fg, 46 at quality between them
    at_fg = [alert_id for (alert_id,) in query(settings, "SELECT id FROM alerts WHERE station = 'fg'"
                                                         " ORDER BY id DESC")]
    assert len(at_fg) == 230
    pages: list[list[int]] = []
    shown: list[bool] = []  # whether each page says how many alerts it shows
    url: str | None = "/alerts?station=fg&state=open"
    while url:
        page = client.get(url)
        assert page.status_code == 200
        pages.append([int(alert_id) for alert_id in ROW_ID.findall(page.text)])
        shown.append(f"{len(pages[-1])} alerts on this page" in page.text)
        older = OLDER.search(page.text)
        url = html.unescape(older[1]) if older else None
        assert url is None or ("station=fg" in url and "state=open" in url)
    assert [len(page) for page in pages] == [100, 100, 30]  # the last page has no "Older" link
    assert [alert_id for page in pages for alert_id in page] == at_fg  # each once, newest first
    assert all(shown)


@pytest.mark.parametrize("before", ["abc", "0", "-5", "12x", "1" * 21])
def test_a_broken_page_link_on_alerts_is_refused_above_the_filters_which_stay(
    client: TestClient, make_user: Any, settings: Settings, before: str
) -> None:
    token = sign_in(client, make_user, "ada", "admin")
    assert add_rule(client, token).status_code == 303
    (rule_id,) = query(settings, "SELECT id FROM alert_rules")[0]
    fired_alerts(settings, rule_id, 3, every_sixth="quality")
    refused = client.get("/alerts", params={"station": "fg", "order": "CP00012345", "before": before})
    assert refused.status_code == 422
    assert ('data-testid="before-error">This page link is broken; start again from the first page.'
            in refused.text)
    assert 'value="CP00012345"' in refused.text and "Nothing matches." in refused.text
    assert 'data-testid="older"' not in refused.text
