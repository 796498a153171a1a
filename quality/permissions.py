"""Named capabilities and the one check every route goes through: `endpoint`."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from quality.http.csrf import verify_csrf
from quality.user_sessions import load_user

# Seeded by migration 0001; roles get them through the permission matrix.
PERMISSIONS = {
    "scan.quality": "Use the quality scan station (/scan)",
    "scan.fg": "Use the finished-goods scan station (/fgscan)",
    "scans.view": "View scan lists",
    "scans.export": "Export scan lists as CSV and XLSX",
    "reports.view": "View reports",
    "admin.users": "Manage users",
    "admin.roles": "Manage roles and their permissions",
    "admin.defects": "Manage the defect code catalogue",
    "admin.audit": "View the audit log",
}
SIGNED_IN = "signed-in"  # any user with a live session
PUBLIC = None  # no session needed (login page, health check)

Endpoint = Callable[[Request], Awaitable[Response]]


class NotSignedIn(Exception):
    """The request needs a session and has none (or it ended)."""


def endpoint(permission: str | None) -> Callable[[Endpoint], Endpoint]:
    """Guard a route: the user must hold `permission`, and a state-changing
    request must carry the session's CSRF token."""
    if permission not in (SIGNED_IN, PUBLIC) and permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorate(func: Endpoint) -> Endpoint:
        @functools.wraps(func)
        async def guarded(request: Request) -> Response:
            if permission is not PUBLIC:
                user = await load_user(request)
                if user is None:
                    raise NotSignedIn
                if permission != SIGNED_IN and not user.can(permission):
                    raise HTTPException(403, "Your role does not allow this page.")
            await verify_csrf(request)
            return await func(request)

        guarded.permission = permission  # type: ignore[attr-defined]
        return guarded

    return decorate
