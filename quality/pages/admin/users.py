"""/admin/users: list (search, filter by role and state), create, edit (full
name, e-mail address, role, active, language), reset a password, disable (after a
confirmation page, so it works without script).

The forms offer only the roles the actor may give, and an account whose role
holds a permission the actor lacks is shown without its forms; what a forged
submission tries anyway is refused in quality/accounts.py (a 403 on the page,
nothing changed, the refusal audited)."""

from __future__ import annotations

import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quality.accounts import (
    EMAIL_FIELD,
    MAX_PASSWORD,
    MIN_PASSWORD,
    USERNAME,
    Account,
    AccountError,
    Grantor,
    NoSuchUser,
    NotDelegable,
    create_user,
    find_user,
    list_users,
    set_password,
    update_user,
)
from quality.audit import Actor
from quality.barcodes import code128_svg
from quality.codes import CHECKER, OPERATOR
from quality.db import Cursor
from quality.fields import TEXT, Field, Validated, checkbox, keep, trim, trim_upper, validate
from quality.http.render import render
from quality.http.services import services
from quality.i18n import LANGUAGES, lazy
from quality.pages.admin import done, notice
from quality.permissions import guard
from quality.roles import all_roles, permissions_by_name
from quality.roles import names as role_names

LIST, EDIT, CONFIRM = "admin/users.html", "admin/user.html", "admin/user_disable.html"
BADGES = "admin/badges.html"
MAX_BADGES = 300  # a few pages of badges; more in one request is a mistake
NOTICES = {
    "created": lazy("User created. They must choose their own password at their first sign-in."),
    "saved": lazy("Changes saved."),
    "password": lazy("Password reset. Their sessions have ended; they choose a new password at the next"
                     " sign-in."),
    "disabled": lazy("User disabled. Their sessions have ended."),
}


def _lower(value: str) -> str:
    return value.strip().lower()


def _password_field(name: str, label: str) -> Field:
    return Field(name, label, re.compile(r".*", re.S), "", MAX_PASSWORD, keep,
                 min_length=MIN_PASSWORD, missing=lazy("Enter a password."))


FULL_NAME = Field("full_name", lazy("Full name"), TEXT, lazy("Ana Pop"), 120, trim, required=False)


LANGUAGE = Field("language", lazy("Language"), TEXT, "ro", 8, trim, required=False, choices=["", *LANGUAGES])


def _role_field(roles: list[str]) -> Field:
    return Field("role", lazy("Role"), TEXT, "operator", 32, trim, choices=roles,
                 missing=lazy("Choose a role."))


def _create_fields(roles: list[str]) -> tuple[Field, ...]:
    return (
        Field("username", lazy("User name"), USERNAME, lazy("ana.pop (letters, digits, . _ -)"), 64, _lower,
              min_length=2, missing=lazy("Enter a user name.")),
        FULL_NAME,
        EMAIL_FIELD,
        _role_field(roles),
        _password_field("password", lazy("Temporary password")),
        LANGUAGE,
    )


async def _descriptions(cur: Cursor) -> dict[str, str]:
    """Each role's description by name, shown beside the role choice."""
    return {role.name: role.description for role in (await all_roles(cur)).values()}


async def _delegable(cur: Cursor, request: Request) -> tuple[Grantor, dict[str, frozenset[str]]]:
    """The signed-in actor with what they hold, and every role's permissions."""
    return await Grantor.read(cur, Actor.of(request)), await permissions_by_name(cur)


def _givable(grantor: Grantor, roles: dict[str, frozenset[str]]) -> list[str]:
    """The roles the actor may give: those whose every permission they hold."""
    return sorted(role for role, permissions in roles.items() if grantor.may_give(permissions))


def _filters(request: Request, roles: list[str]) -> dict[str, str]:
    query = request.query_params
    return {
        "q": query.get("q", "").strip()[:64],
        "role": query.get("role", "") if query.get("role", "") in roles else "",
        "active": query.get("active", "") if query.get("active") in ("yes", "no") else "",
    }


async def _list_page(request: Request, status: int = 200, **values: Any) -> Response:
    async with services(request).db.transaction() as cur:
        roles = await role_names(cur)
        filters = _filters(request, roles)
        active = {"yes": True, "no": False}.get(filters["active"])
        accounts = await list_users(cur, filters["q"], filters["role"], active)
        grantor, permissions = await _delegable(cur, request)
        descriptions = await _descriptions(cur)
    context = {
        "accounts": accounts, "roles": roles, "givable": _givable(grantor, permissions), "filters": filters,
        "descriptions": descriptions,
        "values": {}, "errors": {}, "notice": notice(request, NOTICES), **values,
    }
    return render(request, LIST, context, status_code=status)


@guard("admin.users")
async def users_page(request: Request) -> Response:
    return await _list_page(request)


@guard("admin.users")
async def create(request: Request) -> Response:
    form = await request.form()
    async with services(request).db.transaction() as cur:
        roles = await role_names(cur)
    checked = validate(form, _create_fields(roles))
    if checked.ok:
        values = checked.values
        try:
            user_id = await create_user(
                services(request).db, values["username"], values["password"], values["role"],
                values["full_name"], actor=Actor.of(request), must_change_password=True,
                language=values["language"], email=values["email"],
            )
        except NotDelegable as exc:
            return await _list_page(request, 403, values=_shown(checked), errors={"form": _sentence(exc)})
        except AccountError as exc:
            checked.errors[exc.field or "form"] = _sentence(exc)
        else:
            return done(f"/admin/users/{user_id}", "created")
    return await _list_page(request, 422, values=_shown(checked), errors=checked.errors)


async def _account_or_404(request: Request) -> tuple[Account, list[str]]:
    async with services(request).db.transaction() as cur:
        try:
            account = await find_user(cur, request.path_params["user_id"])
        except NoSuchUser:
            raise HTTPException(404, lazy("There is no such user.")) from None
        return account, await role_names(cur)


async def _edit_page(request: Request, account: Account, status: int = 200, **values: Any) -> Response:
    async with services(request).db.transaction() as cur:
        grantor, permissions = await _delegable(cur, request)
        descriptions = await _descriptions(cur)
    context = {
        "account": account, "givable": _givable(grantor, permissions), "descriptions": descriptions,
        # What the actor lacks of this account's role: while any, its forms are not shown.
        "not_held": grantor.lacks(permissions.get(account.role, ())),
        "values": {"full_name": account.full_name, "email": account.email, "role": account.role,
                   "language": account.language},
        "errors": {}, "password_errors": {}, "notice": notice(request, NOTICES), **values,
    }
    return render(request, EDIT, context, status_code=status)


@guard("admin.users")
async def edit_page(request: Request) -> Response:
    account, _roles = await _account_or_404(request)
    return await _edit_page(request, account)


@guard("admin.users")
async def save(request: Request) -> Response:
    account, roles = await _account_or_404(request)
    form = await request.form()
    checked = validate(form, (FULL_NAME, EMAIL_FIELD, _role_field(roles), LANGUAGE))
    if checked.ok:
        try:
            await update_user(
                services(request).db, account.id, actor=Actor.of(request),
                full_name=checked.values["full_name"], role=checked.values["role"],
                active=checkbox(form, "active"), language=checked.values["language"],
                email=checked.values["email"],
            )
        except NotDelegable as exc:
            return await _edit_page(request, account, 403, values=_shown(checked),
                                    errors={"form": _sentence(exc)})
        except AccountError as exc:
            checked.errors[exc.field or "form"] = _sentence(exc)
        else:
            return done(f"/admin/users/{account.id}", "saved")
    return await _edit_page(request, account, 422, values=_shown(checked), errors=checked.errors)


@guard("admin.users")
async def reset_password(request: Request) -> Response:
    account, _roles = await _account_or_404(request)
    checked = validate(await request.form(), (_password_field("password", lazy("Temporary password")),))
    if checked.ok:
        try:
            await set_password(services(request).db, account.id, checked.values["password"],
                               actor=Actor.of(request), must_change=True)
        except NotDelegable as exc:
            return await _edit_page(request, account, 403, errors={"form": _sentence(exc)})
        return done(f"/admin/users/{account.id}", "password")
    return await _edit_page(request, account, 422, password_errors=checked.errors)


@guard("admin.users")
async def confirm_disable(request: Request) -> Response:
    """The question before disabling: the button on the account page leads
    here, and only this page's button disables."""
    account, _roles = await _account_or_404(request)
    async with services(request).db.transaction() as cur:
        grantor, permissions = await _delegable(cur, request)
    return render(request, CONFIRM, {"account": account,
                                     "not_held": grantor.lacks(permissions.get(account.role, ()))})


@guard("admin.users")
async def disable(request: Request) -> Response:
    account, _roles = await _account_or_404(request)
    try:
        await update_user(services(request).db, account.id, actor=Actor.of(request), active=False)
    except NotDelegable as exc:
        return await _edit_page(request, account, 403, errors={"form": _sentence(exc)})
    except AccountError as exc:
        return await _edit_page(request, account, 422, errors={"form": _sentence(exc)})
    return done(f"/admin/users/{account.id}", "disabled")


@guard("admin.users")
async def badges_page(request: Request) -> Response:
    return render(request, BADGES, {"codes": "", "errors": [], "cards": []})


def _badge_errors(request: Request, lines: list[str]) -> list[str]:
    """One message per line that is neither an operator nor a checker code."""
    patterns = services(request).settings.codes
    operator, checker = OPERATOR.pattern(patterns), CHECKER.pattern(patterns)
    if len(lines) > MAX_BADGES:
        return [lazy("At most %(max)s codes a sheet.", max=MAX_BADGES)]
    return [lazy("Line %(line)s, “%(code)s”, is neither an operator code (like %(operator)s) nor a checker"
                 " code (like %(checker)s).", line=number, code=code[:40], operator=OPERATOR.example,
                 checker=CHECKER.example)
            for number, code in enumerate(lines, 1)
            if code and not (code.isascii() and (operator.fullmatch(code) or checker.fullmatch(code)))]


@guard("admin.users")
async def badges(request: Request) -> Response:
    """The badge sheet of the codes entered, one a line; with any line wrong,
    the form again with each wrong line named and no badge."""
    typed = (await request.form()).get("codes", "")
    typed = typed if isinstance(typed, str) else ""
    lines = [trim_upper(line) for line in typed.splitlines()]
    errors = _badge_errors(request, lines)
    if not any(lines):
        errors = [lazy("Enter at least one operator or checker code.")]
    if errors:
        return render(request, BADGES, {"codes": typed, "errors": errors, "cards": []}, status_code=422)
    cards = [(code128_svg(code), code, "") for code in lines if code]
    return render(request, BADGES, {"codes": typed, "errors": [], "cards": cards})


def _shown(checked: Validated) -> dict[str, str]:
    """What to show again: everything typed but a password."""
    return {name: value for name, value in checked.values.items() if name != "password"}


def _sentence(exc: AccountError | NotDelegable) -> str:
    """An account message: a whole sentence, translated where it is shown."""
    return exc.args[0]


routes = [
    Route("/admin/users", users_page, methods=["GET"]),
    Route("/admin/users", create, methods=["POST"]),
    Route("/admin/users/badges", badges_page, methods=["GET"]),
    Route("/admin/users/badges", badges, methods=["POST"]),
    Route("/admin/users/{user_id:int}", edit_page, methods=["GET"]),
    Route("/admin/users/{user_id:int}", save, methods=["POST"]),
    Route("/admin/users/{user_id:int}/password", reset_password, methods=["POST"]),
    Route("/admin/users/{user_id:int}/disable", confirm_disable, methods=["GET"]),
    Route("/admin/users/{user_id:int}/disable", disable, methods=["POST"]),
]
