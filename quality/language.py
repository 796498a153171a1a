"""The header's language selector: a signed-in user's choice, stored with them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from quality.auth import safe_next_url
from quality.http.errors import error_page
from quality.i18n import LANGUAGES, lazy
from quality.permissions import SIGNED_IN, guard
from quality.services import services


@guard(SIGNED_IN)
async def choose_language(request: Request) -> Response:
    form = await request.form()
    language = form.get("language")
    if language not in LANGUAGES:
        return error_page(request, 400, lazy("Choose one of the languages offered."))
    async with services(request).db.transaction() as cur:
        await cur.execute(
            "INSERT INTO user_preferences (user_id, language) VALUES (%s, %s)"
            " ON DUPLICATE KEY UPDATE language = VALUES(language)",
            (request.state.user.id, language),
        )
    return RedirectResponse(safe_next_url(str(form.get("next", ""))), 303)


routes = [Route("/language", choose_language, methods=["POST"])]
