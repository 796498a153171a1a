"""The benchmarks whose figures the issues and docs/PERFORMANCE.md quote still
run: each once, at a tiny size, end to end (its own MariaDB, the app, the
bare client, the floor apps). Only that they finish and report; no time is
asserted — the figures are read by people, on a quiet machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*arguments: str) -> str:
    finished = subprocess.run([sys.executable, *arguments], cwd=ROOT, capture_output=True, text=True,
                              timeout=600)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    return finished.stdout


def test_scan_load_runs_every_phase_without_a_failed_request() -> None:
    report = run_bench("bench/scan_load.py", "--seconds", "1", "--clients", "3", "--pages", "3")
    assert ", 0 failed requests" in report
    assert "the same POST saving the scan (save_scan) and nothing else:" in report
    assert "ratio: app CPU / bare client CPU =" in report
    assert "with 3 live pages open" in report


def test_lists_bench_times_every_page_and_both_exports() -> None:
    report = run_bench("bench/lists_bench.py", "--scans", "3000", "--small", "1000", "--repeat", "1")
    for page in ("/scans unfiltered", "/scans 1,000 pages deep", "totals checker", "/reports 90 days"):
        assert page in report
    assert "export csv: 3,000 rows" in report
    assert "export xlsx: 3,000 rows" in report


def test_plant_day_runs_both_phases_and_reports_every_figure() -> None:
    report = run_bench("bench/plant_day.py", "--scans", "2000", "--seconds", "3", "--rounds", "1",
                       "--stations", "4", "--lists", "2", "--reporters", "2", "--minute", "2",
                       "--admins", "1", "--exports", "2")
    assert "without exports   :" in report and "with 2 exports    :" in report
    assert "ratio: scan p99 with exports / without =" in report
    assert "app resident memory:" in report and "/healthz slowest answer in the whole run:" in report
    assert "exports: " in report and "errors: 0" in report


def test_replica_reads_runs_its_three_phases_and_the_replica_serves() -> None:
    report = run_bench("bench/replica_reads.py", "--seconds", "2", "--scans", "2000", "--readers", "2")
    lines = {line.split("  ")[0]: line for line in report.splitlines() if "reads/s" in line}
    assert set(lines) == {"primary only", "with the replica", "replica lagging (SQL thread stopped)"}
    assert all("not 200: none" in line for line in lines.values())
    assert "served: {'reads': " in lines["with the replica"]
    assert "served: {'lagging': " in lines["replica lagging (SQL thread stopped)"]


def test_import_bench_imports_the_file_and_then_finds_every_row_stored() -> None:
    report = run_bench("bench/import_bench.py", "--rows", "600", "--batch", "100")
    assert "import into an empty database:" in report and "rows/s" in report
    assert "imported history.csv: 600 scans (" in report
    assert "imported history.csv: 0 scans (0 re-scans), 600 duplicates" in report


def test_alerts_bench_reports_cpu_per_scan() -> None:
    report = run_bench("bench/alerts_bench.py", "--scans", "2000", "--rules", "4", "--repeat", "1")
    assert report.count("app CPU per scan evaluating every rule:") == 3


@pytest.mark.xdist_group("cluster")  # beside the suite's own cluster, not at once with it
def test_cluster_revocations_measures_both_layouts_and_a_row_per_server_never_conflicts() -> None:
    report = run_bench("bench/cluster_revocations.py", "--per-node", "5", "--rounds", "1")
    lines = {line.split(" transactions")[0].strip(): line for line in report.splitlines()
             if "transactions" in line}
    assert set(lines) == {"one row (0006)", "a row per server (0019)"}
    assert "first try 10  reruns 0  gave up (503) 0  most tries 1" in lines["a row per server (0019)"]
