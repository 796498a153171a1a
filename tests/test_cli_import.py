"""`quality import FILE.csv` through the command, against the real database:
the scan list's own CSV export imported into an empty database gives every
figure again; rows out of order, back-filled and repeated; rejected rows
reported by number and column; a dry run changes nothing; plant times across
a DST change; files that cannot be imported change nothing."""

from __future__ import annotations

import csv
import io
import os
import pty
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from quality.accounts import create_user
from quality.app import create_app
from quality.clock import to_plant, utc_now
from quality.demo import fill
from quality.localdb import LocalMariaDB
from quality.scans.csv_columns import COLUMNS
from quality.scans.store import save_scan
from quality.settings import DatabaseURL, Settings
from quality.summary.writer import summarise_all
from tests.conftest import (
    PASSWORD,
    Template,
    database_for,
    execute,
    login,
    new_database,
    run_async,
    using,
)
from tests.test_scan_list import PLANT_SHIFTS, ZONE, plant_settings
from tests.test_scans_store import scan_input

HEADER = [str(column) for column in COLUMNS]
# Every table a figure is read from, each row by what it means (no ids).
FIGURE_TABLES = {
    "scan_summary": "SELECT * FROM scan_summary",
    "scan_hourly": "SELECT * FROM scan_hourly",
    "scan_checker_hourly": "SELECT * FROM scan_checker_hourly",
    "scan_daily_order": "SELECT * FROM scan_daily_order",
    "scan_daily_operator": "SELECT * FROM scan_daily_operator",
    "scan_shifts": "SELECT * FROM scan_shifts",
    "order_counts": "SELECT * FROM order_counts",
    "piece_verdicts": "SELECT v.station, v.piece_code, v.order_code, v.approved, s.defect_code,"
                      " DATE_FORMAT(s.created_at, '%Y-%m-%d %H:%i:%s') FROM piece_verdicts v"
                      " JOIN scans s ON s.id = v.last_scan_id",
    "scans": "SELECT station, DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s'), operator_code, piece_code,"
             " order_code, checker1_code, checker2_code, defect_code, defect_name, approved, is_rescan"
             " FROM scans",
}
WHOLE_STATE = {**FIGURE_TABLES, "operator_shift_scans": "SELECT * FROM operator_shift_scans",
               "users": "SELECT id, username FROM users", "audit_log": "SELECT id FROM audit_log"}


def quality(url: DatabaseURL, *args: str, stderr: Any = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUALITY_DATABASE_URL": url.as_url(),
           "QUALITY_SECRET_KEY": "cli-test-secret-0123456789", "QUALITY_TIMEZONE": "Europe/Bucharest",
           "QUALITY_LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "-m", "quality", *args], env=env, stdout=subprocess.PIPE,
                          stderr=stderr, text=True, timeout=240, cwd=Path(__file__).parent)


def state(url: DatabaseURL, tables: dict[str, str] = FIGURE_TABLES) -> dict[str, list[tuple]]:
    found = run_async(execute(url, *tables.values()))
    return {name: sorted(rows, key=repr) for name, rows in zip(tables, found, strict=True)}


def write(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([header, *rows])
    return path


def row(at: str, piece: str, defect: str = "000", station: str = "quality", operator: str = "OP01",
        rescan: str = "") -> list[str]:
    return [at, station, operator, piece, piece[:10], "OC01", "OC02", defect, "", "", rescan]


@pytest.fixture
def second_db_url(mariadb: LocalMariaDB, migrated_template: Template) -> Iterator[DatabaseURL]:
    """Another empty, migrated database: where the export is imported."""
    with new_database(mariadb) as url:
        yield migrated_template.copy_into(url)


def figures_pages(settings: Settings, username: str) -> dict[str, str]:
    """The totals and report pages' figures as a supervisor sees them."""
    today = to_plant(utc_now(), ZONE).date()
    pages = {"totals": "/scans/totals", "fg totals": "/scans/totals?station=fg",
             "reports": f"/reports?from={today - timedelta(days=7)}&to={today}",
             "one day": f"/reports?from={today - timedelta(days=2)}&to={today - timedelta(days=2)}"}
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as client:
        login(client, username)
        answers = {name: client.get(path) for name, path in pages.items()}
    assert all(answer.status_code == 200 for answer in answers.values())
    # The figures: what the pages say, without their tokens and nonces.
    return {name: re.sub(r'(nonce|value|content)="[^"]*"|"X-CSRF-Token": "[^"]*"', "", answer.text)
            for name, answer in answers.items()}


def test_export_imported_into_an_empty_database_gives_every_figure_again(
        db_url: DatabaseURL, second_db_url: DatabaseURL, make_user: Any, tmp_path: Path) -> None:
    source = plant_settings(db_url)

    async def scans() -> None:
        db = database_for(db_url)
        try:
            await fill(db, 1500, 6, PLANT_SHIFTS, seed=22)
            # Saves as a station makes them: re-scans, across both stations, a verdict flipped back.
            saves = [("quality", "-0001", "104"), ("fg", "-0001", "000"), ("quality", "-0001", "000"),
                     ("fg", "-0001", "105"), ("quality", "-0002", "000"), ("quality", "-0001", "102")]
            for station, piece, defect in saves:
                await save_scan(db, station, scan_input("CP00000900" + piece, defect), 1, PLANT_SHIFTS,
                                at=utc_now() - timedelta(minutes=5))
            await summarise_all(db, PLANT_SHIFTS)
        finally:
            await db.close()

    run_async(scans())
    make_user("super", "supervisor")
    stored = state(db_url)
    rescans = len(stored["scans"]) - len(stored["piece_verdicts"])
    with TestClient(create_app(source), client=("127.0.0.1", 50000)) as client:
        login(client, "super")
        export = client.get("/scans/export.csv")
    assert export.status_code == 200
    exported = tmp_path / "scans.csv"
    exported.write_bytes(export.content)
    assert len(export.text.splitlines()) == 1 + 1506

    imported = quality(second_db_url, "import", str(exported))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == (
        f"quality: imported scans.csv: 1,506 scans ({rescans:,} re-scans), 0 duplicates of"
        " stored scans skipped, 0 rows rejected, of 1,506 rows; summaries up to date")
    # Scans of the last 30 s wait for the summariser; both databases take them in.
    run_async(_summarise(second_db_url))
    assert state(second_db_url) == stored
    # The operators' counters of the imported shifts count every imported scan (before an app
    # starts: the first start under its shift settings drops them, to count again at each look).
    counters = run_async(execute(second_db_url, "SELECT SUM(scans) FROM operator_shift_scans"))[0][0][0]
    assert counters == 1506
    run_async(using(second_db_url, lambda db: create_user(db, "super", PASSWORD, "supervisor")))
    pages = figures_pages(source, "super")
    assert "1,506" in pages["reports"] and "1,506" in pages["totals"]
    assert figures_pages(plant_settings(second_db_url), "super") == pages

    # The same file again, into either database: nothing new.
    for url in (second_db_url, db_url):
        before = state(url)
        again = quality(url, "import", str(exported))
        assert again.returncode == 0
        assert "1,506 duplicates" in again.stdout and ": 0 scans" in again.stdout
        assert state(url) == before


def test_the_export_saved_back_by_a_spreadsheet_in_romanian_is_imported_as_it_was(
        db_url: DatabaseURL, second_db_url: DatabaseURL, make_user: Any, tmp_path: Path) -> None:
    assert shutil.which("soffice"), "LibreOffice is missing: run scripts/setup --test"
    make_user("sef", "supervisor")

    async def scans() -> None:
        db = database_for(db_url)
        try:
            saves = [("quality", "-0001", "104"), ("quality", "-0002", "000"), ("fg", "-0001", "000"),
                     ("quality", "-0001", "000"), ("quality", "-0003", "201"), ("fg", "-0001", "105")]
            for minutes, (station, piece, defect) in enumerate(saves):
                await save_scan(db, station, scan_input("CP00000777" + piece, defect), 1, PLANT_SHIFTS,
                                at=utc_now() - timedelta(minutes=60 - minutes))
            await summarise_all(db, PLANT_SHIFTS)
        finally:
            await db.close()

    run_async(scans())
    run_async(execute(db_url, "UPDATE users SET language = 'ro' WHERE username = 'sef'"))
    with TestClient(create_app(plant_settings(db_url)), client=("127.0.0.1", 50000)) as client:
        login(client, "sef")
        export = client.get("/scans/export.csv")
    assert export.status_code == 200 and export.text.startswith("\ufeffOra,Post,")
    (tmp_path / "export").mkdir()
    exported = tmp_path / "export" / "scanari.csv"
    exported.write_bytes(export.content)
    # Opened in a spreadsheet and saved again as CSV with semicolons, as a Romanian locale does.
    subprocess.run(["soffice", f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}", "--headless",
                    "--infilter=CSV:44,34,76,1", "--convert-to", "csv:Text - txt - csv (StarCalc):59,34,76,1",
                    "--outdir", str(tmp_path), str(exported)], check=True, timeout=240, capture_output=True)
    saved_back = (tmp_path / "scanari.csv").read_text(encoding="utf-8")
    assert saved_back.startswith('"Ora";"Post";') and ";0;" in saved_back  # 000 became the number 0

    done = quality(second_db_url, "import", str(tmp_path / "scanari.csv"))
    assert done.returncode == 0, done.stderr
    assert "6 scans (2 re-scans)" in done.stdout and "0 rows rejected" in done.stdout
    run_async(_summarise(second_db_url))
    assert state(second_db_url) == state(db_url)


async def _summarise(url: DatabaseURL) -> None:
    db = database_for(url)
    try:
        await summarise_all(db, PLANT_SHIFTS)
    finally:
        await db.close()


def test_rows_out_of_order_are_saved_oldest_first_and_a_back_filled_older_scan_keeps_the_newer_verdict(
        db_url: DatabaseURL, tmp_path: Path) -> None:
    newest_first = write(tmp_path / "history.csv", [
        row("2026-11-03T11:00:00+02:00", "CP00000001-0001", "000"),
        row("2026-11-03T12:00:00+02:00", "CP00000001-0002", "104"),
        row("2026-11-03T10:00:00+02:00", "CP00000001-0001", "104"),
        row("2026-11-03T09:00:00+02:00", "CP00000001-0001", "105"),
    ])
    done = quality(db_url, "import", str(newest_first), "--batch", "1")
    assert done.returncode == 0, done.stderr
    assert "4 scans (2 re-scans)" in done.stdout
    scans = state(db_url)
    assert sorted((piece, at, defect, rescan) for _, at, _, piece, _, _, _, defect, _, _, rescan
                  in scans["scans"]) == [
        ("CP00000001-0001", "2026-11-03 07:00:00", "105", 0),
        ("CP00000001-0001", "2026-11-03 08:00:00", "104", 1),
        ("CP00000001-0001", "2026-11-03 09:00:00", "000", 1),
        ("CP00000001-0002", "2026-11-03 10:00:00", "104", 0)]
    assert scans["order_counts"] == [("quality", "CP00000001", 1, 1)]
    assert [verdict[:5] for verdict in scans["piece_verdicts"]] == [
        ("quality", "CP00000001-0001", "CP00000001", 1, "000"),
        ("quality", "CP00000001-0002", "CP00000001", 0, "104")]

    # A later file: a newer re-scan of a stored piece, and an older scan of it back-filled.
    later = write(tmp_path / "later.csv", [
        row("2026-11-03T08:30:00+02:00", "CP00000001-0002", "000"),
        row("2026-11-03T12:30:00+02:00", "CP00000001-0001", "104"),
        row("2026-11-03T08:00:00+02:00", "CP00000001-0001", "000"),
    ])
    done = quality(db_url, "import", str(later))
    assert done.returncode == 0
    assert "1 scans (1 re-scans)" in done.stdout and "2 rows rejected" in done.stdout
    assert done.stderr.splitlines() == [
        "quality: later.csv row 2, Time: Older than this piece's latest scan at its station, stored already"
        " (2026-11-03 10:00:00 UTC): saved now, it would replace a newer verdict.",
        "quality: later.csv row 4, Time: Older than this piece's latest scan at its station, stored already"
        " (2026-11-03 09:00:00 UTC): saved now, it would replace a newer verdict."]
    scans = state(db_url)
    assert scans["order_counts"] == [("quality", "CP00000001", 0, 2)]
    assert [verdict[3:6] for verdict in scans["piece_verdicts"]] == [
        (0, "104", "2026-11-03 10:30:00"), (0, "104", "2026-11-03 10:00:00")]


def test_a_row_newer_than_a_station_scan_is_a_re_scan_of_it(db_url: DatabaseURL, tmp_path: Path,
                                                            make_user: Any) -> None:
    make_user("op", "operator")

    async def scanned() -> None:
        db = database_for(db_url)
        try:
            await save_scan(db, "fg", scan_input("CP00000002-0001", "104"), 1, PLANT_SHIFTS,
                            at=datetime(2026, 11, 3, 6))
        finally:
            await db.close()

    run_async(scanned())
    done = quality(db_url, "import", str(write(tmp_path / "f.csv", [
        row("2026-11-03T10:00:00+02:00", "CP00000002-0001", "000", station="Finished goods scan"),
        row("2026-11-03T10:00:00+02:00", "CP00000002-0001", "000", station="quality")])))
    assert done.returncode == 0 and "2 scans (1 re-scans)" in done.stdout
    scans = state(db_url)
    assert sorted(scans["order_counts"]) == [("fg", "CP00000002", 1, 0), ("quality", "CP00000002", 1, 0)]


def test_rejected_rows_are_named_by_row_and_column_and_the_rest_are_imported(
        db_url: DatabaseURL, tmp_path: Path) -> None:
    now = utc_now()
    file = write(tmp_path / "mixed.csv", [
        row("2026-11-03 10:00:00", "CP00000003-0001"),
        row("2026-11-03 10:00:00", "CP00000003-0002", operator="X1"),
        row("2026-11-03 10:00:00", "CP00000003-0003", station="paint"),
        row("yesterday", "CP00000003-0004"),
        row((now + timedelta(hours=1)).isoformat() + "+00:00", "CP00000003-0005"),
        row("2026-11-03 10:00:00", "CP00000003-0006", defect="999"),
        [*row("2026-11-03 10:00:00", "CP00000003-0007")[:4], "CP00000009", *row("", "")[5:]],
        row("2026-11-03 10:00:00", ""),
        row("2026-11-03 10:00:00", "CP00000003-0009", defect="104"),
    ])
    done = quality(db_url, "import", str(file))
    assert done.returncode == 0
    assert done.stderr.splitlines() == [
        "quality: mixed.csv row 3, Operator: Operator code must look like OP07.",
        "quality: mixed.csv row 4, Station: Not a station of this app: quality, fg.",
        "quality: mixed.csv row 5, Time: Not a time: write it as 2026-03-29 08:15:00, with its UTC offset"
        " (2026-03-29T08:15:00+03:00) or in the plant's zone.",
        "quality: mixed.csv row 6, Time: Later than now: a scan cannot be made in the future.",
        "quality: mixed.csv row 7, Defect code: Not a defect code in use: the defect catalogue lacks it,"
        " or it is no longer active.",
        "quality: mixed.csv row 8, Order: Not the piece code's first 10 characters (CP00000003).",
        "quality: mixed.csv row 9, Piece: Piece code is missing: scan or type it."]
    assert done.stdout.strip() == ("quality: imported mixed.csv: 2 scans (0 re-scans), 0 duplicates of stored"
                                   " scans skipped, 7 rows rejected, of 9 rows; summaries up to date")
    assert sorted(scan[3] for scan in state(db_url)["scans"]) == ["CP00000003-0001", "CP00000003-0009"]
    (entry,) = run_async(execute(db_url, "SELECT actor, action, target, after_value FROM audit_log"
                                         " WHERE action = 'scans.import'"))[0]
    assert entry[0].startswith("terminal:") and entry[1:3] == ("scans.import", "mixed.csv")
    assert '"imported": 2' in entry[3] and '"rejected": 7' in entry[3] and '"rows": 9' in entry[3]


def test_a_dry_run_reports_what_the_import_would_do_and_changes_nothing(
        db_url: DatabaseURL, tmp_path: Path) -> None:
    first = write(tmp_path / "first.csv", [row("2026-11-03 10:00:00", "CP00000004-0001", "104")])
    assert quality(db_url, "import", str(first)).returncode == 0
    file = write(tmp_path / "second.csv", [
        row("2026-11-03 10:00:00", "CP00000004-0001", "104"),  # stored already
        row("2026-11-03 11:00:00", "CP00000004-0001", "000"),  # a re-scan of a stored piece
        row("2026-11-03 10:30:00", "CP00000004-0002", "104"),
        row("2026-11-03 10:40:00", "CP00000004-0002", "000"),  # a re-scan of a piece earlier in the file
        row("2026-11-03 10:40:00", "CP00000004-0002", "000"),  # the row before, twice
        row("2026-11-03 10:40:00", "CP00000004-0003", "9X"),
    ])
    before = state(db_url, WHOLE_STATE)
    dry = quality(db_url, "import", str(file), "--dry-run")
    assert dry.returncode == 0
    assert dry.stdout.strip() == ("quality: dry run of second.csv: would import 3 scans (2 re-scans),"
                                  " 2 duplicates of stored scans skipped, 1 rows rejected, of 6 rows;"
                                  " nothing changed")
    assert dry.stderr.splitlines() == [
        "quality: second.csv row 7, Defect code: Defect code must look like 000 or 104."]
    assert state(db_url, WHOLE_STATE) == before
    done = quality(db_url, "import", str(file))
    # Did what the dry run said it would.
    assert done.stdout.split(": ", 2)[2].split(";")[0] == dry.stdout.split("would import ")[1].split(";")[0]
    assert "3 scans (2 re-scans)" in done.stdout


def test_plant_times_across_a_dst_change_and_times_with_their_offset(
        db_url: DatabaseURL, tmp_path: Path) -> None:
    file = write(tmp_path / "dst.csv", [
        row("2026-10-25 02:30:00", "CP00000005-0001"),  # summer time, +03:00
        row("2026-10-25 03:30:00", "CP00000005-0002"),  # the clocks showed it twice
        row("2026-10-25T03:30:00+03:00", "CP00000005-0003"),
        row("2026-10-25T03:30:00+02:00", "CP00000005-0004"),
        row("2026-10-25 04:30:00", "CP00000005-0005"),  # winter time, +02:00
        row("2026-03-29 03:30:00", "CP00000005-0006"),  # the clocks skipped it
        row("2026-03-29 04:30:00", "CP00000005-0007"),  # +03:00
        row("2026-03-29T01:30:00Z", "CP00000005-0008"),
    ])
    done = quality(db_url, "import", str(file))
    assert done.returncode == 0
    assert done.stderr.splitlines() == [
        "quality: dst.csv row 3, Time: The plant's clocks showed this time twice (a DST change): give its UTC"
        " offset.",
        "quality: dst.csv row 7, Time: The plant's clocks skipped this time (a DST change): give its UTC"
        " offset."]
    assert sorted((scan[3][-1], scan[1]) for scan in state(db_url)["scans"]) == [
        ("1", "2026-10-24 23:30:00"), ("3", "2026-10-25 00:30:00"), ("4", "2026-10-25 01:30:00"),
        ("5", "2026-10-25 02:30:00"), ("7", "2026-03-29 01:30:00"), ("8", "2026-03-29 01:30:00")]


def test_a_spreadsheet_saved_back_in_romanian_with_semicolons_is_read(
        db_url: DatabaseURL, tmp_path: Path) -> None:
    from quality.i18n import translator

    romanian = translator("ro")
    header = [romanian(column) for column in COLUMNS]
    assert header != HEADER
    text = io.StringIO()
    csv.writer(text, delimiter=";").writerows([
        header, [*row("2026-11-03 10:00:00", "CP00000006-0001", "104")[:1], romanian("Quality scan"),
                 *row("", "CP00000006-0001", "104")[2:]]])
    file = tmp_path / "foaie.csv"
    file.write_text(text.getvalue(), encoding="utf-8")
    done = quality(db_url, "import", str(file))
    assert done.returncode == 0, done.stderr
    assert "1 scans" in done.stdout


@pytest.mark.parametrize(("content", "message"), [
    (b"", "quality: {path} is empty: it needs a header row and a row per scan"),
    (",".join(HEADER).encode() + b"\n", "quality: {path} holds no scans, only its header"),
    (b"Time,Station,Operator,Piece\n2026-11-03 10:00:00,quality,OP01,CP00000007-0001\n",
     "quality: {path} lacks the column(s) Checker 1, Checker 2, Defect code; its first row must name the"
     " columns of the scan list's CSV export: Time, Station, Operator, Piece, Checker 1, Checker 2,"
     " Defect code"),
    ((",".join(HEADER) + '\n"' + "a" * 200_000 + "\n").encode(),
     "quality: {path} is not a CSV file the import can read (row 2: field larger than field limit (131072))"),
    # A spreadsheet's "CSV" in the Windows code page of Central Europe: ş is byte 0xBA.
    ((",".join(HEADER) + "\n2026-11-03 10:00:00,Calitate ş,OP01,CP00000007-0001,,OC01,OC02,000,,,\n")
     .encode("cp1250"), "quality: {path} is not UTF-8 text (byte 119 is not); save it as CSV UTF-8"),
# Named: a test's id goes into the environment its subprocesses inherit
# (PYTEST_CURRENT_TEST), and a 200,000-byte one is too big to start them with.
], ids=["empty", "header-only", "columns-missing", "field-too-large", "cp1250"])
def test_a_file_that_cannot_be_imported_is_one_line_and_changes_nothing(
        db_url: DatabaseURL, tmp_path: Path, content: bytes, message: str) -> None:
    file = tmp_path / "bad.csv"
    file.write_bytes(content)
    before = state(db_url, WHOLE_STATE)
    for options in ((), ("--dry-run",)):
        done = quality(db_url, "import", str(file), *options)
        assert (done.returncode, done.stdout, done.stderr.splitlines()) == \
            (2, "", [message.format(path=file)])
    assert state(db_url, WHOLE_STATE) == before


def test_the_progress_bar_is_shown_on_a_terminal_only(db_url: DatabaseURL, tmp_path: Path) -> None:
    file = write(tmp_path / "bar.csv",
                 [row(f"2026-11-03 10:00:{n:02d}", f"CP00000008-{n:04d}") for n in range(30)])
    plain = quality(db_url, "import", str(file), "--dry-run", "--batch", "10")
    assert plain.stderr == ""
    leader, follower = pty.openpty()
    try:
        shown = quality(db_url, "import", str(file), "--dry-run", "--batch", "10", stderr=follower)
        os.close(follower)
        follower = -1
        output = b""
        while chunk := _read(leader):
            output += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert shown.returncode == 0
    assert b"10 / 30 scans (33%)" in output and b"30 / 30 scans (100%)" in output


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except OSError:  # the terminal's other end is closed: all is read
        return b""
