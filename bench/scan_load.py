"""Cost of a saved scan: the app against a bare asyncmy client doing the same
database work, on a private MariaDB started for the run.

    .venv/bin/python bench/scan_load.py                   # 25 clients, 20 s per phase
    .venv/bin/python bench/scan_load.py --seed 1000000    # with 1M scans already stored

Phases, each measured by the CPU the processes spent (from /proc), not by
requests per second, since the load generator shares this machine's cores:

1. app: `quality serve` (one process), first one client then N clients posting scans back to back
   over HTTP; CPU of the app process and of mariadbd per saved scan, latency
   of each POST as the client saw it, and the server's own count of the app's
   connections, sampled throughout.
   floor: the same POSTs to uvicorn + Starlette with no database, session or
   template (bench/floor_app.py): the HTTP stack's own cost per request; and
   the same again saving each scan as the app does (save_scan) and nothing
   else: the least a scan's POST can cost on this stack.
2. bare: one process with N asyncmy tasks doing, per scan, what a plain
   implementation does with no HTTP: the insert (record_scan) and the
   latest-50 query with its per-order counts.
3. live pages: database statements per second with 0 and with 100 open
   live tables (server-sent event streams) while one client scans.

Everything runs on 127.0.0.1 / a unix socket, is bounded by --seconds, and
stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncmy
import httpx2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quality.accounts import create_user  # noqa: E402
from quality.clock import utc_now  # noqa: E402
from quality.codes import APPROVED  # noqa: E402
from quality.db import Database  # noqa: E402
from quality.http.slots import STREAMS_PER_USER  # noqa: E402
from quality.localdb import LocalMariaDB  # noqa: E402
from quality.migrate import migrate  # noqa: E402
from quality.scans.store import ROW_SELECT  # noqa: E402
from quality.settings import DatabaseURL, Settings  # noqa: E402
from quality.shifts import Shifts  # noqa: E402

PASSWORD = "bench-password-1"
SHIFTS = Shifts(Settings.shifts, ZoneInfo("UTC"))  # the app's, as the bench runs it
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scan_form(n: int, client: int) -> dict[str, str]:
    order = 10_000_000 + client * 1000 + n // 20
    return {
        "operator_code": f"OP{client % 100:02d}",
        "piece_code": f"CP{order:08d}-{n % 20:04d}",
        "checker1_code": "OC01",
        "checker2_code": "OC02",
        "defect_code": "000" if n % 7 else "104",
        "submission_id": secrets.token_hex(16),
    }


async def query(url: DatabaseURL, sql: str) -> list[tuple[Any, ...]]:
    conn = await asyncmy.connect(**url.connect_kwargs())
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql)
            return list(await cur.fetchall())
    finally:
        conn.close()


# -- set-up ---------------------------------------------------------------------


def viewers(pages: int) -> list[str]:
    """Users enough to keep `pages` live pages open (a user may keep a few per process)."""
    return [f"viewer{n}" for n in range(-(-pages // STREAMS_PER_USER))]


async def prepare(url: DatabaseURL, seed: int, pages: int) -> None:
    db = Database(url.connect_kwargs(), minsize=0, maxsize=1, query_timeout=600)
    try:
        await migrate(db)
        for username in ["bench", *viewers(pages)]:
            await create_user(db, username, PASSWORD, "operator")
        if seed:
            started = time.monotonic()
            async with db.transaction() as cur:
                await cur.execute("SET SESSION max_statement_time = 0")
                await cur.execute(
                    "INSERT INTO scans (station, submission_id, operator_code, piece_code,"
                    " order_code, checker1_code, checker2_code, defect_code, approved,"
                    " is_rescan, created_at, created_by)"
                    " SELECT IF(seq %% 2, 'quality', 'fg'), UNHEX(MD5(seq)),"
                    " CONCAT('OP', LPAD(seq %% 50, 2, '0')),"
                    " CONCAT('CP', LPAD(seq DIV 40, 8, '0'), '-', LPAD(seq %% 40, 4, '0')),"
                    " CONCAT('CP', LPAD(seq DIV 40, 8, '0')), 'OC01', 'OC02',"
                    " IF(seq %% 9 = 0, '104', '000'), seq %% 9 <> 0, FALSE,"
                    " UTC_TIMESTAMP(6) - INTERVAL (%s - seq) SECOND, 1"
                    f" FROM seq_1_to_{int(seed)}",
                    (seed,),
                )
                await cur.execute(
                    "INSERT INTO piece_verdicts (station, piece_code, order_code, approved,"
                    " last_scan_id) SELECT station, piece_code, order_code, approved, id FROM scans"
                )
                await cur.execute(
                    "INSERT INTO order_counts (station, order_code, approved, rejected)"
                    " SELECT station, order_code, SUM(approved), SUM(NOT approved)"
                    " FROM piece_verdicts GROUP BY station, order_code"
                )
                await cur.execute(f"SET SESSION max_statement_time = {db.query_timeout}")
            print(f"seeded {seed:,} scans in {time.monotonic() - started:.0f} s")
    finally:
        await db.close()


class App:
    def __init__(self, url: DatabaseURL, pool_max: int, settings: dict[str, str] | None = None) -> None:
        """`quality serve` on `url`; `settings`: more QUALITY_* variables."""
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "QUALITY_DATABASE_URL": url.as_url(),
               "QUALITY_SECRET_KEY": secrets.token_urlsafe(32),
               "QUALITY_POOL_MAX": str(pool_max), "QUALITY_LOG_LEVEL": "WARNING", **(settings or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "quality", "serve", "--port", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    async def wait_ready(self) -> None:
        async with httpx2.AsyncClient() as http:
            for _ in range(300):
                try:
                    if (await http.get(self.base + "/healthz")).status_code == 200:
                        return
                except httpx2.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("the app did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


async def signed_in(base: str, username: str = "bench") -> tuple[httpx2.AsyncClient, str]:
    http = httpx2.AsyncClient(base_url=base, timeout=30,
                              limits=httpx2.Limits(max_connections=2))
    page = await http.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    await http.post("/login", data={"username": username, "password": PASSWORD,
                                    "csrf_token": token})
    page = await http.get("/scan")
    return http, page.text.split('"X-CSRF-Token": "', 1)[1].split('"', 1)[0]


async def sample_connections(admin: DatabaseURL, database: str, stop: asyncio.Event,
                             peak: list[int]) -> None:
    conn = await asyncmy.connect(**admin.connect_kwargs())
    try:
        async with conn.cursor() as cur:
            while not stop.is_set():
                await cur.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s",
                    (database,))
                peak[0] = max(peak[0], (await cur.fetchone())[0])
                await asyncio.sleep(0.05)
    finally:
        conn.close()


# -- phase 1: the app ------------------------------------------------------------------


async def app_phase(app: App, url: DatabaseURL, admin: DatabaseURL, mariadbd: int,
                    clients: int, seconds: float) -> dict[str, Any]:
    sessions = [await signed_in(app.base) for _ in range(clients)]
    latencies: list[float] = []
    failures = 0
    before_rows = (await query(url, "SELECT COUNT(*) FROM scans"))[0][0]
    stop = asyncio.Event()
    peak = [0]
    sampler = asyncio.create_task(sample_connections(admin, url.database, stop, peak))
    app_cpu, db_cpu = cpu_seconds(app.process.pid), cpu_seconds(mariadbd)
    deadline = time.monotonic() + seconds

    async def client(index: int, http: httpx2.AsyncClient, csrf: str) -> None:
        nonlocal failures
        n = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            answer = await http.post("/scan", data=scan_form(n, index),
                                     headers={"HX-Request": "true", "X-CSRF-Token": csrf})
            latencies.append(time.perf_counter() - started)
            failures += answer.status_code != 200
            n += 1

    await asyncio.gather(*(client(i, http, csrf) for i, (http, csrf) in enumerate(sessions)))
    app_cpu, db_cpu = cpu_seconds(app.process.pid) - app_cpu, cpu_seconds(mariadbd) - db_cpu
    stop.set()
    await sampler
    for http, _ in sessions:
        await http.aclose()
    saved = (await query(url, "SELECT COUNT(*) FROM scans"))[0][0] - before_rows
    latencies.sort()
    return {
        "saved": saved, "failures": failures,
        "app_cpu_ms_per_scan": 1000 * app_cpu / saved,
        "db_cpu_ms_per_scan": 1000 * db_cpu / saved,
        "median_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
        "peak_connections": peak[0],
    }


# -- phase 1c (--profile): where the app's CPU goes ------------------------------------------

# Where a sample of the app process is counted: the first group whose frame is on
# its stack, in this order (a scan's save is inside the handler, and so on).
PROFILE_GROUPS = (
    ("HTTP: uvicorn writing the response", ("RequestResponseCycle.send (",)),
    ("save: CALL record_scan through the pool (asyncmy, socket I/O)", ("save_scan (",)),
    ("latest-scans table: re-rendered for the new scan", ("StationFeed.table_html (",)),
    ("response: the result and table blocks (Jinja)", ("Renderer.render (",)),
    ("form parsing (python-multipart)", ("Request._get_form (",)),
    ("live table update and scan counter", ("_publish (",)),
    ("session cookie (itsdangerous)", ("SessionMiddleware._load (",)),
    ("guard: trusted session, permission, CSRF", ("_check_permission (", "verify_csrf (")),
    ("request metrics and access log", ("RequestMiddleware._record (",)),
    ("background: scan watcher, summariser, pool metrics",
     ("ScanWatcher._run (", "Summariser._run (", "_publish_forever (")),
    ("rest of the scan handler: validation, context, ids", ("submit (",)),
)
OUTSIDE = "uvicorn, uvloop and Starlette outside the handler: parsing, routing, middleware, I/O"


async def profile_phase(app: App, url: DatabaseURL, admin: DatabaseURL, mariadbd: int,
                        clients: int, seconds: float, out: Path) -> dict[str, float]:
    """The app phase again with py-spy sampling the app process (raw stacks in
    `out`); each group's share of the samples of its event-loop thread. Not
    wall-clock exact: a sample taken while the process waits for a core inside
    a system call (a socket write) counts as busy."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    recorder = await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(app.process.pid), "--duration", str(int(seconds)),
        "--rate", "200", "--nonblocking", "--format", "raw", "--output", str(out),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    await app_phase(app, url, admin, mariadbd, clients, seconds)
    await recorder.wait()
    return profile_shares(out)


def profile_shares(raw_stacks: Path) -> dict[str, float]:
    shares = dict.fromkeys([name for name, _ in PROFILE_GROUPS] + [OUTSIDE], 0.0)
    total = 0
    for line in raw_stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "Runner.run (" not in stack:  # not the event loop's thread
            continue
        total += int(count)
        group = next((name for name, frames in PROFILE_GROUPS
                      if any(frame in stack for frame in frames)), OUTSIDE)
        shares[group] += int(count)
    return {name: 100 * samples / max(total, 1) for name, samples in shares.items()}


# -- phase 1b: the floor of the HTTP stack ---------------------------------------------------


async def floor_phase(clients: int, seconds: float,
                      saving_to: DatabaseURL | None = None) -> dict[str, float]:
    """uvicorn + Starlette with a form POST and nothing else (bench/floor_app.py);
    with `saving_to`, the same POST also saves the scan as the app does, and
    does nothing else."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name != "QUALITY_DATABASE_URL"}
    if saving_to is not None:
        env["QUALITY_DATABASE_URL"] = saving_to.as_url()
    path = "/scan" if saving_to is None else "/scan-saved"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "floor_app:app", "--port", str(port),
        "--log-level", "warning", "--app-dir", str(ROOT / "bench"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx2.AsyncClient(base_url=base, timeout=30) as http:
            for _ in range(300):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx2.TransportError:
                    await asyncio.sleep(0.1)
            done = 0
            cpu = cpu_seconds(process.pid)
            deadline = time.monotonic() + seconds

            async def client(index: int) -> None:
                nonlocal done
                n = 0
                while time.monotonic() < deadline:
                    answer = await http.post(path, data=scan_form(n, 700 + index))
                    answer.raise_for_status()
                    done += 1
                    n += 1

            await asyncio.gather(*(client(i) for i in range(clients)))
            cpu = cpu_seconds(process.pid) - cpu
    finally:
        process.terminate()
        await process.wait()
    return {"requests": done, "cpu_ms_per_request": 1000 * cpu / done}


# -- phase 2: a bare client ----------------------------------------------------------------


async def bare_client(url: DatabaseURL, clients: int, seconds: float) -> dict[str, Any]:
    """Runs in its own process: insert + latest 50 with counts, per scan, no HTTP."""
    connections = [await asyncmy.connect(**url.connect_kwargs(), autocommit=False)
                   for _ in range(clients)]
    for conn in connections:  # the same session set-up as the app's pool
        async with conn.cursor() as cur:
            await cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    saved = 0
    started_cpu = time.process_time()
    deadline = time.monotonic() + seconds

    async def work(index: int, conn: Any) -> None:
        nonlocal saved
        n = 0
        async with conn.cursor() as cur:
            while time.monotonic() < deadline:
                form = scan_form(n, 500 + index)
                now = utc_now()
                await cur.execute(
                    "CALL record_scan('quality', %s, %s, %s, %s, %s, %s, %s, %s, 1, %s, %s, %s)",
                    (bytes.fromhex(form["submission_id"]), form["operator_code"],
                     form["piece_code"], form["piece_code"][:10], form["checker1_code"],
                     form["checker2_code"], form["defect_code"],
                     form["defect_code"] == APPROVED, now, *SHIFTS.around(now)))
                await cur.fetchall()
                await cur.nextset()
                await cur.execute(
                    ROW_SELECT + " WHERE s.station = 'quality' ORDER BY s.id DESC LIMIT 50")
                await cur.fetchall()
                await conn.commit()
                saved += 1
                n += 1

    await asyncio.gather(*(work(i, conn) for i, conn in enumerate(connections)))
    cpu = time.process_time() - started_cpu
    for conn in connections:
        conn.close()
    return {"saved": saved, "client_cpu_ms_per_scan": 1000 * cpu / saved}


async def bare_phase(url: DatabaseURL, mariadbd: int, clients: int,
                     seconds: float) -> dict[str, Any]:
    db_cpu = cpu_seconds(mariadbd)
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--bare-worker", url.as_url(), str(clients), str(seconds),
        stdout=subprocess.PIPE,
    )
    out, _ = await process.communicate()
    result = json.loads(out)
    result["db_cpu_ms_per_scan"] = 1000 * (cpu_seconds(mariadbd) - db_cpu) / result["saved"]
    return result


# -- phase 3: open live pages --------------------------------------------------------------


async def live_pages_phase(app: App, admin: DatabaseURL, pages: int,
                           seconds: float) -> dict[str, float]:
    async def questions() -> int:
        rows = await query(admin, "SHOW GLOBAL STATUS LIKE 'Questions'")
        return int(rows[0][1])

    async def rate_while(open_pages: int) -> float:
        http, csrf = await signed_in(app.base)
        stop = asyncio.Event()
        ready = [asyncio.Event() for _ in range(open_pages)]
        users = [await signed_in(app.base, name) for name in viewers(open_pages)]

        async def page(n: int, event: asyncio.Event) -> None:
            cookies = users[n // STREAMS_PER_USER][0].cookies
            async with httpx2.AsyncClient(base_url=app.base, cookies=cookies,
                                          timeout=None) as viewer, \
                    viewer.stream("GET", "/scan/stream") as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("event: table"):
                        event.set()
                    if stop.is_set():
                        return

        pages_open = [asyncio.create_task(page(n, event)) for n, event in enumerate(ready)]
        await asyncio.gather(*(event.wait() for event in ready))
        start = await questions()
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:  # a slow line: 5 scans a second
            await http.post("/scan", data=scan_form(n, 900),
                            headers={"HX-Request": "true", "X-CSRF-Token": csrf})
            n += 1
            await asyncio.sleep(0.2)
        # minus the two status reads themselves
        rate = (await questions() - start - 2) / seconds
        stop.set()
        for task in pages_open:
            task.cancel()
        await asyncio.gather(*pages_open, return_exceptions=True)
        for client in [http, *(user for user, _ in users)]:
            await client.aclose()
        return rate

    return {"qps_0_pages": await rate_while(0), f"qps_{pages}_pages": await rate_while(pages)}


# -- orchestration ---------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="qbench-", dir="/tmp"))
    server = LocalMariaDB(base, buffer_pool="512M")
    server.ensure_running()
    try:
        url = server.url()
        admin = server.url(maintenance=True, database="mysql")
        mariadbd = server._pid()
        assert mariadbd
        await prepare(url, args.seed, args.pages)
        app = App(url, args.pool_max)
        await app.wait_ready()
        try:
            print(f"machine: {os.cpu_count()} cores; {args.clients} clients, "
                  f"{args.seconds:g} s per phase, pool max {args.pool_max}, "
                  f"{args.seed:,} scans stored before the run")
            await app_phase(app, url, admin, mariadbd, 5, 3)  # warm-up, not reported
            single = await app_phase(app, url, admin, mariadbd, 1, min(args.seconds, 10))
            result = await app_phase(app, url, admin, mariadbd, args.clients, args.seconds)
            bare = await bare_phase(url, mariadbd, args.clients, args.seconds)
            floor = await floor_phase(args.clients, min(args.seconds, 10))
            floor_saving = await floor_phase(args.clients, min(args.seconds, 10), saving_to=url)
            live = await live_pages_phase(app, admin, args.pages, min(args.seconds, 10))
            profile = (await profile_phase(app, url, admin, mariadbd, args.clients,
                                           min(args.seconds, 10), args.profile)
                       if args.profile else None)
        finally:
            app.stop()
    finally:
        server.release()
        shutil.rmtree(base, ignore_errors=True)

    print(f"\none  : a single client posting back to back: median {single['median_ms']:.1f} ms, "
          f"p99 {single['p99_ms']:.1f} ms per scan POST")
    print(f"app  : {result['saved']:,} scans saved, {result['failures']} failed requests")
    print(f"       app CPU {result['app_cpu_ms_per_scan']:.3f} ms/scan, "
          f"mariadbd CPU {result['db_cpu_ms_per_scan']:.3f} ms/scan")
    print(f"       POST latency median {result['median_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms")
    print(f"       peak server-side connections {result['peak_connections']} "
          f"(pool max {args.pool_max})")
    print(f"bare : {bare['saved']:,} scans saved")
    print(f"       client CPU {bare['client_cpu_ms_per_scan']:.3f} ms/scan, "
          f"mariadbd CPU {bare['db_cpu_ms_per_scan']:.3f} ms/scan")
    print(f"floor: uvicorn + Starlette answering a form POST, nothing else: "
          f"{floor['cpu_ms_per_request']:.3f} ms CPU per request")
    print(f"       the same POST saving the scan (save_scan) and nothing else: "
          f"{floor_saving['cpu_ms_per_request']:.3f} ms CPU per scan")
    print("ratio: app CPU / bare client CPU = "
          f"{result['app_cpu_ms_per_scan'] / bare['client_cpu_ms_per_scan']:.2f} (target <= 2)")
    print("       floor saving the scan / bare client CPU = "
          f"{floor_saving['cpu_ms_per_request'] / bare['client_cpu_ms_per_scan']:.2f}"
          " (the least a scan's POST costs on this stack)")
    print("       mariadbd CPU, app / bare = "
          f"{result['db_cpu_ms_per_scan'] / bare['db_cpu_ms_per_scan']:.2f} (target <= 1)")
    print(f"live : database statements/s while scanning 5/s: {live['qps_0_pages']:.1f} with no "
          f"page open, {live[f'qps_{args.pages}_pages']:.1f} with {args.pages} live pages open")
    if profile:
        print(f"profile: share of the app's event-loop samples at {args.clients} clients "
              f"(py-spy, raw stacks in {args.profile})")
        for name, share in sorted(profile.items(), key=lambda item: -item[1]):
            print(f"  {share:5.1f} %  {name}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0, help="scans stored before the run")
    parser.add_argument("--pool-max", type=int, default=20)
    parser.add_argument("--pages", type=int, default=100, help="live pages in phase 3")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="run the app phase once more under py-spy (not a dependency:"
                             " pip install py-spy); raw stacks to FILE, shares printed")
    parser.add_argument("--bare-worker", nargs=3, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if arguments.bare_worker:
        url_text, clients, seconds = arguments.bare_worker
        print(json.dumps(asyncio.run(
            bare_client(DatabaseURL.parse(url_text), int(clients), float(seconds)))))
    else:
        asyncio.run(main(arguments))
