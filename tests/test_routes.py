"""Every route in the router, visited by anonymous, by each default role and by
roles holding one admin permission each, against a real server: the status
each gets is the one in ROUTE_STATUS (ONE_ADMIN_PERMISSION_STATUS). A new
route without an entry fails here, so its access rules are decided, not left
to chance.

Signed-in POSTs carry the session's CSRF token and an empty form; so a route
its role may use answers with its own validation (400/422) or its redirect,
and one it may not use answers 403 before reading anything."""

from __future__ import annotations

from typing import Any

import httpx2
from starlette.routing import Route

from quality.app import create_app
from quality.settings import Settings
from tests.admin_support import make_role
from tests.conftest import PASSWORD, LiveServer, csrf_token_in, execute, run_async

WHO = ("anonymous", "operator", "supervisor", "admin")
# (method, path) -> status for anonymous, operator, supervisor, admin.
# 303 for an anonymous page is the redirect to /login; 401 a POST without a session.
ROUTE_STATUS: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("GET", "/"): (303, 200, 303, 200),  # supervisors land on the scan list
    ("GET", "/login"): (200, 303, 303, 303),
    ("POST", "/login"): (400, 400, 400, 400),
    ("POST", "/language"): (401, 400, 400, 400),  # no language named: refused
    ("GET", "/healthz"): (200, 200, 200, 200),
    ("GET", "/metrics"): (200, 200, 200, 200),  # loopback without a token (tests/test_ops.py)
    ("GET", "/scan"): (303, 200, 200, 200),
    ("POST", "/scan"): (401, 400, 400, 400),
    ("GET", "/scan/stream"): (303, 200, 200, 200),
    ("GET", "/scan/piece"): (303, 400, 400, 400),  # no code given
    ("GET", "/scan/operator"): (303, 400, 400, 400),
    ("GET", "/scan/session"): (303, 200, 200, 200),
    ("GET", "/fgscan"): (303, 200, 200, 200),
    ("POST", "/fgscan"): (401, 400, 400, 400),
    ("GET", "/fgscan/stream"): (303, 200, 200, 200),
    ("GET", "/fgscan/piece"): (303, 400, 400, 400),  # no code given
    ("GET", "/fgscan/operator"): (303, 400, 400, 400),
    ("GET", "/fgscan/session"): (303, 200, 200, 200),
    ("GET", "/sw.js"): (200, 200, 200, 200),
    ("GET", "/scans"): (303, 403, 200, 200),
    ("GET", "/scans/totals"): (303, 403, 200, 200),
    ("GET", "/scans/stream"): (303, 403, 200, 200),
    ("GET", "/scans/export.csv"): (303, 403, 200, 200),
    ("GET", "/scans/export-spreadsheet.csv"): (303, 403, 200, 200),
    ("GET", "/scans/export.xlsx"): (303, 403, 200, 200),
    ("POST", "/scans/saved"): (401, 403, 400, 400),  # no name given
    ("POST", "/scans/saved/delete"): (401, 403, 400, 400),
    ("GET", "/reports"): (303, 403, 200, 200),
    ("GET", "/account"): (303, 200, 200, 200),
    ("POST", "/account/password"): (401, 422, 422, 422),
    ("GET", "/admin"): (303, 403, 403, 200),
    ("GET", "/admin/users"): (303, 403, 403, 200),
    ("POST", "/admin/users"): (401, 403, 403, 422),
    ("GET", "/admin/users/badges"): (303, 403, 403, 200),
    ("POST", "/admin/users/badges"): (401, 403, 403, 422),  # no code given
    ("GET", "/admin/users/{user_id:int}"): (303, 403, 403, 200),
    ("POST", "/admin/users/{user_id:int}"): (401, 403, 403, 422),
    ("POST", "/admin/users/{user_id:int}/password"): (401, 403, 403, 422),
    ("GET", "/admin/users/{user_id:int}/disable"): (303, 403, 403, 200),  # the question first
    ("POST", "/admin/users/{user_id:int}/disable"): (401, 403, 403, 303),
    ("GET", "/admin/roles"): (303, 403, 403, 200),
    ("POST", "/admin/roles"): (401, 403, 403, 422),
    ("POST", "/admin/roles/matrix"): (401, 403, 403, 422),
    ("POST", "/admin/roles/{role_id:int}/rename"): (401, 403, 403, 422),
    ("POST", "/admin/roles/{role_id:int}/delete"): (401, 403, 403, 422),
    ("GET", "/admin/defects"): (303, 403, 403, 200),
    ("POST", "/admin/defects"): (401, 403, 403, 422),
    ("GET", "/admin/defects/sheet"): (303, 403, 403, 200),
    ("GET", "/admin/defects/{code}"): (303, 403, 403, 200),
    ("POST", "/admin/defects/{code}"): (401, 403, 403, 422),
    ("GET", "/admin/audit"): (303, 403, 403, 200),
    ("GET", "/alerts"): (303, 403, 200, 200),
    ("GET", "/alerts/{alert_id:int}"): (303, 403, 404, 404),  # no alert fired
    ("POST", "/alerts/{alert_id:int}/acknowledge"): (401, 403, 404, 404),
    ("GET", "/alerts/stream"): (303, 403, 200, 200),
    ("GET", "/alerts/stream/quality"): (303, 200, 200, 200),
    ("GET", "/alerts/stream/fg"): (303, 200, 200, 200),
    ("GET", "/admin/alerts"): (303, 403, 403, 200),
    ("POST", "/admin/alerts"): (401, 403, 403, 422),
    ("POST", "/admin/alerts/{rule_id:int}/remove"): (401, 403, 403, 404),  # no rule made
    ("POST", "/logout"): (401, 303, 303, 303),  # last: it ends the session
}


# Custom roles each holding one admin permission, and nothing else: the guard
# lets each into its own pages, and delegation (quality/accounts.py) refuses
# what touches the operator's account or role, whose permissions they lack.
ONE_ADMIN_PERMISSION = {"users-only": "admin.users", "roles-only": "admin.roles",
                        "defects-only": "admin.defects", "audit-only": "admin.audit"}
# (method, path) -> status for users-only, roles-only, defects-only, audit-only.
ONE_ADMIN_PERMISSION_STATUS: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("GET", "/"): (303, 303, 303, 303),  # their one page
    ("GET", "/login"): (303, 303, 303, 303),
    ("POST", "/login"): (400, 400, 400, 400),
    ("POST", "/language"): (400, 400, 400, 400),
    ("GET", "/healthz"): (200, 200, 200, 200),
    ("GET", "/metrics"): (200, 200, 200, 200),
    ("GET", "/scan"): (403, 403, 403, 403),
    ("POST", "/scan"): (403, 403, 403, 403),
    ("GET", "/scan/stream"): (403, 403, 403, 403),
    ("GET", "/scan/piece"): (403, 403, 403, 403),
    ("GET", "/scan/operator"): (403, 403, 403, 403),
    ("GET", "/scan/session"): (403, 403, 403, 403),
    ("GET", "/fgscan"): (403, 403, 403, 403),
    ("POST", "/fgscan"): (403, 403, 403, 403),
    ("GET", "/fgscan/stream"): (403, 403, 403, 403),
    ("GET", "/fgscan/piece"): (403, 403, 403, 403),
    ("GET", "/fgscan/operator"): (403, 403, 403, 403),
    ("GET", "/fgscan/session"): (403, 403, 403, 403),
    ("GET", "/sw.js"): (200, 200, 200, 200),
    ("GET", "/scans"): (403, 403, 403, 403),
    ("GET", "/scans/totals"): (403, 403, 403, 403),
    ("GET", "/scans/stream"): (403, 403, 403, 403),
    ("GET", "/scans/export.csv"): (403, 403, 403, 403),
    ("GET", "/scans/export-spreadsheet.csv"): (403, 403, 403, 403),
    ("GET", "/scans/export.xlsx"): (403, 403, 403, 403),
    ("POST", "/scans/saved"): (403, 403, 403, 403),
    ("POST", "/scans/saved/delete"): (403, 403, 403, 403),
    ("GET", "/reports"): (403, 403, 403, 403),
    ("GET", "/account"): (200, 200, 200, 200),
    ("POST", "/account/password"): (422, 422, 422, 422),
    ("GET", "/admin"): (200, 200, 200, 200),  # an index of their one page
    ("GET", "/admin/users"): (200, 403, 403, 403),
    ("POST", "/admin/users"): (422, 403, 403, 403),
    ("GET", "/admin/users/badges"): (200, 403, 403, 403),
    ("POST", "/admin/users/badges"): (422, 403, 403, 403),
    ("GET", "/admin/users/{user_id:int}"): (200, 403, 403, 403),  # shown, but not changeable
    ("POST", "/admin/users/{user_id:int}"): (422, 403, 403, 403),
    ("POST", "/admin/users/{user_id:int}/password"): (422, 403, 403, 403),
    ("GET", "/admin/users/{user_id:int}/disable"): (200, 403, 403, 403),  # says why not
    ("POST", "/admin/users/{user_id:int}/disable"): (403, 403, 403, 403),  # an operator holds more
    ("GET", "/admin/roles"): (403, 200, 403, 403),
    ("POST", "/admin/roles"): (403, 422, 403, 403),
    ("POST", "/admin/roles/matrix"): (403, 422, 403, 403),
    ("POST", "/admin/roles/{role_id:int}/rename"): (403, 422, 403, 403),
    ("POST", "/admin/roles/{role_id:int}/delete"): (403, 403, 403, 403),
    ("GET", "/admin/defects"): (403, 403, 200, 403),
    ("POST", "/admin/defects"): (403, 403, 422, 403),
    ("GET", "/admin/defects/sheet"): (403, 403, 200, 403),
    ("GET", "/admin/defects/{code}"): (403, 403, 200, 403),
    ("POST", "/admin/defects/{code}"): (403, 403, 422, 403),
    ("GET", "/admin/audit"): (403, 403, 403, 200),
    ("GET", "/alerts"): (403, 403, 403, 403),
    ("GET", "/alerts/{alert_id:int}"): (403, 403, 403, 403),
    ("POST", "/alerts/{alert_id:int}/acknowledge"): (403, 403, 403, 403),
    ("GET", "/alerts/stream"): (403, 403, 403, 403),
    ("GET", "/alerts/stream/quality"): (403, 403, 403, 403),
    ("GET", "/alerts/stream/fg"): (403, 403, 403, 403),
    ("GET", "/admin/alerts"): (403, 403, 403, 403),
    ("POST", "/admin/alerts"): (403, 403, 403, 403),
    ("POST", "/admin/alerts/{rule_id:int}/remove"): (403, 403, 403, 403),
    ("POST", "/logout"): (303, 303, 303, 303),  # last: it ends the session
}


def router_routes(settings: Settings) -> list[tuple[str, str]]:
    found = []
    for route in create_app(settings).routes:
        if isinstance(route, Route):
            found += [(method, route.path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


def test_every_route_has_an_expected_status_for_everyone(settings: Settings, make_user: Any) -> None:
    routes = router_routes(settings)
    assert sorted(routes) == sorted(ROUTE_STATUS), "a route was added or removed: update ROUTE_STATUS"
    assert sorted(routes) == sorted(ONE_ADMIN_PERMISSION_STATUS), \
        "a route was added or removed: update ONE_ADMIN_PERMISSION_STATUS"


def _fill(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    return path


def _status(http: httpx2.Client, method: str, url: str, token: str | None) -> int:
    headers = {"X-CSRF-Token": token} if token else {}
    data = {} if method == "POST" else None
    with http.stream(method, url, headers=headers, data=data) as response:
        return response.status_code  # a stream is left open no longer than its first byte


def test_each_route_answers_each_kind_of_user_as_expected(settings: Settings, make_user: Any) -> None:
    for role in WHO[1:]:
        make_user(f"the-{role}", role)
    assert _walk(settings, WHO, ROUTE_STATUS) == [], "(who, method, path, got, expected)"


def test_each_route_answers_roles_holding_one_admin_permission_as_expected(
    settings: Settings, make_user: Any
) -> None:
    make_user("the-operator", "operator")
    for role, permission in ONE_ADMIN_PERMISSION.items():
        make_role(settings, role, permission)
        make_user(f"the-{role}", role)
    wrong = _walk(settings, tuple(ONE_ADMIN_PERMISSION), ONE_ADMIN_PERMISSION_STATUS)
    assert wrong == [], "(who, method, path, got, expected)"


def _walk(settings: Settings, everyone: tuple[str, ...],
          table: dict[tuple[str, str], tuple[int, ...]]) -> list[tuple[Any, ...]]:
    """Each of `everyone` (signed in as the-<who>, but anonymous) visits every route
    of `table`, with ids of the operator's account and role in its path; returns
    each answer that differs from the table's."""
    assert settings.database_url
    (ids,) = run_async(execute(
        settings.database_url,
        "SELECT (SELECT id FROM users WHERE username = 'the-operator'),"
        " (SELECT id FROM roles WHERE name = 'operator')",
    ))
    path_ids = {"user_id:int": str(ids[0][0]), "role_id:int": str(ids[0][1]), "code": "101",
                "alert_id:int": "1", "rule_id:int": "1"}
    server = LiveServer(settings)
    server.start()
    wrong = []
    try:
        for index, who in enumerate(everyone):
            with httpx2.Client(base_url=server.url, timeout=30) as http:
                token = csrf_token_in(http.get("/login").text)
                if who != "anonymous":
                    http.post("/login", data={"username": f"the-{who}", "password": PASSWORD,
                                              "csrf_token": token})
                    token = csrf_token_in(http.get("/account").text)
                for (method, path), statuses in table.items():
                    got = _status(http, method, _fill(path, path_ids), token)
                    if got != statuses[index]:
                        wrong.append((who, method, path, got, statuses[index]))
    finally:
        server.stop()
    return wrong
