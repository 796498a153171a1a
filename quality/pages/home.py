"""The home page sends each user to their work."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from quality.http.destinations import destinations_for
from quality.http.render import render
from quality.permissions import SIGNED_IN, guard
from quality.session_cache import User


@guard(SIGNED_IN)
async def home(request: Request) -> Response:
    user: User = request.state.user
    destinations = destinations_for(request, user)
    if user.can("scans.view") and not any(name.startswith("admin.") for name in user.permissions):
        # Supervisors follow the lines all day: they start at the scan list.
        return RedirectResponse("/scans", 303)
    if len(destinations) == 1:
        return RedirectResponse(destinations[0][0], 303)
    return render(request, "home.html", {"destinations": destinations})


routes = [Route("/", home, methods=["GET"])]
