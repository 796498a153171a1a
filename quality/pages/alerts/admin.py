"""/admin/alerts: the alert rules in force, a form for a new one, and removing
one. Checked and stored by quality/alerts/rules.py, each change audited in its
transaction; a bad form is refused beside its field and nothing is written."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from quality import alert_changes as changes
from quality.alerts import rules
from quality.alerts.text import rule_text, scope
from quality.audit import Actor
from quality.db import Cursor
from quality.fields import checkbox
from quality.http.render import render
from quality.http.services import services
from quality.i18n import LANGUAGES, lazy
from quality.permissions import guard

TEMPLATE = "alerts/rules.html"
NOTICES = {"created": lazy("Alert rule added."), "removed": lazy("Alert rule removed.")}


async def _page(request: Request, status: int = 200, **values: Any) -> Response:
    async with services(request).db.transaction() as cur:
        found = await rules.in_force(cur)
    described = [(rule, scope(rule.station, rule.order_code),
                  rule_text(rule.kind, rule.period, rule.pieces, rule.threshold, rule.defect_code))
                 for rule in found]
    context = {"rules": described, "kinds": rules.KINDS, "periods": rules.PERIODS, "languages": LANGUAGES,
               "values": {"kind": rules.RATE, "mail_language": "en"}, "errors": {},
               "notice": NOTICES.get(request.query_params.get("done", "")), **values}
    return render(request, TEMPLATE, context, status_code=status)


@guard("admin.alerts")
async def rules_page(request: Request) -> Response:
    return await _page(request)


@guard("admin.alerts")
async def create(request: Request) -> Response:
    form = await request.form()
    draft = rules.check(form, services(request).settings.codes, checkbox(form, "at_station"))
    if draft.ok:
        await services(request).db.run(_add, Actor.of(request), draft)
    if draft.ok:
        await services(request).alerts.poll()  # in force here at once, elsewhere within a second
        return RedirectResponse("/admin/alerts?done=created", 303)
    # What was typed, shown again beside its errors.
    shown = {**{key: value for key, value in form.items() if isinstance(value, str)},
             "at_station": draft.values["at_station"]}
    return await _page(request, 422, values=shown, errors=draft.errors)


async def _add(cur: Cursor, actor: Actor, draft: rules.Draft) -> int | None:
    draft.errors.pop("defect", None)  # run again after a transient error: checked afresh
    return await changes.add(cur, actor, draft)


@guard("admin.alerts")
async def remove(request: Request) -> Response:
    if not await services(request).db.run(changes.remove, Actor.of(request), request.path_params["rule_id"]):
        raise HTTPException(404, lazy("There is no such alert rule."))
    await services(request).alerts.poll()
    return RedirectResponse("/admin/alerts?done=removed", 303)


routes = [
    Route("/admin/alerts", rules_page, methods=["GET"]),
    Route("/admin/alerts", create, methods=["POST"]),
    Route("/admin/alerts/{rule_id:int}/remove", remove, methods=["POST"]),
]
