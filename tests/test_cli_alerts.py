"""`quality alerts add|list|remove` from a terminal: bad input is one line on
stderr and exit 2 with nothing saved; every change audited as the terminal."""

from __future__ import annotations

import getpass

import pytest

from quality.settings import DatabaseURL
from tests.test_cli import quality
from tests.test_cli_users import rows


def test_rules_are_added_listed_and_removed_with_audit_rows(db_url: DatabaseURL) -> None:
    added = quality(db_url, "alerts", "add", "--station", "fg", "--max-rejection-rate", "20", "--last", "20")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "quality: added alert rule 1"
    repeated = quality(db_url, "alerts", "add", "--order", "CP00012345", "--same-defect", "3",
                       "--defect", "104", "--at-station", "--email", "qa@plant.example")
    assert repeated.returncode == 0, repeated.stderr
    listed = quality(db_url, "alerts", "list").stdout.splitlines()
    assert listed[1].split(None, 1) == ["1", "Finished goods scan" + " " * 16
                                        + "more than 20% of the last 20 scans rejected"]
    assert "order CP00012345" in listed[2] and "defect 104 3 times in a row (at the station)" in listed[2]
    charted = quality(db_url, "alerts", "add", "--station", "quality", "--p-chart")
    assert charted.returncode == 0, charted.stderr
    assert "a shift's rejection rate beyond its control limits" in quality(db_url, "alerts", "list").stdout
    daily = quality(db_url, "alerts", "add", "--station", "fg", "--p-chart", "--per", "day")
    assert daily.returncode == 0, daily.stderr
    assert "a production day's rejection rate beyond its control limits" in quality(
        db_url, "alerts", "list").stdout.splitlines()[4]
    assert rows(db_url, "SELECT id, period FROM alert_rules WHERE kind = 'p_chart' ORDER BY id") == [
        (3, "shift"), (4, "day")]
    removed = quality(db_url, "alerts", "remove", "1")
    assert removed.returncode == 0 and removed.stdout.strip() == "quality: removed alert rule 1"
    assert len(quality(db_url, "alerts", "list").stdout.splitlines()) == 4
    who = f"terminal:{getpass.getuser()}"
    assert rows(db_url, "SELECT actor, address, action, target FROM audit_log ORDER BY id") == [
        (who, "terminal", "alert_rule.create", "1"), (who, "terminal", "alert_rule.create", "2"),
        (who, "terminal", "alert_rule.create", "3"), (who, "terminal", "alert_rule.create", "4"),
        (who, "terminal", "alert_rule.remove", "1")]
    [(daily_audit,)] = rows(db_url, "SELECT after_value FROM audit_log WHERE target = '4'")
    assert '"period": "day"' in daily_audit
    gone = quality(db_url, "alerts", "remove", "1")
    assert (gone.returncode, gone.stderr) == (2, "quality: there is no alert rule 1\n")


@pytest.mark.parametrize(("arguments", "error"), [
    (["--station", "fg", "--max-rejection-rate", "-5", "--last", "20"],
     "--max-rejection-rate: Give a rejection rate above 0 and below 100 %."),
    (["--station", "fg", "--max-rejection-rate", "0", "--last", "20"],
     "--max-rejection-rate: Give a rejection rate above 0 and below 100 %."),
    (["--station", "fg", "--max-rejection-rate", "120", "--last", "20"],
     "--max-rejection-rate: Give a rejection rate above 0 and below 100 %."),
    (["--station", "fg", "--max-rejection-rate", "20", "--last", "0"],
     "--last/--same-defect: Give a whole number of scans from 1 to 1000."),
    (["--station", "paint", "--max-rejection-rate", "20", "--last", "20"],
     "--station: Station: choose one from the list."),
    (["--max-rejection-rate", "20", "--last", "20"], "--station: Choose a station, an order or both."),
    (["--station", "fg", "--same-defect", "3", "--defect", "999"], "--defect: There is no defect code 999."),
    (["--station", "fg"], "give one of --max-rejection-rate PERCENT --last N, --same-defect K or --p-chart"),
    (["--station", "fg", "--p-chart", "--same-defect", "3"],
     "give one of --max-rejection-rate PERCENT --last N, --same-defect K or --p-chart"),
    (["--station", "fg", "--p-chart", "--per", "week"], "--per: Points per: choose one from the list."),
    (["--station", "fg", "--max-rejection-rate", "20", "--last", "20", "--per", "day"],
     "--per: Only a p-chart rule has points per shift or day; leave it empty."),
    (["--station", "fg", "--same-defect", "3", "--per", "shift"],
     "--per: Only a p-chart rule has points per shift or day; leave it empty."),
])
def test_bad_input_is_one_line_and_exit_2_and_nothing_is_saved(
    db_url: DatabaseURL, arguments: list[str], error: str
) -> None:
    refused = quality(db_url, "alerts", "add", *arguments)
    assert (refused.returncode, refused.stderr) == (2, f"quality: {error}\n")
    assert rows(db_url, "SELECT COUNT(*) FROM alert_rules") == [(0,)]
    assert rows(db_url, "SELECT COUNT(*) FROM audit_log") == [(0,)]
