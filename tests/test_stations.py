"""The scan stations through real requests on a real MariaDB."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from datetime import UTC
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from quality.app import create_app
from quality.clock import utc_now
from quality.http.slots import STREAMS_PER_USER
from quality.settings import Settings
from quality.shifts import Shifts
from tests.conftest import LiveServer, app_services, csrf_token_in, execute, login, run_async

HTMX = {"HX-Request": "true"}
GOOD = {
    "operator_code": "OP07",
    "piece_code": "CP00012345-0001",
    "checker1_code": "OC12",
    "checker2_code": "OC13",
    "defect_code": "000",
}


def signed_in(client: TestClient, make_user: Any, role: str = "operator") -> str:
    name = f"u{secrets.token_hex(3)}"
    make_user(name, role)
    login(client, name)
    return csrf_token_in(client.get("/scan").text)


def post_scan(client: TestClient, csrf: str, path: str = "/scan", submission: str | None = None,
              **fields: str) -> Any:
    data = {**GOOD, **fields, "submission_id": submission or secrets.token_hex(16)}
    return client.post(path, data=data, headers={**HTMX, "X-CSRF-Token": csrf})


def scan_rows(settings: Settings, where: str = "1") -> list[tuple]:
    assert settings.database_url
    (rows,) = run_async(execute(
        settings.database_url,
        "SELECT station, piece_code, defect_code, is_rescan FROM scans"
        f" WHERE {where} ORDER BY id",
    ))
    return rows


def test_page_has_the_form_and_a_submission_id(client: TestClient, make_user: Any) -> None:
    signed_in(client, make_user)
    page = client.get("/scan")
    assert page.status_code == 200
    for name in GOOD:
        assert f'name="{name}"' in page.text
    submission = page.text.split('name="submission_id" value="', 1)[1].split('"', 1)[0]
    assert len(submission) == 32
    assert 'id="scan-table"' in page.text and "No scans at this station yet." in page.text


def test_saved_scan_returns_result_and_table_fragment(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    csrf = signed_in(client, make_user)
    response = post_scan(client, csrf, defect_code="104")
    assert response.status_code == 200
    html = response.text
    assert not html.lstrip().startswith("<!doctype")  # a fragment, not the page
    assert 'id="scan-result"' in html and 'data-outcome="rejected"' in html
    assert 'id="scan-table-wrap"' in html and 'hx-swap-oob="true"' in html
    assert "Missing component" in html
    assert "Order CP00012345: 0 approved · 1 rejected" in html
    assert 'id="scan-form"' not in html  # the operator is already typing the next scan
    assert scan_rows(settings) == [("quality", "CP00012345-0001", "104", 0)]


def test_normal_post_gets_the_whole_page_with_operator_kept(
    client: TestClient, make_user: Any
) -> None:
    csrf = signed_in(client, make_user)
    data = {**GOOD, "submission_id": secrets.token_hex(16), "csrf_token": csrf}
    page = client.post("/scan", data=data)
    assert page.status_code == 200 and page.text.lstrip().startswith("<!doctype")
    assert 'name="operator_code" value="OP07"' in page.text
    assert 'name="piece_code" value=""' in page.text


def test_replayed_submission_saves_once(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    csrf = signed_in(client, make_user)
    submission = secrets.token_hex(16)
    answers = [post_scan(client, csrf, submission=submission) for _ in range(10)]
    assert [a.status_code for a in answers] == [200] * 10
    assert "already been saved" not in answers[0].text
    assert all("This scan had already been saved." in a.text for a in answers[1:])
    assert all("Order CP00012345: 1 approved · 0 rejected" in a.text for a in answers)
    assert len(scan_rows(settings)) == 1


def test_submission_id_reused_for_another_scan_is_refused(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    csrf = signed_in(client, make_user)
    submission = secrets.token_hex(16)
    assert post_scan(client, csrf, submission=submission).status_code == 200
    other = post_scan(client, csrf, submission=submission, piece_code="CP00099999-0001")
    assert other.status_code == 409
    assert scan_rows(settings) == [("quality", "CP00012345-0001", "000", 0)]


def test_counts_are_pieces_by_latest_scan(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    csrf = signed_in(client, make_user)
    steps = [
        ("CP00012345-0001", "000", "1 approved · 0 rejected"),
        ("CP00012345-0002", "104", "1 approved · 1 rejected"),
        ("CP00012345-0001", "101", "0 approved · 2 rejected"),  # re-scan flips the verdict
        ("CP00012345-0001", "102", "0 approved · 2 rejected"),  # still rejected
        ("CP00012345-0002", "000", "1 approved · 1 rejected"),
        ("CP00077777-0001", "000", "1 approved · 0 rejected"),  # another order
    ]
    for piece, defect, counts in steps:
        response = post_scan(client, csrf, piece_code=piece, defect_code=defect)
        assert f"Order {piece[:10]}: {counts}" in response.text
    assert [row[3] for row in scan_rows(settings)] == [0, 0, 1, 1, 1, 0]
    table = client.get("/scan").text.split('id="scan-table"', 1)[1]
    assert table.count("re-scan") == 3
    assert settings.database_url
    (counts,) = run_async(execute(
        settings.database_url,
        "SELECT order_code, approved, rejected FROM order_counts ORDER BY order_code"))
    assert counts == [("CP00012345", 1, 1), ("CP00077777", 1, 0)]


@pytest.mark.parametrize("field", list(GOOD))
@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "X" * 300,
        "' OR 1=1; DROP TABLE scans; --",
        "<script>alert(1)</script>",
        "OP07\x00",
        "\ufffd\ufffd",
    ],
    ids=["empty", "blank", "too-long", "sql", "html", "nul", "not-utf8"],
)
def test_bad_field_is_named_and_nothing_saved(
    client: TestClient, make_user: Any, settings: Settings, field: str, value: str
) -> None:
    csrf = signed_in(client, make_user)
    response = post_scan(client, csrf, **{field: value})
    assert response.status_code == 422
    assert f'data-testid="{field}-error"' in response.text
    assert sum('class="field-error"' in part for part in response.text.split("<label")) == 1
    assert "<script>alert(1)</script>" not in response.text
    assert 'id="scan-form"' in response.text and 'hx-swap-oob="true"' in response.text
    assert scan_rows(settings) == []


@pytest.mark.parametrize("field", list(GOOD))
def test_digits_of_another_script_are_refused_and_nothing_saved(
    client: TestClient, make_user: Any, settings: Settings, field: str
) -> None:
    # To Python's \d "١٠٤" is three digits, and to the database's collation it
    # equals "104": it must not pass for a code.
    other = GOOD[field].translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert other != GOOD[field]
    csrf = signed_in(client, make_user)
    response = post_scan(client, csrf, **{field: other})
    assert response.status_code == 422
    assert f'data-testid="{field}-error"' in response.text
    assert scan_rows(settings) == []


def test_raw_non_utf8_body_is_refused(client: TestClient, make_user: Any, settings: Settings) -> None:
    csrf = signed_in(client, make_user)
    body = b"operator_code=OP07&piece_code=CP0001\xff\xfe-0001&checker1_code=OC12" \
           b"&checker2_code=OC13&defect_code=000&submission_id=" + secrets.token_hex(16).encode()
    response = client.post("/scan", content=body, headers={
        **HTMX, "X-CSRF-Token": csrf, "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 422
    assert 'data-testid="piece_code-error"' in response.text
    assert scan_rows(settings) == []


def test_lowercase_and_spaces_are_normalised(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    csrf = signed_in(client, make_user)
    response = post_scan(client, csrf, operator_code=" op07 ", piece_code="cp00012345-0001 ")
    assert response.status_code == 200
    assert scan_rows(settings) == [("quality", "CP00012345-0001", "000", 0)]


def test_unknown_defect_code_is_an_inline_error(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    csrf = signed_in(client, make_user)
    response = post_scan(client, csrf, defect_code="999")
    assert response.status_code == 422
    assert "Unknown defect code." in response.text
    assert scan_rows(settings) == []


@pytest.mark.parametrize("submission", ["", "xyz", "A" * 32, "0" * 31, "0" * 33])
def test_bad_submission_id_is_a_400(
    client: TestClient, make_user: Any, settings: Settings, submission: str
) -> None:
    csrf = signed_in(client, make_user)
    data = {**GOOD, "submission_id": submission}
    response = client.post("/scan", data=data, headers={**HTMX, "X-CSRF-Token": csrf})
    assert response.status_code == 400
    assert scan_rows(settings) == []


def test_missing_csrf_token_saves_nothing(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    signed_in(client, make_user)
    response = client.post("/scan", data={**GOOD, "submission_id": secrets.token_hex(16)},
                           headers=HTMX)
    assert response.status_code == 403
    assert scan_rows(settings) == []


def test_without_session_a_scan_is_401_and_not_saved(
    client: TestClient, settings: Settings
) -> None:
    client.get("/login")
    response = client.post("/scan", data={**GOOD, "submission_id": secrets.token_hex(16)},
                           headers=HTMX)
    assert response.status_code == 401
    assert scan_rows(settings) == []


def test_station_permission_is_checked(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    assert settings.database_url
    run_async(execute(
        settings.database_url,
        "INSERT INTO roles (name) VALUES ('fg_only')",
        "INSERT INTO role_permissions (role_id, permission)"
        " SELECT id, 'scan.fg' FROM roles WHERE name = 'fg_only'",
    ))
    csrf = signed_in(client, make_user, role="fg_only")
    assert client.get("/scan").status_code == 403
    assert client.get("/scan/stream").status_code == 403
    assert client.get("/scan/piece", params={"code": GOOD["piece_code"]}).status_code == 403
    assert client.get("/scan/operator", params={"code": "OP07"}).status_code == 403
    assert client.get("/fgscan/operator", params={"code": "OP07"}).status_code == 200
    assert client.get("/scan/session", headers=HTMX).status_code == 403
    assert client.get("/fgscan/session", headers=HTMX).status_code == 200
    assert post_scan(client, csrf).status_code == 403
    assert client.get("/fgscan").status_code == 200
    assert scan_rows(settings) == []


def test_stations_never_see_each_other(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    csrf = signed_in(client, make_user)
    post_scan(client, csrf, "/scan", piece_code="CP00011111-0001")
    fg = post_scan(client, csrf, "/fgscan", piece_code="CP00022222-0001")
    assert "CP00011111" not in fg.text
    assert "Order CP00022222: 1 approved · 0 rejected" in fg.text
    assert "CP00022222" not in client.get("/scan").text
    assert "CP00011111" not in client.get("/fgscan").text
    # the same piece at both stations is a first scan at each
    post_scan(client, csrf, "/fgscan", piece_code="CP00011111-0001")
    assert scan_rows(settings, "piece_code = 'CP00011111-0001'") == [
        ("quality", "CP00011111-0001", "000", 0), ("fg", "CP00011111-0001", "000", 0)]


def test_busy_database_is_a_503_that_keeps_the_input(
    settings: Settings, make_user: Any
) -> None:
    settings = settings.__class__(**{**settings.__dict__, "pool_max": 2, "pool_timeout": 0.3})
    app = create_app(settings)
    with TestClient(app) as client:
        csrf = signed_in(client, make_user)
        release = asyncio.Event()

        async def hold_every_connection() -> None:
            async def hold() -> None:
                async with app_services(client).db.transaction() as cur:
                    await cur.execute("SELECT 1")
                    await release.wait()

            await asyncio.gather(hold(), hold())

        assert client.portal
        held = client.portal.start_task_soon(hold_every_connection)
        while app_services(client).db.stats().in_use < 2:
            pass
        submission = secrets.token_hex(16)
        response = post_scan(client, csrf, submission=submission, piece_code="CP00055555-0001")
        # the page's side questions get a bare 503: the page shows nothing for them
        lookups = [client.get(path, params={"code": code}, headers=HTMX)
                   for path, code in (("/scan/piece", "CP00055555-0001"), ("/scan/operator", "OP07"))]
        client.portal.call(release.set)
        held.result()

        assert response.status_code == 503
        assert "Not saved — the database is busy. Try again." in response.text
        assert 'value="CP00055555-0001"' in response.text
        assert f'value="{submission}"' in response.text
        assert scan_rows(settings) == []
        assert [(lookup.status_code, lookup.text) for lookup in lookups] == [(503, "")] * 2
        assert app_services(client).db.stats().timeouts >= 1
        # the same submission goes through once the pool is free again
        assert post_scan(client, csrf, submission=submission,
                         piece_code="CP00055555-0001").status_code == 200
        assert len(scan_rows(settings)) == 1


def test_busy_database_page_shows_no_scans_before_the_session_is_checked(
    client: TestClient, settings: Settings, make_user: Any
) -> None:
    csrf = signed_in(client, make_user)
    assert post_scan(client, csrf, piece_code="CP00044444-0001").status_code == 200
    settings = settings.__class__(**{**settings.__dict__, "pool_max": 1, "pool_timeout": 0.3})
    app = create_app(settings)
    # Another process, which has not checked this session yet.
    with TestClient(app, cookies=client.cookies) as other:
        release = asyncio.Event()

        async def hold_the_connection() -> None:
            async with app_services(other).db.transaction() as cur:
                await cur.execute("SELECT 1")
                await release.wait()

        assert other.portal
        held = other.portal.start_task_soon(hold_the_connection)
        while app_services(other).db.stats().in_use < 1:
            pass
        data = {**GOOD, "submission_id": secrets.token_hex(16), "csrf_token": csrf}
        response = other.post("/scan", data=data)  # a whole page, not a fragment
        other.portal.call(release.set)
        held.result()

    assert response.status_code == 503
    assert 'id="scan-form"' in response.text and 'value="CP00012345-0001"' in response.text
    assert "CP00044444-0001" not in response.text


def test_a_save_that_keeps_losing_races_is_a_retryable_503(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    csrf = signed_in(client, make_user)
    assert settings.database_url
    url = settings.database_url
    run_async(execute(  # every first scan of a piece collides, as with a concurrent save
        url,
        "CREATE TRIGGER always_collides BEFORE INSERT ON piece_verdicts FOR EACH ROW"
        " SIGNAL SQLSTATE '23000' SET MESSAGE_TEXT = 'Duplicate entry', MYSQL_ERRNO = 1062"))
    submission = secrets.token_hex(16)
    response = post_scan(client, csrf, submission=submission)
    assert response.status_code == 503 and response.headers["retry-after"] == "2"
    assert "Not saved — the database is busy. Try again." in response.text
    assert scan_rows(settings) == []
    run_async(execute(url, "DROP TRIGGER always_collides"))
    assert post_scan(client, csrf, submission=submission).status_code == 200
    assert len(scan_rows(settings)) == 1


async def test_concurrent_copies_across_two_processes_save_one_row(
    settings: Settings, make_user: Any
) -> None:
    make_user("twin", "operator")
    first, second = LiveServer(settings), LiveServer(settings)
    await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
    try:
        async def signed_in_client(server: LiveServer) -> tuple[httpx2.AsyncClient, str]:
            http = httpx2.AsyncClient(base_url=server.url)
            page = await http.get("/login")
            await http.post("/login", data={"username": "twin", "password": "correct-horse-42",
                                            "csrf_token": csrf_token_in(page.text)})
            return http, csrf_token_in((await http.get("/scan")).text)

        clients = [await signed_in_client(first), await signed_in_client(second)]
        submission = secrets.token_hex(16)
        data = {**GOOD, "submission_id": submission}
        answers = await asyncio.gather(*(
            http.post("/scan", data=data, headers={**HTMX, "X-CSRF-Token": csrf})
            for http, csrf in clients * 10
        ))
        assert [answer.status_code for answer in answers] == [200] * 20
        assert len(scan_rows(settings)) == 1
        for http, _ in clients:
            await http.aclose()
    finally:
        first.stop()
        second.stop()


def test_oversized_body_is_refused_before_it_is_read(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    csrf = signed_in(client, make_user)
    data = {**GOOD, "submission_id": secrets.token_hex(16), "padding": "x" * 100_000}
    response = client.post("/scan", data=data, headers={**HTMX, "X-CSRF-Token": csrf})
    assert response.status_code == 413
    assert scan_rows(settings) == []


async def test_live_table_streams_are_capped_per_user_and_end_with_the_session(
    live_server: LiveServer, settings: Settings, make_user: Any
) -> None:
    make_user("sol", "operator")
    assert settings.database_url

    async def sign_in(http: httpx2.AsyncClient) -> None:
        page = await http.get("/login")
        await http.post("/login", data={"username": "sol", "password": "correct-horse-42",
                                        "csrf_token": csrf_token_in(page.text)})

    async def open_streams(http: httpx2.AsyncClient, stack: contextlib.AsyncExitStack
                           ) -> list[Any]:
        streams = [await stack.enter_async_context(http.stream("GET", "/scan/stream"))
                   for _ in range(STREAMS_PER_USER)]
        assert [stream.status_code for stream in streams] == [200] * STREAMS_PER_USER
        return streams

    async def ended(stream: Any) -> None:
        async for _ in stream.aiter_bytes():
            pass

    async with httpx2.AsyncClient(base_url=live_server.url, timeout=60) as http:
        await sign_in(http)
        async with contextlib.AsyncExitStack() as stack:
            streams = await open_streams(http, stack)
            assert (await http.get("/scan/stream")).status_code == 429
            await execute(settings.database_url, "DELETE FROM sessions")  # signed out elsewhere
            async with asyncio.timeout(60):  # a stream otherwise lasts ten minutes
                await asyncio.gather(*(ended(stream) for stream in streams))
        await sign_in(http)
        async with contextlib.AsyncExitStack() as stack:  # the ended streams gave their slots back
            await open_streams(http, stack)


# -- the operator's counter and the re-scan marker --------------------------------

COUNTER = re.compile(r'<p id="operator-count"[^>]*data-operator="([^"]*)"[^>]*>([^<]*)</p>')


def counter_in(html: str) -> tuple[str, str]:
    """The counter's operator code and text."""
    found = COUNTER.search(html)
    assert found, "no operator counter here"
    return found[1], found[2]


def counter_tag(html: str) -> str:
    found = re.search(r'<p id="operator-count"[^>]*>', html)
    assert found, "no operator counter here"
    return found[0]


def counter_rows(settings: Settings) -> list[tuple]:
    assert settings.database_url
    (rows,) = run_async(execute(
        settings.database_url,
        "SELECT station, operator_code, shift_start, scans FROM operator_shift_scans"
        " ORDER BY station, operator_code"))
    return rows


def test_a_save_brings_the_operators_count_and_what_a_rescan_replaced(
    client: TestClient, make_user: Any
) -> None:
    csrf = signed_in(client, make_user)
    first = post_scan(client, csrf, defect_code="104")
    assert counter_in(first.text) == ("OP07", "1 scan this shift")
    assert 'hx-swap-oob="true"' in counter_tag(first.text)  # drawn over the page's own
    assert "Re-scan" not in first.text
    second = post_scan(client, csrf)  # the same piece, approved now
    assert "Re-scan of a rejected piece (104 Missing component)" in second.text
    assert counter_in(second.text) == ("OP07", "2 scans this shift")
    third = post_scan(client, csrf, defect_code="101")
    assert "Re-scan of an approved piece" in third.text
    another = post_scan(client, csrf, operator_code="OP08", piece_code="CP00012345-0002")
    assert counter_in(another.text) == ("OP08", "1 scan this shift")
    # a repeated submission: its first answer again, and the page keeps its counter
    submission = secrets.token_hex(16)
    post_scan(client, csrf, submission=submission, piece_code="CP00012345-0003")
    repeat = post_scan(client, csrf, submission=submission, piece_code="CP00012345-0003")
    assert "This scan had already been saved." in repeat.text
    assert 'id="operator-count"' not in repeat.text
    # without htmx, the whole page with the counter in its place
    page = client.post("/scan", data={**GOOD, "piece_code": "CP00012345-0004",
                                      "submission_id": secrets.token_hex(16),
                                      "csrf_token": csrf})
    assert counter_in(page.text) == ("OP07", "5 scans this shift")
    assert "hx-swap-oob" not in counter_tag(page.text)


def test_the_piece_lookup_answers_its_latest_verdict_at_this_station(
    client: TestClient, make_user: Any
) -> None:
    csrf = signed_in(client, make_user)
    never = client.get("/scan/piece", params={"code": GOOD["piece_code"]}, headers=HTMX)
    assert never.status_code == 200
    assert 'data-piece="CP00012345-0001" data-testid="rescan-notice" hidden>' in never.text
    assert "Re-scan" not in never.text
    post_scan(client, csrf, defect_code="104")
    found = client.get("/scan/piece", params={"code": " cp00012345-0001 "}, headers=HTMX)
    assert 'data-piece="CP00012345-0001"' in found.text and " hidden" not in found.text
    assert "Re-scan of a rejected piece (104 Missing component)" in found.text
    post_scan(client, csrf)
    assert "Re-scan of an approved piece" in client.get(
        "/scan/piece", params={"code": GOOD["piece_code"]}).text
    assert "Re-scan" not in client.get("/fgscan/piece", params={"code": GOOD["piece_code"]}).text


def test_the_operator_lookup_counts_this_shift_at_this_station(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    csrf = signed_in(client, make_user)
    for n in range(3):
        post_scan(client, csrf, piece_code=f"CP00012345-{n:04d}")
    post_scan(client, csrf, "/fgscan")
    answer = client.get("/scan/operator", params={"code": "op07"}, headers=HTMX)
    assert answer.status_code == 200
    assert counter_in(answer.text) == ("OP07", "3 scans this shift")
    shift_end = Shifts.of_plant(settings).around(utc_now())[1]
    assert f'data-until="{int(shift_end.replace(tzinfo=UTC).timestamp() * 1000)}"' in answer.text
    assert counter_in(client.get("/fgscan/operator", params={"code": "OP07"}).text) == (
        "OP07", "1 scan this shift")
    assert counter_in(client.get("/scan/operator", params={"code": "OP99"}).text) == (
        "OP99", "0 scans this shift")


@pytest.mark.parametrize(("path", "params", "message"), [
    ("/scan/piece", {"code": "XX00012345"}, "Piece code must look like CP00012345-0001."),
    ("/scan/piece", {}, "Piece code is missing: scan or type it."),
    ("/scan/piece", {"code": "CP" + "1" * 100}, "Piece code is too long (at most 64 characters)."),
    ("/fgscan/piece", {"code": "OP07"}, "Piece code must look like CP00012345-0001."),
    ("/scan/operator", {"code": "CP00012345-0001"}, "Operator code must look like OP07."),
    ("/scan/operator", {"code": ""}, "Operator code is missing: scan or type it."),
])
def test_the_lookups_refuse_bad_codes_and_change_nothing(
    client: TestClient, make_user: Any, settings: Settings, path: str, params: dict[str, str],
    message: str
) -> None:
    csrf = signed_in(client, make_user)
    post_scan(client, csrf)
    before = scan_rows(settings), counter_rows(settings)
    answer = client.get(path, params=params, headers=HTMX)
    assert answer.status_code == 400
    assert message in answer.text
    assert (scan_rows(settings), counter_rows(settings)) == before


def test_a_lookup_at_no_station_is_not_found(client: TestClient, make_user: Any) -> None:
    signed_in(client, make_user)
    for path in ("/nostation/piece", "/scan/nothing", "/scans/piece"):
        assert client.get(path, params={"code": GOOD["piece_code"]}).status_code == 404


# -- the page the terminal keeps (static/sw.js) ------------------------------------


def test_the_service_worker_is_served_from_the_root_for_the_deployments_assets(
    client: TestClient, make_user: Any
) -> None:
    signed_in(client, make_user)
    page = client.get("/scan").text
    version = app_services(client).renderer.asset_version
    assert f'data-assets="{version}"' in page
    assert f'data-worker="/sw.js?v={version}&amp;pages=%2Fscan%2C%2Ffgscan"' in page
    worker = client.get(f"/sw.js?v={version}")
    assert worker.status_code == 200
    assert worker.headers["content-type"].startswith("text/javascript")
    assert worker.headers["service-worker-allowed"] == "/"
    assert worker.headers["cache-control"] == "no-cache"  # a new deployment's is seen at once
    assert "skipWaiting" in worker.text


def test_the_session_check_gives_the_user_and_a_fresh_token(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    csrf = signed_in(client, make_user)
    answer = client.get("/scan/session", headers=HTMX)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    user_id = run_async(execute(settings.database_url, "SELECT MAX(id) FROM users"))[0][0][0]
    assert answer.json() == {"user": user_id, "csrf": csrf,
                             "assets": app_services(client).renderer.asset_version}
    assert post_scan(client, answer.json()["csrf"]).status_code == 200
    client.post("/logout", data={"csrf_token": csrf})
    signed_out = client.get("/scan/session", headers=HTMX)
    assert signed_out.status_code == 401 and "csrf" not in signed_out.text

