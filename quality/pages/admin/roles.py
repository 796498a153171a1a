"""/admin/roles: create, rename and delete roles, and the permission matrix
(a row per role, a checkbox per capability, grouped by area), saved whole in
one transaction by its one Save button; static/admin.js marks the rows with
unsaved ticks and warns before leaving them.

No change may leave the plant without an active administrator
(quality/accounts.py `lock_admins` / `ensure_an_admin_remains`), and a role
still given to someone cannot be deleted. Nobody ticks or unticks a permission
they lack, or renames or deletes a role holding one (quality/accounts.py
`changing`, `Grantor`): the page shows those disabled, and a submission that
tries is a 403 that changes nothing."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quality import audit
from quality import roles as role_table
from quality.accounts import (
    AccountError,
    Attempt,
    Grantor,
    NotDelegable,
    changing,
    ensure_an_admin_remains,
)
from quality.audit import Actor
from quality.db import Cursor
from quality.fields import TEXT, Field, validate
from quality.http.render import render
from quality.http.services import services
from quality.i18n import lazy
from quality.pages.admin import done, notice
from quality.permissions import PERMISSIONS, by_area, guard

TEMPLATE = "admin/roles.html"
ROLE_NAME = Field("name", lazy("Role name"), re.compile(r"[a-z][a-z0-9_-]{1,31}"),
                  lazy("line-lead (lower-case letters, digits, _ -)"), 32,
                  lambda value: value.strip().lower(),
                  missing=lazy("Enter a role name."))
DESCRIPTION = Field("description", lazy("Description"), TEXT, lazy("Scan pages"), 200, str.strip,
                    required=False)
NOTICES = {
    "created": lazy("Role created. Tick its permissions in the matrix."),
    "renamed": lazy("Role renamed."),
    "deleted": lazy("Role deleted."),
    "matrix": lazy("Permissions saved."),
}


class Refused(ValueError):
    """A submission that cannot be applied; nothing was written."""


def _changeable(grantor: Grantor) -> frozenset[str]:
    """The permissions this actor may tick or untick in the matrix."""
    return frozenset(name for name in PERMISSIONS if grantor.may_give([name]))


async def _page(request: Request, status: int = 200, **values: Any) -> Response:
    async with services(request).db.transaction() as cur:
        roles = await role_table.all_roles(cur)
        grantor = await Grantor.read(cur, Actor.of(request))
    context = {
        "roles": list(roles.values()), "areas": by_area(), "changeable": _changeable(grantor),
        "notice": notice(request, NOTICES),
        "values": {}, "errors": {}, "rename": {}, "matrix_error": None, **values,
    }
    return render(request, TEMPLATE, context, status_code=status)


@guard("admin.roles")
async def roles_page(request: Request) -> Response:
    return await _page(request)


def _wanted(form: FormData, role_ids: Sequence[int]) -> dict[int, frozenset[str]]:
    """The ticked permissions per role, refusing names that are not capabilities."""
    wanted = {}
    for role_id in role_ids:
        names = [value for value in form.getlist(f"p{role_id}") if isinstance(value, str)]
        unknown = sorted(set(names) - PERMISSIONS.keys())
        if unknown:
            raise Refused(lazy("There is no permission named %(name)s; reload the page.",
                               name=repr(unknown[0])))
        wanted[role_id] = frozenset(names)
    return wanted


async def _apply(cur: Cursor, grantor: Grantor, wanted: dict[int, frozenset[str]]) -> None:
    """Set each role's permissions; audit each role that changed. Run inside `changing`."""
    roles = await role_table.all_roles(cur, lock=True)
    missing = set(wanted) - roles.keys()
    if missing:
        raise Refused(lazy("A role on this page no longer exists; reload the page."))
    for role_id, permissions in wanted.items():
        role = roles[role_id]
        added, removed = sorted(permissions - role.permissions), sorted(role.permissions - permissions)
        if not (added or removed):
            continue
        grantor.check_matrix(role.name, role.permissions, permissions)
        await role_table.change_permissions(cur, role_id, added, removed)
        await audit.record(cur, grantor.actor, "role.permissions", role.name,
                           {"permissions": sorted(role.permissions)}, {"permissions": sorted(permissions)})
    try:
        await ensure_an_admin_remains(cur)
    except AccountError as exc:
        raise Refused(lazy("Not saved: this would leave no active administrator (someone whose role may"
                           " manage users and roles).")) from exc


def _role_ids(form: FormData) -> list[int]:
    ids = form.getlist("role")
    if not ids or not all(isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10
                          for value in ids):
        raise Refused(lazy("This form is not the permission matrix; reload the page."))
    return [int(value) for value in ids]


@guard("admin.roles")
async def save_matrix(request: Request) -> Response:
    form = await request.form()
    try:
        wanted = _wanted(form, _role_ids(form))
        await changing(services(request).db, Actor.of(request), _apply, wanted)
    except Refused as exc:
        return await _page(request, 422, matrix_error=exc.args[0])
    except NotDelegable as exc:
        return await _page(request, 403, matrix_error=exc.args[0])
    return done("/admin/roles", "matrix")


async def _role_or_404(cur: Cursor, role_id: int) -> tuple[str, str]:
    row = await role_table.locked(cur, role_id)
    if row is None:
        raise HTTPException(404, lazy("There is no such role."))
    return row


@guard("admin.roles")
async def create(request: Request) -> Response:
    checked = validate(await request.form(), (ROLE_NAME, DESCRIPTION))
    if checked.ok:
        name, description = checked.values["name"], checked.values["description"]
        if not await changing(services(request).db, Actor.of(request), _create, name, description):
            checked.errors["name"] = lazy("A role with this name exists already.")
    if checked.ok:
        return done("/admin/roles", "created")
    return await _page(request, 422, values=checked.values, errors=checked.errors)


async def _create(cur: Cursor, grantor: Grantor, name: str, description: str) -> bool:
    """Create a role, with no permissions (run inside `changing`); False when
    another role has the name."""
    if await role_table.name_taken(cur, name):
        return False
    await role_table.create(cur, name, description)
    await audit.record(cur, grantor.actor, "role.create", name, None,
                       {"name": name, "description": description})
    return True


@guard("admin.roles")
async def rename(request: Request) -> Response:
    role_id = request.path_params["role_id"]
    checked = validate(await request.form(), (ROLE_NAME,))
    if checked.ok:
        name = checked.values["name"]
        try:
            if not await changing(services(request).db, Actor.of(request), _rename, role_id, name):
                checked.errors["name"] = lazy("A role with this name exists already.")
        except NotDelegable as exc:
            return await _page(request, 403, rename={role_id: (name, exc.args[0])})
    else:
        async with services(request).db.transaction() as cur:
            await _role_or_404(cur, role_id)
    if checked.ok:
        return done("/admin/roles", "renamed")
    return await _page(request, 422, rename={role_id: (checked.values["name"], checked.errors["name"])})


async def _rename(cur: Cursor, grantor: Grantor, role_id: int, name: str) -> bool:
    """Rename a role (run inside `changing`); False when another role has the name."""
    old, _description = await _role_or_404(cur, role_id)
    if name == old:
        return True
    grantor.check_role_kept(old, (await role_table.permissions_by_name(cur))[old],
                            Attempt("role.rename", old, {"name": old}, {"name": name}))
    if await role_table.name_taken(cur, name):
        return False
    await role_table.rename(cur, role_id, name)
    await audit.record(cur, grantor.actor, "role.rename", old, {"name": old}, {"name": name})
    return True


async def _delete(cur: Cursor, grantor: Grantor, role_id: int) -> tuple[str, int]:
    """Delete a role unless it is given (run inside `changing`): its name and
    how many users have it (0: deleted)."""
    name, description = await _role_or_404(cur, role_id)
    permissions = sorted((await role_table.permissions_by_name(cur))[name])
    was = {"name": name, "description": description, "permissions": permissions}
    grantor.check_role_kept(name, permissions, Attempt("role.delete", name, was, None))
    users = await role_table.delete_unless_given(cur, role_id)
    if not users:
        await audit.record(cur, grantor.actor, "role.delete", name, was, None)
    return name, users


@guard("admin.roles")
async def delete(request: Request) -> Response:
    role_id = request.path_params["role_id"]
    try:
        name, users = await changing(services(request).db, Actor.of(request), _delete, role_id)
    except NotDelegable as exc:
        return await _page(request, 403, rename={role_id: (exc.attempt.target, exc.args[0])})
    if users:
        message = lazy("This role is given to at least one user; move them to another role first.")
        return await _page(request, 422, rename={role_id: (name, message)})
    return done("/admin/roles", "deleted")


routes = [
    Route("/admin/roles", roles_page, methods=["GET"]),
    Route("/admin/roles", create, methods=["POST"]),
    Route("/admin/roles/matrix", save_matrix, methods=["POST"]),
    Route("/admin/roles/{role_id:int}/rename", rename, methods=["POST"]),
    Route("/admin/roles/{role_id:int}/delete", delete, methods=["POST"]),
]
