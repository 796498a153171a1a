"""Property-based fuzz of every admin form (hypothesis): whatever is sent,
never a 500, and a refused submission writes nothing (the admin tables and
the audit log are exactly as before)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from quality.settings import Settings
from tests.admin_support import post_pairs, query, sign_in, snapshot
from tests.test_admin_csrf import PATHS, valid_forms

BOUNDED = hypothesis_settings(max_examples=30, deadline=None, derandomize=True,
                              suppress_health_check=[HealthCheck.function_scoped_fixture])
# Values that are almost right, or wrong in the ways that matter.
NEAR = st.sampled_from(["", " ", "000", "101", "admin", "operator", "admin.users", "scan.fg", "on",
                        "-1", "0", "99999999999999999999", "a" * 1025, "ad min", "x%", "<b>x</b>",
                        "\x00", "é" * 120, "long-enough-1"])
VALUE = st.one_of(NEAR, st.text(max_size=200))


@pytest.fixture
def admin(client: TestClient, make_user: Any, settings: Settings) -> tuple[TestClient, str, dict]:
    token = sign_in(client, make_user, "ada", "admin")
    make_user("sam", "operator")
    query(settings, "INSERT INTO roles (name) VALUES ('spare')")
    return client, token, valid_forms(settings)


def submission(draw: Any, form: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The form's own field names (each dropped, kept or repeated) with fuzzed values,
    and sometimes a field it does not have."""
    names = [name for name, _ in form] + ["role", "active", "name", "p1", "p65000"]
    chosen = draw(st.lists(st.sampled_from(names), max_size=8))
    return [(name, draw(VALUE)) for name in chosen]


@pytest.mark.parametrize("index", range(len(PATHS)), ids=PATHS)
@BOUNDED
@given(data=st.data())
def test_an_admin_form_never_fails_and_a_refusal_writes_nothing(
    admin: tuple[TestClient, str, dict], settings: Settings, index: int, data: st.DataObject
) -> None:
    client, token, forms = admin
    url, form = list(forms.items())[index]
    sent = submission(data.draw, form)
    htmx = data.draw(st.booleans())
    before = snapshot(settings)
    answer = post_pairs(client, url, [("csrf_token", token), *sent], follow_redirects=False,
                        headers={"HX-Request": "true"} if htmx else None)
    assert answer.status_code < 500, (url, sent, answer.text[-1500:])
    if answer.status_code != 303 and not (htmx and answer.status_code == 200):
        assert snapshot(settings) == before, (url, sent, answer.status_code)


@pytest.mark.parametrize("path", ["/admin/users", "/admin/audit"])
@BOUNDED
@given(query_string=st.lists(st.tuples(st.sampled_from(
    ["q", "role", "active", "actor", "action", "since", "until", "before"]), VALUE), max_size=6))
def test_list_filters_never_fail(
    admin: tuple[TestClient, str, dict], path: str, query_string: list[tuple[str, str]]
) -> None:
    client, _token, _forms = admin
    answer = client.get(path, params=query_string)
    assert answer.status_code in (200, 400, 422), (query_string, answer.text[-1500:])
