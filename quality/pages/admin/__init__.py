"""The admin pages (SPEC §6 "Admin"): users, roles and the permission matrix,
the defect catalogue, the audit log. One module per page, each bringing its
routes; every change goes through a function that audits it in the same
transaction (quality/audit.py)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import RedirectResponse


def notice(request: Request, notices: Mapping[str, str]) -> str | None:
    """The message for `?done=...` after a redirect; anything else shows nothing."""
    return notices.get(request.query_params.get("done", ""))


def done(url: str, what: str) -> RedirectResponse:
    """After a change: back to a page (303, so a reload does not post again)."""
    return RedirectResponse(f"{url}?done={what}", 303)
