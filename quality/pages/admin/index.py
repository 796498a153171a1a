"""/admin: an index of the admin pages this user may open (the home page's
own list of destinations, its admin part); a 403 for a user who may open none."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quality.http.destinations import destinations_for
from quality.http.render import render
from quality.i18n import lazy
from quality.permissions import SIGNED_IN, guard


@guard(SIGNED_IN)
async def admin_index(request: Request) -> Response:
    pages = [page for page in destinations_for(request, request.state.user) if page[0].startswith("/admin/")]
    if not pages:
        raise HTTPException(403, lazy("Your role does not allow this page."))
    return render(request, "admin/index.html", {"pages": pages})


routes = [Route("/admin", admin_index, methods=["GET"])]
