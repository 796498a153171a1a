"""My account (/account): every user changes their own password here, with
the current one; their sessions elsewhere end. The same check serves the
sign-in of a user whose password an admin reset (quality/auth.py). A wrong
current password is a failed attempt like a failed sign-in: counted against the
same counters (quality/throttle.py) and in the login-failure metric."""

from __future__ import annotations

import re

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from quality.accounts import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    AccountError,
    WrongPassword,
    change_own_password,
)
from quality.audit import Actor
from quality.fields import Field, Validated, keep, validate
from quality.http.render import render
from quality.http.services import services
from quality.http.sessions import current_session_id
from quality.i18n import lazy
from quality.permissions import SIGNED_IN, guard
from quality.throttle import Throttled, password_wait_message

TEMPLATE = "account/account.html"
_ANY = re.compile(r".*", re.S)
CURRENT = Field("current_password", lazy("Current password"), _ANY, "", MAX_PASSWORD, keep,
                missing=lazy("Enter your current password."))
NEW_PASSWORD_FIELDS = (
    Field("new_password", lazy("New password"), _ANY, "", MAX_PASSWORD, keep, min_length=MIN_PASSWORD,
          missing=lazy("Choose a new password.")),
    Field("repeat_password", lazy("New password again"), _ANY, "", MAX_PASSWORD, keep,
          missing=lazy("Type the new password again.")),
)


def check_new_password(form: FormData, *fields: Field) -> Validated:
    """The new password twice (and any other fields): one message per bad field."""
    checked = validate(form, (*fields, *NEW_PASSWORD_FIELDS))
    if "repeat_password" not in checked.errors and \
            checked.values["repeat_password"] != checked.values["new_password"]:
        checked.errors["repeat_password"] = lazy("The two new passwords differ.")
    return checked


@guard(SIGNED_IN)
async def account_page(request: Request) -> Response:
    changed = request.query_params.get("done") == "password"
    return render(request, TEMPLATE, {"errors": {}, "changed": changed})


@guard(SIGNED_IN)
async def change_password(request: Request) -> Response:
    checked = check_new_password(await request.form(), CURRENT)
    status = 422
    if checked.ok:
        try:
            await change_own_password(
                services(request).db, request.state.user.id, checked.values["current_password"],
                checked.values["new_password"], actor=Actor.of(request),
                keep_session=current_session_id(request),
            )
        except Throttled as exc:
            checked.errors["current_password"], status = password_wait_message(exc.wait), 429
        except AccountError as exc:
            if isinstance(exc, WrongPassword):  # a guess at the password, like a failed sign-in
                services(request).metrics.login_failures.inc()
            checked.errors[exc.field or "new_password"] = exc.args[0]
        else:
            return RedirectResponse("/account?done=password", 303)
    return render(request, TEMPLATE, {"errors": checked.errors, "changed": False}, status_code=status)


routes = [
    Route("/account", account_page, methods=["GET"]),
    Route("/account/password", change_password, methods=["POST"]),
]
