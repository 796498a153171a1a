"""Saved filters: a supervisor saves the list's filter by name, finds it listed
as a link that opens the same list (shareable), and deletes it; bad names,
bad filters, other users' filters and a missing CSRF token are refused with
nothing changed."""

from __future__ import annotations

import re
from typing import Any

from starlette.testclient import TestClient

from quality.saved_filters import MAX_SAVED
from tests.conftest import csrf_token_in, execute, login, run_async


def saved_links(html: str) -> list[tuple[str, str]]:
    return [(href.replace("&amp;", "&"), name)
            for href, name in re.findall(r'<a href="([^"]+)" data-testid="saved-link">([^<]+)</a>', html)]


def stored(db_url: Any) -> list[tuple]:
    return run_async(execute(db_url, "SELECT user_id, name, query FROM saved_filters ORDER BY id"))[-1]


def test_a_supervisor_saves_opens_and_deletes_a_filter(client: TestClient, make_user: Any,
                                                       db_url: Any) -> None:
    make_user("sue", "supervisor")
    login(client, "sue")
    page = client.get("/scans", params={"station": "quality", "defect": "104, 101", "rejected": "1",
                                        "group": "operator"})
    token = csrf_token_in(page.text)
    query = re.findall(r'name="query" value="([^"]*)"', page.text)[0].replace("&amp;", "&")
    answer = client.post("/scans/saved", data={"csrf_token": token, "name": "  Rejected 101/104  ",
                                               "query": query}, follow_redirects=False)
    assert answer.status_code == 303
    link = "/scans?station=quality&defect=104%2C101&rejected=1&group=operator"
    assert answer.headers["location"] == link
    page = client.get("/scans")
    assert saved_links(page.text) == [(link, "Rejected 101/104")]
    # The link is the list itself: anyone allowed to see lists can open it.
    assert 'data-testid="groups"' in client.get(link).text

    # Refused, each with its reason, and nothing saved.
    for form, reason in (
            ({"name": "rejected 101/104", "query": "station=fg"}, "already"),  # names ignore case
            ({"name": "  ", "query": "station=fg"}, "Name the filter to save it."),
            ({"name": "x" * 61, "query": "station=fg"}, "too long"),
            ({"name": "Bad\u0007bell", "query": "station=fg"}, "Name must look like"),
            ({"name": "Paint", "query": "station=paint"}, "The filter is not valid."),
            ({"name": "Deep", "query": "defect=1a4"}, "The filter is not valid.")):
        answer = client.post("/scans/saved", data={"csrf_token": token, **form}, follow_redirects=False)
        assert answer.status_code == 400 and reason in answer.text, form
    assert client.post("/scans/saved", data={"name": "No token", "query": ""}).status_code == 403
    assert [name for _, name, _ in stored(db_url)] == ["Rejected 101/104"]

    # Another supervisor neither sees nor deletes it.
    [(saved_id,)] = run_async(execute(db_url, "SELECT id FROM saved_filters"))[-1]
    make_user("sam", "supervisor")
    client.cookies.clear()
    login(client, "sam")
    page = client.get("/scans")
    assert saved_links(page.text) == []
    answer = client.post("/scans/saved/delete", data={"csrf_token": csrf_token_in(page.text),
                                                      "id": str(saved_id)})
    assert answer.status_code == 404
    assert client.post("/scans/saved/delete", data={"csrf_token": csrf_token_in(page.text),
                                                    "id": "x"}).status_code == 400
    assert len(stored(db_url)) == 1
    client.cookies.clear()
    login(client, "sue")
    token = csrf_token_in(client.get("/scans").text)

    answer = client.post("/scans/saved/delete", data={"csrf_token": token, "id": str(saved_id)},
                         follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/scans"
    assert saved_links(client.get("/scans").text) == [] and stored(db_url) == []


def test_a_user_keeps_at_most_so_many_saved_filters(client: TestClient, make_user: Any,
                                                    db_url: Any) -> None:
    make_user("sue", "supervisor")
    login(client, "sue")
    token = csrf_token_in(client.get("/scans").text)
    run_async(execute(db_url, "INSERT INTO saved_filters (user_id, name, query)"
                              f" SELECT id, CONCAT('f', seq), '' FROM users, seq_1_to_{MAX_SAVED}"
                              " WHERE username = 'sue'"))
    answer = client.post("/scans/saved", data={"csrf_token": token, "name": "One more", "query": ""})
    assert answer.status_code == 400 and f"You have {MAX_SAVED} saved filters" in answer.text
    assert len(stored(db_url)) == MAX_SAVED
