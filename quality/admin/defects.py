"""/admin/defects: the defect catalogue, code → name (and an optional
category), active or not. An inactive code is refused at the scan stations;
scans keep the name their code had when they were saved (migration 0004).
`000` means approved: it stays active and its name keeps saying so."""

from __future__ import annotations

import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quality import audit
from quality.admin import done, notice
from quality.audit import Actor
from quality.db import Cursor
from quality.http.forms import TEXT, Field, Validated, checkbox, validate
from quality.http.render import render
from quality.i18n import lazy
from quality.permissions import guard
from quality.scans.form import APPROVED_DEFECT
from quality.services import services

LIST, EDIT = "admin/defects.html", "admin/defect.html"
NAME = Field("name", lazy("Name"), TEXT, lazy("Scratch"), 100, str.strip,
             missing=lazy("Enter the defect's name."))
CATEGORY = Field("category", lazy("Category"), TEXT, lazy("Surface"), 60, str.strip, required=False)
NOTICES = {"created": lazy("Defect code added."), "saved": lazy("Defect code saved.")}


def _code_field(request: Request) -> Field:
    pattern = re.compile(services(request).settings.codes.defect)
    return Field("code", lazy("Code"), pattern, "104", 3, str.strip, missing=lazy("Enter the code."))


async def _catalogue(cur: Cursor) -> list[tuple[str, str, str, bool]]:
    await cur.execute("SELECT code, name, category, active FROM defect_codes ORDER BY code")
    return [(code, name, category, bool(active)) for code, name, category, active in await cur.fetchall()]


async def _list_page(request: Request, status: int = 200, **values: Any) -> Response:
    async with services(request).db.transaction() as cur:
        defects = await _catalogue(cur)
    context = {"defects": defects, "values": {}, "errors": {}, "notice": notice(request, NOTICES),
               **values}
    return render(request, LIST, context, status_code=status)


@guard("admin.defects")
async def defects_page(request: Request) -> Response:
    return await _list_page(request)


def _check_approved(checked: Validated, code: str, active: bool) -> None:
    if code != APPROVED_DEFECT:
        return
    if not active:
        checked.errors["active"] = lazy("Code %(code)s means approved; it cannot be deactivated.",
                                        code=APPROVED_DEFECT)
    if "name" not in checked.errors and "approved" not in checked.values["name"].lower():
        checked.errors["name"] = lazy("Code %(code)s means approved; its name must say “approved”.",
                                      code=APPROVED_DEFECT)


@guard("admin.defects")
async def create(request: Request) -> Response:
    form = await request.form()
    checked = validate(form, (_code_field(request), NAME, CATEGORY))
    if checked.ok:
        _check_approved(checked, checked.values["code"], True)
    if checked.ok:
        code, name, category = (checked.values[key] for key in ("code", "name", "category"))
        if not await services(request).db.run(_add_defect, Actor.of(request), code, name, category):
            checked.errors["code"] = lazy("This code is in the catalogue already.")
    if checked.ok:
        return done("/admin/defects", "created")
    return await _list_page(request, 422, values=checked.values, errors=checked.errors)


async def _add_defect(cur: Cursor, actor: Actor, code: str, name: str, category: str) -> bool:
    """Add the code with its audit entry unless the catalogue has it; whether
    it was added (safe to run again: `Database.run`)."""
    await cur.execute("SELECT 1 FROM defect_codes WHERE code = %s FOR UPDATE", (code,))
    if await cur.fetchone():
        return False
    await cur.execute("INSERT INTO defect_codes (code, name, category) VALUES (%s, %s, %s)",
                      (code, name, category))
    await audit.record(cur, actor, "defect.create", code, None,
                       {"name": name, "category": category, "active": True})
    return True


def _path_code(request: Request) -> str:
    """The code in the URL; one that cannot be a code is a 404 like a missing one."""
    code = request.path_params["code"]
    if not re.fullmatch(services(request).settings.codes.defect, code):
        raise HTTPException(404, lazy("There is no such defect code."))
    return code


async def _defect_or_404(cur: Cursor, code: str, lock: bool = False) -> dict[str, Any]:
    await cur.execute("SELECT name, category, active FROM defect_codes WHERE code = %s"
                      + (" FOR UPDATE" if lock else ""), (code,))
    row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, lazy("There is no such defect code."))
    return {"name": row[0], "category": row[1], "active": bool(row[2])}


@guard("admin.defects")
async def edit_page(request: Request) -> Response:
    code = _path_code(request)
    async with services(request).db.transaction() as cur:
        current = await _defect_or_404(cur, code)
    return render(request, EDIT, {"code": code, "values": current, "errors": {},
                                  "notice": notice(request, NOTICES)})


@guard("admin.defects")
async def save(request: Request) -> Response:
    code = _path_code(request)
    form = await request.form()
    checked = validate(form, (NAME, CATEGORY))
    active = checkbox(form, "active")
    _check_approved(checked, code, active)
    after = {"name": checked.values["name"], "category": checked.values["category"], "active": active}
    if checked.ok:
        await services(request).db.run(_update_defect, Actor.of(request), code, after)
    else:
        async with services(request).db.transaction() as cur:
            await _defect_or_404(cur, code)
    if checked.ok:
        return done(f"/admin/defects/{code}", "saved")
    return render(request, EDIT, {"code": code, "values": after, "errors": checked.errors, "notice": None},
                  status_code=422)


async def _update_defect(cur: Cursor, actor: Actor, code: str, after: dict[str, Any]) -> None:
    """Save what changed of the code, with its audit entry; 404 if it is gone
    (safe to run again: `Database.run`)."""
    before = await _defect_or_404(cur, code, lock=True)
    if after == before:
        return
    await cur.execute("UPDATE defect_codes SET name = %s, category = %s, active = %s WHERE code = %s",
                      (after["name"], after["category"], after["active"], code))
    changed = [key for key in after if after[key] != before[key]]
    await audit.record(cur, actor, "defect.update", code,
                       {key: before[key] for key in changed}, {key: after[key] for key in changed})


routes = [
    Route("/admin/defects", defects_page, methods=["GET"]),
    Route("/admin/defects", create, methods=["POST"]),
    Route("/admin/defects/{code}", edit_page, methods=["GET"]),
    Route("/admin/defects/{code}", save, methods=["POST"]),
]
