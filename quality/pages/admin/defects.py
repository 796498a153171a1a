"""/admin/defects: the defect catalogue, code → name in English and in
Romanian (which may be empty: then the English one is shown) and an optional
category, active or not. An inactive code is refused at the scan stations;
scans keep the names their code had when they were saved (migrations 0004, 0016).
`000` means approved: it stays active and its name keeps saying so."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quality import audit
from quality.audit import Actor
from quality.barcodes import code128_svg
from quality.codes import APPROVED, DEFECT
from quality.db import Cursor
from quality.defects import add, catalogue, find, name_in, update
from quality.fields import TEXT, Field, Validated, checkbox, validate
from quality.http.language import request_language
from quality.http.render import render
from quality.http.services import services
from quality.i18n import lazy
from quality.pages.admin import done, notice
from quality.permissions import guard

LIST, EDIT, SHEET = "admin/defects.html", "admin/defect.html", "admin/defect_sheet.html"
NAME = Field("name", lazy("Name in English"), TEXT, lazy("Scratch"), 100, str.strip,
             missing=lazy("Enter the defect's name."))
NAME_RO = Field("name_ro", lazy("Name in Romanian"), TEXT, lazy("Zgârietură"), 100, str.strip, required=False)
CATEGORY = Field("category", lazy("Category"), TEXT, lazy("Surface"), 60, str.strip, required=False)
NOTICES = {"created": lazy("Defect code added."), "saved": lazy("Defect code saved.")}


def _code_field(request: Request) -> Field:
    return DEFECT.field(services(request).settings.codes, "code", label=lazy("Code"), normalise=str.strip,
                        missing=lazy("Enter the code."))


async def _list_page(request: Request, status: int = 200, **values: Any) -> Response:
    async with services(request).db.transaction() as cur:
        defects = await catalogue(cur)
    context = {"defects": defects, "values": {}, "errors": {}, "notice": notice(request, NOTICES),
               **values}
    return render(request, LIST, context, status_code=status)


@guard("admin.defects")
async def defects_page(request: Request) -> Response:
    return await _list_page(request)


@guard("admin.defects")
async def sheet(request: Request) -> Response:
    """Every code in use as a Code 128 barcode with its code and its name in
    the reader's language, to print on A4."""
    async with services(request).db.transaction() as cur:
        defects = [defect for defect in await catalogue(cur) if defect.active]
    language = request_language(request, services(request).settings.language)
    cards = [(code128_svg(defect.code), defect.code, name_in(language, defect.name, defect.name_ro))
             for defect in defects]
    return render(request, SHEET, {"cards": cards})


def _check_approved(checked: Validated, code: str, active: bool) -> None:
    if code != APPROVED:
        return
    if not active:
        checked.errors["active"] = lazy("Code %(code)s means approved; it cannot be deactivated.",
                                        code=APPROVED)
    if "name" not in checked.errors and "approved" not in checked.values["name"].lower():
        checked.errors["name"] = lazy("Code %(code)s means approved; its name must say “approved”.",
                                      code=APPROVED)


@guard("admin.defects")
async def create(request: Request) -> Response:
    form = await request.form()
    checked = validate(form, (_code_field(request), NAME, NAME_RO, CATEGORY))
    if checked.ok:
        _check_approved(checked, checked.values["code"], True)
    if checked.ok:
        code, name, name_ro, category = (checked.values[key]
                                         for key in ("code", "name", "name_ro", "category"))
        if not await services(request).db.run(_add_defect, Actor.of(request), code, name, name_ro, category):
            checked.errors["code"] = lazy("This code is in the catalogue already.")
    if checked.ok:
        return done("/admin/defects", "created")
    return await _list_page(request, 422, values=checked.values, errors=checked.errors)


async def _add_defect(cur: Cursor, actor: Actor, code: str, name: str, name_ro: str, category: str) -> bool:
    """Add the code with its audit entry unless the catalogue has it; whether
    it was added (safe to run again: `Database.run`)."""
    if await find(cur, code, lock=True):
        return False
    await add(cur, code, name, name_ro, category)
    await audit.record(cur, actor, "defect.create", code, None,
                       {"name": name, "name_ro": name_ro, "category": category, "active": True})
    return True


def _path_code(request: Request) -> str:
    """The code in the URL; one that cannot be a code is a 404 like a missing one."""
    code = request.path_params["code"]
    if not DEFECT.pattern(services(request).settings.codes).fullmatch(code):
        raise HTTPException(404, lazy("There is no such defect code."))
    return code


async def _defect_or_404(cur: Cursor, code: str, lock: bool = False) -> dict[str, Any]:
    found = await find(cur, code, lock)
    if found is None:
        raise HTTPException(404, lazy("There is no such defect code."))
    return {"name": found.name, "name_ro": found.name_ro, "category": found.category, "active": found.active}


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
    checked = validate(form, (NAME, NAME_RO, CATEGORY))
    active = checkbox(form, "active")
    _check_approved(checked, code, active)
    after = {"name": checked.values["name"], "name_ro": checked.values["name_ro"],
             "category": checked.values["category"], "active": active}
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
    await update(cur, code, after["name"], after["name_ro"], after["category"], after["active"])
    changed = [key for key in after if after[key] != before[key]]
    await audit.record(cur, actor, "defect.update", code,
                       {key: before[key] for key in changed}, {key: after[key] for key in changed})


routes = [
    Route("/admin/defects", defects_page, methods=["GET"]),
    Route("/admin/defects", create, methods=["POST"]),
    Route("/admin/defects/sheet", sheet, methods=["GET"]),  # before {code}, which would 404 it
    Route("/admin/defects/{code}", edit_page, methods=["GET"]),
    Route("/admin/defects/{code}", save, methods=["POST"]),
]
