"""The p-chart rule: a shift's (or a production day's) rejection rate beyond
its limits (from the baseline of the last 21 such points), or 8 in a row on
one side of the centre line; checked scan by scan against a computation
written here, and end to end: the baseline read from the database, a live
shift or day breaching it."""

from __future__ import annotations

import math
import random
import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.testclient import TestClient

from quality.alerts.rules import DAY, P_CHART, SHIFT, Rule
from quality.alerts.text import alert_text
from quality.alerts.windows import PChartWindow
from quality.clock import utc_now
from quality.i18n import translator
from quality.settings import Settings
from tests.admin_support import query, sign_in
from tests.conftest import UTC_SHIFTS, eventually, run_async, using
from tests.test_alerts import add_rule, fg_scans
from tests.test_reports import insert_scans

RULE = Rule(1, P_CHART, "fg", None, None, None, 0, False, (), "en")
PER_DAY = Rule(1, P_CHART, "fg", None, None, None, 0, False, (), "en", DAY)


def expected_breaches(shifts: list[list[bool]]) -> list[bool]:
    """After each scan (shifts of verdicts, True = rejected): whether the rule is breached."""
    found, done, sides = [], [], []
    for verdicts in shifts:
        n = r = 0
        for rejected in verdicts:
            n, r = n + 1, r + rejected
            baseline = done[-21:]
            beyond = False
            if baseline and sum(b[0] for b in baseline) and n >= 20:
                centre = sum(b[1] for b in baseline) / sum(b[0] for b in baseline)
                sigma = math.sqrt(centre * (1 - centre) / n)
                beyond = not centre - 3 * sigma <= r / n <= centre + 3 * sigma
            last8 = sides[-8:]
            run = len(last8) == 8 and (all(side > 0 for side in last8) or all(side < 0 for side in last8))
            found.append(beyond or run)
        baseline = done[-21:]
        if baseline:
            centre = sum(b[1] for b in baseline) / sum(b[0] for b in baseline)
            sides.append((r / n > centre) - (r / n < centre))
        done.append((n, r))
    return found


def test_the_window_breaches_exactly_when_the_independent_computation_says() -> None:
    rng = random.Random(4)
    # Rejected of 40 per shift: 21 ordinary shifts, 7 a little worse (not yet a
    # run), 2 ordinary, 9 a little worse (a run), 3 ordinary, one bad, 3 ordinary;
    # then 30 shifts drawn at random.
    counts = [2] * 21 + [4] * 7 + [2] * 2 + [4] * 9 + [2] * 3 + [14] + [2] * 3
    shifts = [[n % (40 // rejected) == 0 and n // (40 // rejected) < rejected for n in range(40)]
              for rejected in counts]
    shifts += [[rng.random() < rng.choice((0.03, 0.06, 0.2)) for _ in range(rng.randint(10, 60))]
               for _ in range(30)]
    window = PChartWindow(RULE, UTC_SHIFTS)
    start = datetime(2026, 6, 1, 6)
    got, scan_id = [], 0
    for index, verdicts in enumerate(shifts):
        shift_start = start + timedelta(hours=8 * index)
        for number, rejected in enumerate(verdicts):
            scan_id += 1
            window.add(scan_id, "104" if rejected else "000", shift_start + timedelta(minutes=number))
            got.append(window.breached)
    want = expected_breaches(shifts)
    assert got == want
    per_shift = [any(want[sum(map(len, shifts[:i])):sum(map(len, shifts[:i + 1]))]) for i in range(43)]
    # Breached in the run's ninth shift (8 complete ones above behind it) and the next
    # (the ninth complete makes 8 still), not once an ordinary one ended it; in the bad shift.
    assert [i for i, breached in enumerate(per_shift) if breached] == [38, 39, 42]


def test_a_p_chart_rule_reads_its_baseline_and_fires_on_a_bad_shift(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    # 21 past shifts at fg with 4 % rejected, ending before the current shift.
    now = utc_now()
    current = UTC_SHIFTS.around(now)[0]
    token = sign_in(client, make_user, "ada", "admin")
    [[user]] = query(settings, "SELECT id FROM users WHERE username = 'ada'")
    rows = []
    for shift in range(1, 22):
        began = current - timedelta(hours=8 * shift)
        for n in range(50):
            piece = f"CP00099999-{shift:02d}{n:02d}"
            defect = "101" if n < 2 else "000"
            rows.append(("fg", secrets.token_bytes(16), "OP01", piece, piece[:10], "OC01", "OC02", defect,
                         defect == "000", False, began + timedelta(minutes=n), user))

    run_async(using(settings.database_url, lambda db: insert_scans(db, rows)))
    assert add_rule(client, token, kind="p_chart", threshold="", pieces="", period="shift").status_code == 303
    assert query(settings, "SELECT kind, pieces, period FROM alert_rules") == [("p_chart", 0, "shift")]
    # This shift: 19 scans, none judged yet (fewer than 20); the 20th makes 6 rejected
    # (30 %): beyond the UCL p̄ + 3 sigma = 17.1 % for p̄ = 4 % and n = 20.
    fg_scans(client, token, ["000"] * 14 + ["102"] * 5)
    assert eventually(lambda: query(settings, "SELECT COUNT(*) FROM alerts") == [(0,)], 1)
    fg_scans(client, token, ["102"], start=20)
    assert eventually(lambda: query(settings, "SELECT COUNT(*) FROM alerts") == [(1,)])
    [(value, limit)] = query(settings, "SELECT value, threshold FROM alerts")
    assert value == Decimal("30.00")
    assert limit == Decimal(100 * (0.04 + 3 * math.sqrt(0.04 * 0.96 / 20))).quantize(Decimal("0.01"))


def shift(rejected: int) -> list[bool]:
    """A shift of 50 scans, the last `rejected` of them rejected."""
    return [n >= 50 - rejected for n in range(50)]


def breached_per_shift(rule: Rule, days: list[list[list[bool]]]) -> list[list[bool]]:
    """Production days of three shifts of verdicts fed to the rule's window from
    2026-06-01 06:00 (UTC shifts at 06, 14 and 22, the night shift running past
    midnight): per day and shift, whether the rule was breached after any scan."""
    window = PChartWindow(rule, UTC_SHIFTS)
    found, scan_id = [], 0
    for day, shifts in enumerate(days):
        found.append([])
        for index, verdicts in enumerate(shifts):
            began = datetime(2026, 6, 1, 6) + timedelta(days=day, hours=8 * index)
            breached = False
            for number, rejected in enumerate(verdicts):
                scan_id += 1
                window.add(scan_id, "104" if rejected else "000", began + timedelta(minutes=number * 9))
                breached |= window.breached
            found[-1].append(breached)
    return found


BASELINE_DAYS = [[shift(2)] * 3] * 21  # 4 % rejected in every shift and day


def test_a_bad_shift_in_an_ordinary_day_breaches_a_per_shift_rule_only() -> None:
    # The third shift's 16 % is beyond its UCL (4 % + 3 sigma = 12.3 % for n = 50);
    # the day's 8 % is not beyond the day's (8.8 % for n = 150).
    days = [*BASELINE_DAYS, [shift(2), shift(2), shift(8)]]
    assert breached_per_shift(RULE, days)[-1] == [False, False, True]
    assert breached_per_shift(PER_DAY, days)[-1] == [False, False, False]


def test_a_bad_day_of_ordinary_shifts_breaches_a_per_day_rule_only() -> None:
    # 10 % in each shift: within a shift's UCL (12.3 %), beyond the day's once
    # it has 100 scans (9.9 %) and still at its end (8.8 % for n = 150).
    days = [*BASELINE_DAYS, [shift(5)] * 3]
    assert breached_per_shift(PER_DAY, days)[-1] == [False, True, True]
    assert breached_per_shift(RULE, days)[-1] == [False, False, False]


def test_eight_days_in_a_row_above_the_centre_line_breach_a_per_day_rule() -> None:
    # 4.7 % a day, within its limits; the ninth day starts with 8 complete ones above.
    days = [*BASELINE_DAYS, *[[shift(2), shift(2), shift(3)]] * 8, [shift(2)] * 3]
    assert [any(day) for day in breached_per_shift(PER_DAY, days)[21:]] == [False] * 8 + [True]


def test_a_per_day_alert_says_this_production_day_in_each_language() -> None:
    text = alert_text(P_CHART, DAY, Decimal("30"), Decimal("26.2"), "fg", "CP00012345", "fg", None)
    assert text == "Finished goods scan: a p-chart signal; 30% rejected this production day (UCL 26.2%)."
    assert "această zi de producție" in translator("ro")(text)
    assert "this shift" in alert_text(P_CHART, SHIFT, Decimal("30"), Decimal("26.2"), "fg", "CP00012345",
                                      "fg", None)


def test_a_per_day_rule_reads_its_baseline_of_days_and_fires_once_on_a_bad_day(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    # 21 past production days at fg, 50 scans each spread over its three shifts
    # (the night shift's past midnight): the last 7 days 20 % rejected, the 14
    # before 2 %. Per day p̄ = 8 %; the last 21 shifts alone would make it 20 %.
    today = UTC_SHIFTS.day_span(UTC_SHIFTS.of(utc_now())[0])[0]
    token = sign_in(client, make_user, "ada", "admin")
    [[user]] = query(settings, "SELECT id FROM users WHERE username = 'ada'")
    rows = []
    for day in range(1, 22):
        began = today - timedelta(days=day)
        for n in range(50):
            piece = f"CP00099999-{day:02d}{n:02d}"
            defect = "101" if n < (10 if day <= 7 else 1) else "000"
            rows.append(("fg", secrets.token_bytes(16), "OP01", piece, piece[:10], "OC01", "OC02", defect,
                         defect == "000", False, began + timedelta(minutes=25 * n), user))

    run_async(using(settings.database_url, lambda db: insert_scans(db, rows)))
    assert add_rule(client, token, kind="p_chart", threshold="", pieces="", period="day").status_code == 303
    assert query(settings, "SELECT kind, period FROM alert_rules") == [("p_chart", "day")]
    # Today: 19 scans, too few to judge; the 20th makes 6 of 20 rejected (30 %):
    # beyond the day's UCL 8 % + 3 sigma = 26.2 % (a per-shift rule's would be 46.8 %).
    fg_scans(client, token, ["000"] * 14 + ["102"] * 5)
    assert eventually(lambda: query(settings, "SELECT COUNT(*) FROM alerts") == [(0,)], 1)
    fg_scans(client, token, ["102"], start=20)
    assert eventually(lambda: query(settings, "SELECT COUNT(*) FROM alerts") == [(1,)])
    [(value, limit)] = query(settings, "SELECT value, threshold FROM alerts")
    assert value == Decimal("30.00")
    assert limit == Decimal(100 * (0.08 + 3 * math.sqrt(0.08 * 0.92 / 20))).quantize(Decimal("0.01"))
    # Still beyond: the same breach, no second alert.
    fg_scans(client, token, ["102"] * 3, start=21)
    assert eventually(lambda: query(settings, "SELECT breaches FROM alert_rules") == [(1,)])
    assert query(settings, "SELECT COUNT(*) FROM alerts") == [(1,)]
    assert "30% rejected this production day" in client.get("/alerts").text
