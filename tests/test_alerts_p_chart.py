"""The p-chart rule: a shift's rejection rate beyond its limits (from the
baseline of the last 21 shifts), or 8 shifts in a row on one side of the
centre line; checked scan by scan against a computation written here, and
end to end: the baseline read from the database, a live shift breaching it."""

from __future__ import annotations

import math
import random
import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.testclient import TestClient

from quality.alerts.rules import P_CHART, Rule
from quality.alerts.windows import PChartWindow
from quality.clock import utc_now
from quality.settings import Settings
from tests.admin_support import query, sign_in
from tests.conftest import UTC_SHIFTS, database_for, eventually, run_async
from tests.test_alerts import add_rule, fg_scans
from tests.test_reports import insert_scans

RULE = Rule(1, P_CHART, "fg", None, None, None, 0, False, (), "en")


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

    async def seed() -> None:
        db = database_for(settings.database_url)
        try:
            await insert_scans(db, rows)
        finally:
            await db.close()

    run_async(seed())
    assert add_rule(client, token, kind="p_chart", threshold="", pieces="").status_code == 303
    assert query(settings, "SELECT kind, pieces FROM alert_rules") == [("p_chart", 0)]
    # This shift: 19 scans, none judged yet (fewer than 20); the 20th makes 6 rejected
    # (30 %): beyond the UCL p̄ + 3 sigma = 17.1 % for p̄ = 4 % and n = 20.
    fg_scans(client, token, ["000"] * 14 + ["102"] * 5)
    assert eventually(lambda: query(settings, "SELECT COUNT(*) FROM alerts") == [(0,)], 1)
    fg_scans(client, token, ["102"], start=20)
    assert eventually(lambda: query(settings, "SELECT COUNT(*) FROM alerts") == [(1,)])
    [(value, limit)] = query(settings, "SELECT value, threshold FROM alerts")
    assert value == Decimal("30.00")
    assert limit == Decimal(100 * (0.04 + 3 * math.sqrt(0.04 * 0.96 / 20))).quantize(Decimal("0.01"))
