"""The reports' p-chart and Pareto charts: limits, centre line and flagged
points against a computation written here, independently of the app's; the
charts hold no links, the table of points does, and each leads to its scans."""

from __future__ import annotations

import html
import math
import re
import secrets
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from starlette.testclient import TestClient

from quality.settings import Settings
from tests.admin_support import query, sign_in
from tests.conftest import execute, login, run_async, using
from tests.test_reports import insert_scans

DAYS = 24
FIRST = datetime(2026, 6, 1, 10)


def day_rates() -> list[tuple[int, int]]:
    """(pieces, rejected) per day: 5 % mostly, 12 % on days 2 to 9 (a run of 8
    above the centre, within the limits) and on days 16 to 22 (7: no run), 40 %
    on day 14 (beyond the upper limit)."""
    made = []
    for day in range(DAYS):
        pieces = 50 + 10 * (day % 3)
        rate = 0.40 if day == 14 else 0.12 if 2 <= day <= 9 or 16 <= day <= 22 else 0.05
        made.append((pieces, round(rate * pieces)))
    return made


def expected_points(samples: list[tuple[int, int]]) -> tuple[float, list[tuple[float, float, float, str]]]:
    """p̄, and for each sample p, LCL, UCL and its signal ("beyond", "run" or "")."""
    all_pieces, all_rejected = sum(n for n, _ in samples), sum(r for _, r in samples)
    centre = all_rejected / all_pieces
    points = []
    for n, r in samples:
        sigma = math.sqrt(centre * (1 - centre) / n)
        lcl, ucl = centre - 3 * sigma, centre + 3 * sigma
        if lcl < 0:
            lcl = 0.0
        points.append([r / n, lcl, ucl, "beyond" if r / n > ucl or r / n < lcl else ""])
    # Runs of 8 or more strictly on one side of the centre line.
    side = [(r * all_pieces > all_rejected * n) - (r * all_pieces < all_rejected * n) for n, r in samples]
    i = 0
    while i < len(side):
        j = i
        while j < len(side) and side[j] == side[i]:
            j += 1
        if side[i] != 0 and j - i >= 8:
            for k in range(i, j):
                if not points[k][3]:
                    points[k][3] = "run"
        i = j
    return centre, [tuple(point) for point in points]


def seed(settings: Settings, make_user: Any) -> None:
    make_user("worker", "operator")
    assert settings.database_url
    [[user]] = run_async(execute(settings.database_url, "SELECT id FROM users WHERE username = 'worker'"))[0]
    rows = []
    for day, (pieces, rejected) in enumerate(day_rates()):
        for n in range(pieces):
            defect = ("104" if n % 3 else "101") if n < rejected else "000"
            piece = f"CP{day:08d}-{n:04d}"
            rows.append(("quality", secrets.token_bytes(16), "OP01", piece, piece[:10], "OC01", "OC02",
                         defect, defect == "000", False, FIRST + timedelta(days=day, minutes=n), user))

    run_async(using(settings.database_url, lambda db: insert_scans(db, rows)))


def test_the_p_chart_matches_an_independent_computation_and_links_each_point_to_its_scans(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    seed(settings, make_user)
    make_user("sue", "supervisor")
    login(client, "sue")
    page = client.get("/reports", params={"from": "2026-06-01", "to": "2026-06-24"})
    assert page.status_code == 200
    centre, expected = expected_points(day_rates())
    assert {signal for *_, signal in expected} == {"", "beyond", "run"}  # the data has both signals
    rows = re.findall(r'<tr data-testid="p-point" data-p="([\d.]+)" data-lcl="([\d.]+)"\s+data-ucl="([\d.]+)"'
                      r' data-signal="(\w*)">\s*<th scope="row"><a href="([^"]+)">([^<]+)</a>', page.text)
    assert [label for *_, label in rows] == [(FIRST + timedelta(days=day)).date().isoformat()
                                            for day in range(DAYS)]
    for (p, lcl, ucl, signal, _href, _label), (want_p, want_lcl, want_ucl, want_signal) in zip(
            rows, expected, strict=True):
        assert abs(float(p) - want_p) < 1e-6 and abs(float(lcl) - want_lcl) < 1e-6
        assert abs(float(ucl) - want_ucl) < 1e-6 and signal == want_signal
    svg = page.text.split('<svg class="chart" id="p-chart"', 1)[1].split("</svg>", 1)[0]
    assert "<a " not in svg  # nothing interactive inside role="img"
    for label in ("UCL", "LCL", "p̄"):
        assert 'class="limit-label"' in svg and f">{label}</text>" in svg
    assert svg.count('class="point signal"') == sum(1 for *_, s in expected if s)
    assert f"p̄ = {100 * centre:.1f}%" in page.text
    # The flagged day's link lists exactly its scans.
    beyond = next(row for row in rows if row[3] == "beyond")
    totals = client.get(html.unescape(beyond[4]).replace("/scans?", "/scans/totals?")).text
    assert int(re.search(r'total-scans">([\d,]+)<', totals)[1].replace(",", "")) == day_rates()[14][0]


def test_a_short_range_is_charted_per_shift_and_the_paretos_accumulate_to_all(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    seed(settings, make_user)
    make_user("sue", "supervisor")
    login(client, "sue")
    page = client.get("/reports", params={"from": "2026-06-14", "to": "2026-06-16"})
    labels = re.findall(r'data-testid="p-point"[^>]*>\s*<th scope="row"><a href="[^"]+">([^<]+)</a>',
                        page.text)
    assert labels == ["2026-06-14 1", "2026-06-15 1", "2026-06-16 1"]  # 10:00 UTC: the first shift
    svg = page.text.split('<svg class="chart" id="pareto-defects"', 1)[1].split("</svg>", 1)[0]
    rejected = [r for n, r in day_rates()[13:16]]
    bars = re.findall(r"<title>([^<]+): (\d+) rejected scans, ([\d.]+)% cumulative</title>",
                      html.unescape(svg))
    counts = {"104": 0, "101": 0}
    for total in rejected:
        for n in range(total):
            counts["104" if n % 3 else "101"] += 1
    assert [(label.split()[0], int(count)) for label, count, _ in bars] == sorted(
        counts.items(), key=lambda item: -item[1])
    assert bars[-1][2] == "100.0" and "<a " not in svg
    assert 'id="pareto-categories"' in page.text


def test_the_category_pareto_adds_up_each_categorys_defects(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    """101 and 102 are Surface, 104 Assembly, 103 has none: by code 104 leads,
    by category Surface does, and the chart's bars say so with their shares."""
    rejected = {"101": 5, "102": 4, "103": 2, "104": 7}
    categories = {"101": "Surface", "102": "Surface", "104": "Assembly"}
    token = sign_in(client, make_user, "ada", "admin")
    for code, category in categories.items():
        [(name, name_ro)] = query(settings, f"SELECT name, name_ro FROM defect_codes WHERE code = '{code}'")
        form = {"csrf_token": token, "name": name, "name_ro": name_ro, "category": category, "active": "on"}
        assert client.post(f"/admin/defects/{code}", data=form, follow_redirects=False).status_code == 303
    [[user]] = query(settings, "SELECT id FROM users WHERE username = 'ada'")
    defects = [code for code, times in rejected.items() for _ in range(times)] + ["000"] * 6
    rows = [("quality", secrets.token_bytes(16), "OP01", f"CP00000001-{n:04d}", "CP00000001", "OC01", "OC02",
             defect, defect == "000", False, FIRST + timedelta(minutes=n), user)
            for n, defect in enumerate(defects)]
    run_async(using(settings.database_url, lambda db: insert_scans(db, rows)))

    by_category: Counter[str] = Counter()
    for code, times in rejected.items():
        by_category[categories.get(code, "no category")] += times
    ranked = by_category.most_common()  # no two counts alike: one order
    assert [name for name, _ in ranked] == ["Surface", "Assembly", "no category"]  # 104 alone leads by code
    total, running, expected = sum(by_category.values()), 0, []
    for name, times in ranked:
        running += times
        expected.append((name, times, f"{100 * running / total:.1f}"))

    page = client.get("/reports", params={"from": "2026-06-01", "to": "2026-06-01"})
    assert page.status_code == 200
    svg = page.text.split('<svg class="chart" id="pareto-categories"', 1)[1].split("</svg>", 1)[0]
    bars = re.findall(r"<title>([^<]+): (\d+) rejected scans, ([\d.]+)% cumulative</title>",
                      html.unescape(svg))
    assert [(name, int(times), share) for name, times, share in bars] == expected
