"""What a process gives its exports, against a real server: a bounded number
of places per user and in all (one more is a 429 saying to wait, in the
user's language), given back however an export ends (finished, failed
mid-stream, or its client hanging up, which cancels it); a bounded share of
the database pool for exports, totals and reports, so that while they crowd
in, scans, sign-ins and /healthz still get connections; and a thread of their
own to format rows on, a slice at a time with rests between."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncmy
import httpx2
import pytest

from quality.http.exporter import SLICE_ROWS, WAIT_SECONDS, Exporter
from quality.settings import DatabaseURL, Settings
from tests.conftest import PASSWORD, LiveServer, csrf_token_in, eventually, execute, run_async
from tests.test_stations import GOOD

SCANS = 30_000  # a CSV of some 3 MB: more than the sockets between a paused client and the server hold


def seed_scans(db_url: DatabaseURL, count: int) -> None:
    """`count` scans straight into the table, one a second back from now (the
    exports only read them)."""
    run_async(execute(
        db_url,
        "INSERT INTO scans (station, submission_id, operator_code, piece_code, order_code, checker1_code,"
        " checker2_code, defect_code, approved, created_at, created_by)"
        " SELECT 'quality', UNHEX(MD5(seq)), CONCAT('OP', LPAD(seq MOD 50, 2, '0')),"
        " CONCAT('CP', LPAD(seq DIV 40, 8, '0'), '-', LPAD(seq MOD 40, 4, '0')),"
        " CONCAT('CP', LPAD(seq DIV 40, 8, '0')), 'OC01', 'OC02', '000', TRUE,"
        " UTC_TIMESTAMP(6) - INTERVAL seq SECOND, (SELECT MIN(id) FROM users)"
        f" FROM seq_1_to_{count}"))


@contextlib.contextmanager
def signed_in(server: LiveServer, username: str) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=server.url, timeout=60) as http:
        page = http.get("/login")
        answer = http.post("/login", data={"username": username, "password": PASSWORD,
                                           "csrf_token": csrf_token_in(page.text)})
        assert answer.status_code == 303
        yield http


class PausedExport:
    """An export whose client reads the answer's head and then stops reading,
    with a small receive buffer: the server's writes back up and the export
    stays running until the client hangs up (`close`)."""

    def __init__(self, server: LiveServer, http: httpx2.Client, path: str = "/scans/export.csv") -> None:
        cookies = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", server.port))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookies}\r\n\r\n".encode())
        self.received = b""
        while b"\r\n\r\n" not in self.received:
            self.received += self.sock.recv(4096)
        self.status = int(self.received.split(b" ", 2)[1])

    def read_to_the_end(self) -> bytes:
        """Read on until the server closes the connection."""
        with contextlib.suppress(ConnectionResetError):
            while chunk := self.sock.recv(65536):
                self.received += chunk
        return self.received

    def close(self) -> None:
        self.sock.close()


def csv_lines(answer: httpx2.Response) -> int:
    assert answer.status_code == 200, answer.text[:300]
    return answer.content.decode("utf-8-sig").count("\n")


@pytest.fixture
def supervisors(make_user: Any, db_url: DatabaseURL) -> None:
    """sue (who reads Romanian) and sam, and the scans they export."""
    make_user("sue", "supervisor")
    make_user("sam", "supervisor")
    run_async(execute(db_url, "UPDATE users SET language = 'ro' WHERE username = 'sue'"))
    seed_scans(db_url, SCANS)


@contextlib.contextmanager
def live(settings: Settings, **env: str) -> Iterator[LiveServer]:
    server = LiveServer(settings, env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_exports_beyond_a_users_or_the_process_bound_are_told_to_wait(
        settings: Settings, supervisors: None) -> None:
    with (live(settings, QUALITY_EXPORTS_PER_USER="2", QUALITY_EXPORTS_PER_PROCESS="3") as server,
          signed_in(server, "sue") as sue, signed_in(server, "sam") as sam):
        running = [PausedExport(server, sue), PausedExport(server, sue, "/scans/export.xlsx")]
        assert [export.status for export in running] == [200, 200]

        # Sue's third: her own two are running. In her language, with when to come back.
        refused = sue.get("/scans/export.csv")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "10"
        assert "Cele 2 exporturi ale dumneavoastră încă rulează." in refused.text
        assert 'lang="ro"' in refused.text

        # Sam's second: the process runs its three.
        running.append(PausedExport(server, sam))
        assert running[-1].status == 200
        refused = sam.get("/scans/export.xlsx")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "10"
        assert "The server is making as many exports as it can at once." in refused.text

        # A client that hangs up mid-stream gives its place back...
        running.pop(0).close()
        assert eventually(lambda: sue.get("/scans/export.csv").status_code == 200)
        # ...and so does an export that finished: Sue exports twice more in a row.
        assert csv_lines(sue.get("/scans/export.csv")) == SCANS + 1
        assert csv_lines(sue.get("/scans/export.csv")) == SCANS + 1
        assert sam.get("/scans/export.xlsx").status_code == 200

        # Everyone hangs up: all three places are free again.
        for export in running:
            export.close()

        def three_run_again() -> bool:
            again = [PausedExport(server, sam), PausedExport(server, sam), PausedExport(server, sue)]
            statuses = [export.status for export in again]
            for export in again:
                export.close()
            return statuses == [200, 200, 200]

        assert eventually(three_run_again)


@contextlib.contextmanager
def table_locked(db_url: DatabaseURL, table: str) -> Iterator[None]:
    """Another session holds `LOCK TABLES table WRITE` while the block runs:
    every statement that reads the table waits, holding its connection."""
    held, done = threading.Event(), threading.Event()

    async def hold() -> None:
        conn = await asyncmy.connect(**db_url.connect_kwargs())
        try:
            async with conn.cursor() as cur:
                await cur.execute(f"LOCK TABLES {table} WRITE")
                held.set()
                await asyncio.to_thread(done.wait)
                await cur.execute("UNLOCK TABLES")
        finally:
            conn.close()

    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(asyncio.run, hold())
        assert held.wait(10), holder.exception(1)
        try:
            yield
        finally:
            done.set()
            holder.result()


def test_an_export_that_fails_mid_stream_gives_its_place_back(settings: Settings, supervisors: None,
                                                              db_url: DatabaseURL) -> None:
    with (live(settings, QUALITY_EXPORTS_PER_USER="1", QUALITY_QUERY_TIMEOUT="1") as server,
          signed_in(server, "sue") as sue):
        export = PausedExport(server, sue)
        assert export.status == 200 and sue.get("/scans/export.csv").status_code == 429
        with table_locked(db_url, "scans"):
            # The client reads on; the next batch waits for the lock until the
            # query timeout stops it, and the server ends the answer unfinished.
            body = export.read_to_the_end()
        assert 0 < body.count(b"\n") < SCANS and not body.endswith(b"\r\n0\r\n\r\n")
        assert "Exception in ASGI application" in server.output()
        assert csv_lines(sue.get("/scans/export.csv")) == SCANS + 1
        export.close()


def locked_sessions(db_url: DatabaseURL) -> int:
    """The app's sessions waiting for a table lock."""
    server = dataclasses.replace(db_url, database="mysql")
    (rows,) = run_async(execute(server, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE"
                                        f" DB = '{db_url.database}' AND STATE LIKE 'Waiting for table%'"))
    return rows[0][0]


def queued_scans(db_url: DatabaseURL) -> int:
    """Scans the summariser has not folded yet."""
    (rows,) = run_async(execute(db_url, "SELECT COUNT(*) FROM scan_queue"))
    return rows[0][0]


def test_exports_totals_and_reports_leave_scans_sign_in_and_healthz_their_connections(
        settings: Settings, supervisors: None, make_user: Any, db_url: DatabaseURL) -> None:
    make_user("olga", "operator")
    # 5 connections, 40 % of them for bulk reads: 2.
    crowded = dataclasses.replace(settings, pool_max=5, pool_timeout=5.0)
    with (live(crowded, QUALITY_POOL_BULK_SHARE="0.4", QUALITY_EXPORTS_PER_PROCESS="4") as server,
          signed_in(server, "olga") as olga, signed_in(server, "sue") as sue,
          signed_in(server, "sam") as sam):
        csrf = olga.get("/scan").text.split('"X-CSRF-Token": "', 1)[1].split('"', 1)[0]
        # Totals and reports read the summaries' shift state: locked, each of them holds
        # its connection for as long as the lock lasts; the exports behind them
        # in the lane wait for a place.
        supervisors = [sue, sam]

        def ask(path: str, by: httpx2.Client) -> int:
            with httpx2.Client(base_url=server.url, cookies=by.cookies, timeout=60) as http:
                return http.get(path).status_code

        # The seeded scans folded first: while many wait in scan_queue, totals
        # answer from `scans` alone, which the lock below does not hold.
        assert eventually(lambda: queued_scans(db_url) == 0, seconds=60)
        asked = ["/scans/totals"] * 6 + ["/reports"] * 2 + ["/scans/export.csv", "/scans/export.xlsx"] * 2
        with ThreadPoolExecutor(len(asked)) as crowd, table_locked(db_url, "scan_shift_state"):
            answers = [crowd.submit(ask, path, supervisors[n % 2]) for n, path in enumerate(asked)]
            assert eventually(lambda: locked_sessions(db_url) >= 2)
            time.sleep(1)  # time for more of them to take connections, if they could

            # Each answered while the lane stays full: one that waited for a
            # connection would wait until the lock ends, past the pool's 5 s, and fail.
            saved = olga.post("/scan", data={**GOOD, "submission_id": "ab" * 16},
                              headers={"HX-Request": "true", "X-CSRF-Token": csrf})
            assert saved.status_code == 200 and 'data-outcome="approved"' in saved.text
            health = httpx2.get(server.url + "/healthz", timeout=5)
            assert health.status_code == 200
            with signed_in(server, "olga"):  # a sign-in
                pass

            # The lane was full all along, with more waiting; the pool's other
            # connections stayed free (the summariser's own may wait for the lock too).
            figures = httpx2.get(server.url + "/metrics").text
            assert "quality_db_pool_bulk_in_use 2.0" in figures and "quality_db_pool_bulk_max 2.0" in figures
            assert "quality_db_pool_bulk_waiting 0.0" not in figures
            assert locked_sessions(db_url) <= 3
        statuses = [answer.result() for answer in answers]
        assert set(statuses) <= {200, 503} and 200 in statuses


async def test_rows_are_formatted_on_the_exports_own_thread_a_slice_at_a_time() -> None:
    exporter = Exporter(1, 1)
    loop = asyncio.get_running_loop()
    # The default executor, which sign-in hashes passwords on, is all busy.
    busy = threading.Event()
    hashing = [loop.run_in_executor(None, busy.wait) for _ in range(64)]
    written: list[tuple[str, int]] = []

    def write(rows: Any) -> bytes:
        written.append((threading.current_thread().name, len(rows)))
        return b"".join(rows)

    try:
        formatted = await asyncio.wait_for(exporter.format([b"x"] * (2 * SLICE_ROWS + 50), write), 10)
    finally:
        busy.set()
        await asyncio.gather(*hashing)
        exporter.close()
    assert formatted == b"x" * (2 * SLICE_ROWS + 50)
    assert written == [("export_0", SLICE_ROWS), ("export_0", SLICE_ROWS), ("export_0", 50)]


async def test_the_export_thread_waits_while_the_event_loop_is_busy() -> None:
    exporter = Exporter(1, 1)
    slices: list[float] = []

    going = threading.Event()

    def write(rows: Any) -> bytes:
        slices.append(time.monotonic())
        if len(slices) > 20:
            going.set()
        time.sleep(0.001)  # a slice's work
        return b""

    formatting = asyncio.ensure_future(exporter.format([b""] * (SLICE_ROWS * 1000), write))
    # Formatting slice after slice while the loop is free (awaited, so the loop
    # stays free: a loaded machine only makes it slower).
    assert await asyncio.to_thread(going.wait, 30)
    # The loop busy for 0.5 s (a long report, say): it does not beat, so the
    # thread writes a slice only every WAIT_SECONDS, instead of every millisecond.
    started = time.monotonic()
    time.sleep(0.5)  # noqa: ASYNC251 - the point: the event loop kept busy
    ended = time.monotonic()
    during = [at for at in slices if started + 0.02 < at < ended]
    assert len(during) <= 0.5 / WAIT_SECONDS + 2
    # Cancelled (its client left), it stops after the slice it is writing.
    formatting.cancel()
    await asyncio.sleep(0.2)
    written = len(slices)
    await asyncio.sleep(0.2)
    assert len(slices) == written
    exporter.close()
