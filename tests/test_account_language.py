"""The header's language selector: the page comes back as it was, filter and
all, and `next` only ever names a page of this site."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import csrf_token_in, login

_NEXT = re.compile(r'<form class="language".*?name="next" value="([^"]*)"', re.S)


def test_changing_the_language_keeps_the_path_and_the_filter(client: TestClient, make_user: Any) -> None:
    make_user("sven", "supervisor")
    login(client, "sven")
    page = client.get("/scans?station=quality&rejected=1")
    found = _NEXT.search(page.text)
    assert found and html.unescape(found[1]) == "/scans?station=quality&rejected=1"
    chosen = client.post("/language", data={"language": "ro", "next": html.unescape(found[1]),
                                            "csrf_token": csrf_token_in(page.text)}, follow_redirects=False)
    assert chosen.status_code == 303
    assert chosen.headers["location"] == "/scans?station=quality&rejected=1"
    assert '<html lang="ro">' in client.get(chosen.headers["location"]).text


@pytest.mark.parametrize("hostile", [
    "https://evil.example/scans", "//evil.example/scans", "/\\evil.example", "\\\\evil.example",
    "/\t/evil.example", "/\n/evil.example", "javascript:alert(1)", "http:/evil.example", "scans",
])
def test_a_next_address_off_this_site_goes_home(client: TestClient, make_user: Any, hostile: str) -> None:
    make_user("sven", "supervisor")
    login(client, "sven")
    page = client.get("/scans")
    chosen = client.post("/language", data={"language": "ro", "next": hostile,
                                            "csrf_token": csrf_token_in(page.text)}, follow_redirects=False)
    assert chosen.status_code == 303 and chosen.headers["location"] == "/"
