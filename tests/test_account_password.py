"""My account: a user changes their own password with the current one; their
other sessions end, this one goes on."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.testclient import TestClient

from quality.app import create_app
from quality.settings import Settings
from quality.throttle import BOUNDS
from tests.admin_support import audit_rows, snapshot, two_processes
from tests.conftest import csrf_token_in, eventually, login
from tests.test_sign_in import age_attempts


def form(token: str, **fields: str) -> dict[str, str]:
    return {"csrf_token": token, "current_password": "correct-horse-42",
            "new_password": "brand-new-pw-1", "repeat_password": "brand-new-pw-1", **fields}


def test_changing_my_password_ends_my_other_sessions_only(settings: Settings, make_user: Any) -> None:
    make_user("sam", "operator")
    with two_processes(settings) as (here, elsewhere):
        login(here, "sam")
        login(elsewhere, "sam")
        token = csrf_token_in(here.get("/account").text)
        changed = here.post("/account/password", data=form(token), follow_redirects=False)
        assert changed.status_code == 303
        assert "Password changed" in here.get(changed.headers["location"]).text
        assert eventually(lambda: elsewhere.get("/scan", follow_redirects=False).status_code == 303)
        assert here.get("/scan").status_code == 200
    assert audit_rows(settings)[-1][:3] == ("sam", "user.password.change", "sam")
    with TestClient(create_app(settings)) as again:
        assert login(again, "sam", "brand-new-pw-1").status_code == 303


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"current_password": "wrong-password"}, "current_password", "The current password is wrong."),
    ({"current_password": ""}, "current_password", "Enter your current password."),
    ({"repeat_password": "something-else"}, "repeat_password", "The two new passwords differ."),
    ({"new_password": "short", "repeat_password": "short"}, "new_password", "at least 8 characters"),
    ({"new_password": "correct-horse-42", "repeat_password": "correct-horse-42"}, "new_password",
     "must differ from the current one"),
])
def test_a_bad_change_is_refused_beside_its_field(
    client: TestClient, make_user: Any, settings: Settings, fields: dict[str, str], field: str,
    message: str,
) -> None:
    make_user("sam", "operator")
    login(client, "sam")
    token = csrf_token_in(client.get("/account").text)
    before = snapshot(settings)
    refused = client.post("/account/password", data=form(token, **fields))
    assert refused.status_code == 422
    assert f'data-testid="{field}-error">' in refused.text and message in refused.text
    assert "brand-new-pw-1" not in refused.text
    assert snapshot(settings) == before


def login_failures(client: TestClient) -> float:
    found = re.search(r"^quality_login_failures_total (\S+)$", client.get("/metrics").text, re.M)
    assert found
    return float(found[1])


def test_wrong_current_passwords_are_throttled_like_failed_sign_ins(
    client: TestClient, make_user: Any, settings: Settings
) -> None:
    make_user("sam", "operator")
    login(client, "sam")
    token = csrf_token_in(client.get("/account").text)
    before = snapshot(settings)
    failures = login_failures(client)
    free = BOUNDS["pair"].free
    for _ in range(free):
        wrong = client.post("/account/password", data=form(token, current_password="wrong-password"))
        assert wrong.status_code == 422 and "The current password is wrong." in wrong.text
    assert login_failures(client) == failures + free
    refused = client.post("/account/password", data=form(token))  # even the right one waits now
    assert refused.status_code == 429
    assert 'data-testid="current_password-error">' in refused.text
    assert "Too many wrong passwords. Wait 15 seconds, then try again." in refused.text
    assert snapshot(settings) == before
    with TestClient(create_app(settings), client=("127.0.0.1", 50001)) as same_station:
        assert login(same_station, "sam").status_code == 429  # the same counters as signing in
    age_attempts(settings, 16)
    assert client.post("/account/password", data=form(token), follow_redirects=False).status_code == 303
