"""Faults under load: stations keep scanning while MariaDB is restarted (and
crashed) under the app and other clients drop their requests mid-flight; at
the end every submission is reconciled against the database.

    .venv/bin/python bench/faults.py                       # 120 s, 10 stations
    .venv/bin/python bench/faults.py --seconds 300 --restart-every 40

* stations: each posts a scan every --pace seconds and, like the browser's
  queue, re-sends the same submission id after any failure (refused
  connection, 503) until it gets a 200 — its acknowledged scans;
* droppers: open a connection, send a scan POST (the whole request, or only
  part of its body) and close the socket without reading the answer;
* the database: every --restart-every seconds MariaDB goes away for --down
  seconds, alternately a clean stop (SIGTERM) and a crash (SIGKILL).

Reconciliation: every acknowledged submission is saved exactly once; each
dropped one is saved at most once, and re-sending it afterwards gets "already
saved" exactly when a row exists (the app never claims a scan it does not
have); no row belongs to a submission nobody sent; piece verdicts and order
counts agree with the scans. 127.0.0.1 and a unix socket only; bounded by
--seconds (plus at most --settle to finish retries); stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from scan_load import App, cpu_seconds, prepare, query, scan_form, signed_in  # noqa: E402

from quality.localdb import LocalMariaDB  # noqa: E402
from quality.settings import DatabaseURL  # noqa: E402

ALREADY_SAVED = "This scan had already been saved."


@dataclass
class Ledger:
    """What the clients know: every form sent, and which were acknowledged."""

    forms: dict[str, dict[str, str]] = field(default_factory=dict)
    acknowledged: set[str] = field(default_factory=set)
    dropped: set[str] = field(default_factory=set)
    unresolved: set[str] = field(default_factory=set)  # retried until the end, never answered
    failed_requests: int = 0
    ack_times: list[float] = field(default_factory=list)
    outages: list[tuple[float, float, str]] = field(default_factory=list)  # (down, up, how)


async def main(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="qfault-", dir="/tmp"))
    server = LocalMariaDB(base)
    server.ensure_running()
    url = server.url()
    try:
        await prepare(url, 0)
        app = App(url, args.pool_max)
        await app.wait_ready()
        try:
            ledger = await run(app, server, args)
            app_cpu = cpu_seconds(app.process.pid)
            await reconcile(app, url, ledger, app_cpu, args)
        finally:
            app.stop()
    finally:
        server.release()
        shutil.rmtree(base, ignore_errors=True)


async def run(app: App, server: LocalMariaDB, args: argparse.Namespace) -> Ledger:
    ledger = Ledger()
    sessions = [await signed_in(app.base) for _ in range(args.stations + args.droppers)]
    started = time.monotonic()
    deadline = started + args.seconds

    async def station(index: int, http: httpx2.AsyncClient, csrf: str) -> None:
        n = 0
        while time.monotonic() < deadline:
            form = scan_form(n, index)
            submission = form["submission_id"]
            ledger.forms[submission] = form
            settle = deadline + args.settle
            while True:  # the browser's queue: the same submission until answered
                try:
                    answer = await http.post("/scan", data=form, headers={
                        "HX-Request": "true", "X-CSRF-Token": csrf})
                    if answer.status_code == 200:
                        ledger.acknowledged.add(submission)
                        ledger.ack_times.append(time.monotonic())
                        break
                except httpx2.TransportError:
                    pass
                ledger.failed_requests += 1
                if time.monotonic() > settle:
                    ledger.unresolved.add(submission)
                    return
                await asyncio.sleep(0.5)
            n += 1
            await asyncio.sleep(args.pace)

    async def dropper(index: int, http: httpx2.AsyncClient, csrf: str) -> None:
        cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
        n = 0
        while time.monotonic() < deadline:
            form = scan_form(n, 500 + index)
            ledger.forms[form["submission_id"]] = form
            ledger.dropped.add(form["submission_id"])
            await drop_request(app.port, cookie, csrf, form, whole=bool(n % 2))
            n += 1
            await asyncio.sleep(args.pace)

    async def database_faults() -> None:
        crash = False
        while time.monotonic() + args.restart_every < deadline:
            await asyncio.sleep(args.restart_every)
            down = time.monotonic()
            # A clean stop, then a crash: stop(timeout=0) follows SIGTERM with SIGKILL at once.
            await asyncio.to_thread(server.stop, 0 if crash else 60)
            await asyncio.sleep(args.down)
            await asyncio.to_thread(server.ensure_running)
            up = time.monotonic()
            ledger.outages.append((down, up, "crash" if crash else "stop"))
            print(f"  {up - started:6.1f} s: MariaDB {'crashed' if crash else 'stopped'}, "
                  f"back after {up - down:.1f} s")
            crash = not crash

    async def report() -> None:
        while time.monotonic() < deadline:
            await asyncio.sleep(min(args.report_every, max(0.1, deadline - time.monotonic())))
            print(f"  {time.monotonic() - started:6.1f} s: {len(ledger.acknowledged):6d} "
                  f"acknowledged, {len(ledger.dropped):5d} dropped, "
                  f"{ledger.failed_requests:4d} failed requests (retried)")

    print(f"{args.stations} stations (a scan every {args.pace:g} s each), {args.droppers} "
          f"droppers, {args.seconds:g} s, pool max {args.pool_max}; MariaDB down for "
          f"{args.down:g} s every {args.restart_every:g} s")
    await asyncio.gather(
        *(station(i, *sessions[i]) for i in range(args.stations)),
        *(dropper(i, *sessions[args.stations + i]) for i in range(args.droppers)),
        database_faults(), report(),
    )
    for http, _ in sessions:
        await http.aclose()
    return ledger


async def drop_request(port: int, cookie: str, csrf: str, form: dict[str, str],
                       whole: bool) -> None:
    """Send a scan POST (all of it, or half its body) and hang up without the answer."""
    body = urlencode(form).encode()
    head = (f"POST /scan HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n"
            f"HX-Request: true\r\nX-CSRF-Token: {csrf}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    try:
        writer.write(head + (body if whole else body[: len(body) // 2]))
        await writer.drain()
        await asyncio.sleep(random.uniform(0, 0.02))  # sometimes before, sometimes during the save
    finally:
        writer.transport.abort()


async def reconcile(app: App, url: DatabaseURL, ledger: Ledger, app_cpu: float,
                    args: argparse.Namespace) -> None:
    rows = dict(await query(url, "SELECT LOWER(HEX(submission_id)), COUNT(*) FROM scans"
                                 " GROUP BY submission_id"))
    lost = [s for s in ledger.acknowledged if rows.get(s) != 1]
    doubled = [s for s, count in rows.items() if count > 1]
    phantom = [s for s in rows if s not in ledger.forms]
    dropped_saved = sum(1 for s in ledger.dropped if s in rows)

    # Re-send every dropped submission: the app must say "already saved" exactly
    # when the row exists, and save the others now, once.
    false_claims = false_denials = 0
    http, csrf = await signed_in(app.base)
    for submission in sorted(ledger.dropped):
        answer = await http.post("/scan", data=ledger.forms[submission], headers={
            "HX-Request": "true", "X-CSRF-Token": csrf})
        claimed = answer.status_code == 200 and ALREADY_SAVED in answer.text
        false_claims += claimed and submission not in rows
        false_denials += not claimed and submission in rows
    await http.aclose()
    after = dict(await query(url, "SELECT LOWER(HEX(submission_id)), COUNT(*) FROM scans"
                                  " GROUP BY submission_id"))
    dropped_not_once = sum(1 for s in ledger.dropped if after.get(s) != 1)
    (verdicts_wrong,), = await query(url, (
        "SELECT COUNT(*) FROM piece_verdicts v WHERE v.last_scan_id <> (SELECT MAX(id)"
        " FROM scans s WHERE s.station = v.station AND s.piece_code = v.piece_code)"))
    (counts_wrong,), = await query(url, (
        "SELECT COUNT(*) FROM order_counts c WHERE (c.approved, c.rejected) <> (SELECT"
        " COALESCE(SUM(v.approved), 0), COALESCE(SUM(NOT v.approved), 0) FROM piece_verdicts v"
        " WHERE v.station = c.station AND v.order_code = c.order_code)"))

    recoveries = []
    for _, up, _ in ledger.outages:
        later = [t for t in ledger.ack_times if t >= up]
        if later:
            recoveries.append(min(later) - up)
    saved = len(rows)
    print(f"\nacknowledged {len(ledger.acknowledged):,}, dropped {len(ledger.dropped):,} "
          f"({dropped_saved:,} of them saved before the hang-up), unresolved at the end "
          f"{len(ledger.unresolved)}, failed requests retried {ledger.failed_requests:,}")
    print(f"database outages: {len(ledger.outages)} "
          f"({sum(1 for *_, how in ledger.outages if how == 'crash')} crashes); first "
          f"acknowledged scan after the server was back: "
          + (f"max {1000 * max(recoveries):.0f} ms, median "
             f"{1000 * sorted(recoveries)[len(recoveries) // 2]:.0f} ms" if recoveries else "—"))
    print(f"throughput with faults: {len(ledger.acknowledged) / args.seconds:.1f} acknowledged "
          f"scans/s; app CPU {1000 * app_cpu / max(saved, 1):.2f} ms per saved scan "
          "(whole run, dropped requests included)")
    print(f"reconcile: acknowledged but not saved exactly once {len(lost)}, saved twice "
          f"{len(doubled)}, rows nobody sent {len(phantom)}, claimed 'already saved' without "
          f"a row {false_claims}, saved but not claimed {false_denials}, dropped not saved "
          f"exactly once after re-sending {dropped_not_once}, piece verdicts wrong "
          f"{verdicts_wrong}, order counts wrong {counts_wrong}")
    problems = (len(lost) + len(doubled) + len(phantom) + false_claims + false_denials
                + dropped_not_once + verdicts_wrong + counts_wrong)
    print("result: " + ("OK" if not problems else f"{problems} PROBLEM(S)"))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--stations", type=int, default=10)
    parser.add_argument("--droppers", type=int, default=3)
    parser.add_argument("--pace", type=float, default=0.1, help="seconds between a client's scans")
    parser.add_argument("--pool-max", type=int, default=5)
    parser.add_argument("--restart-every", type=float, default=20.0)
    parser.add_argument("--down", type=float, default=2.0, help="seconds MariaDB stays down")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="seconds after --seconds to finish re-sending unanswered scans")
    parser.add_argument("--report-every", type=float, default=10.0)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
