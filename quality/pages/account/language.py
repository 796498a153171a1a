"""The header's language selector: a signed-in user's choice, stored with them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from quality.accounts import set_language
from quality.http.errors import error_page
from quality.http.services import services
from quality.http.sessions import current_session_id
from quality.i18n import LANGUAGES, lazy
from quality.pages.account.sign_in import safe_next_url
from quality.permissions import SIGNED_IN, guard


@guard(SIGNED_IN)
async def choose_language(request: Request) -> Response:
    form = await request.form()
    language = form.get("language")
    if language not in LANGUAGES:
        return error_page(request, 400, lazy("Choose one of the languages offered."))
    async with services(request).db.transaction() as cur:
        await set_language(cur, request.state.user.id, language)
    # Other processes drop it when the users trigger moves auth_version; this
    # one at once, so the next page is already in the new language.
    session_id = current_session_id(request)
    if session_id is not None:
        services(request).sessions.forget(session_id)
    return RedirectResponse(safe_next_url(str(form.get("next", ""))), 303)


routes = [Route("/language", choose_language, methods=["POST"])]
