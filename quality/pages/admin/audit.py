"""/admin/audit: the audit log, read-only, newest first, filtered by who,
what (chosen from a list) and when, a page at a time (keyset: each page
starts below the last id shown, so paging stays fast however long the log
grows). Each entry reads as sentences in the reader's language, built from
the JSON values every row stores (older rows too)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quality.audit import Entry, Filters, entries
from quality.clock import FIRST_DAY, LAST_DAY, in_calendar, to_utc
from quality.fields import PAGE_LINK, TEXT, Field, page_link, trim, validate
from quality.http.render import render
from quality.http.services import services
from quality.i18n import LANGUAGES, LazyList, LazyText, lazy
from quality.permissions import PERMISSIONS, guard

TEMPLATE = "admin/audit.html"
# Every action the app records, for the filter's list (a choice also finds its refusals).
ACTIONS = {
    "user.create": lazy("User created"),
    "user.update": lazy("User changed"),
    "user.password.reset": lazy("Password reset by an administrator"),
    "user.password.change": lazy("Own password changed"),
    "role.create": lazy("Role created"),
    "role.rename": lazy("Role renamed"),
    "role.delete": lazy("Role deleted"),
    "role.permissions": lazy("Role permissions changed"),
    "defect.create": lazy("Defect code added"),
    "defect.update": lazy("Defect code changed"),
    "sign-in.ok": lazy("Signed in"),
    "sign-in.failed": lazy("Sign-in failed"),
    "sign-in.locked": lazy("Sign-in held back after failed attempts"),
    "alert_rule.create": lazy("Alert rule added"),
    "alert_rule.remove": lazy("Alert rule removed"),
    "alert.acknowledge": lazy("Alert acknowledged"),
    "scans.import": lazy("Scans imported"),
}
PAGE = 50
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
FIELDS = (
    Field("actor", lazy("Who"), TEXT, "ana.pop", 64, trim, required=False),
    Field("action", lazy("What"), TEXT, "user.update", 64, trim, required=False, choices=ACTIONS),
    Field("since", lazy("From"), DAY, "2026-01-31", 10, trim, required=False),
    Field("until", lazy("To"), DAY, "2026-01-31", 10, trim, required=False),
    PAGE_LINK,
)


@guard("admin.audit")
async def audit_page(request: Request) -> Response:
    checked = validate(request.query_params, FIELDS)
    days = {key: _day(checked.values[key]) for key in ("since", "until")}
    for key, day in days.items():
        if key in checked.errors or not checked.values[key]:
            continue
        if day is None:
            checked.errors[key] = lazy("Not a date in the calendar.")
        elif not in_calendar(day):
            checked.errors[key] = lazy("Choose a day between %(first)s and %(last)s.",
                                       first=FIRST_DAY, last=LAST_DAY)
    if days["since"] and days["until"] and days["since"] > days["until"] and checked.ok:
        checked.errors["until"] = lazy("The last day is before the first: choose a range that runs forward.")
    before_id = page_link(checked)
    found = []
    if checked.ok:
        zone = services(request).settings.timezone
        filters = Filters(
            actor=checked.values["actor"], action=checked.values["action"],
            since=_utc(days["since"], zone) if days["since"] else None,
            until=_utc(days["until"] + timedelta(days=1), zone) if days["until"] else None,
        )
        async with services(request).db.transaction() as cur:
            found = await entries(cur, filters, before_id, PAGE + 1)
    context = {
        "entries": [(entry, sentences(entry)) for entry in found[:PAGE]], "actions": ACTIONS,
        "values": checked.values, "errors": checked.errors,
        "older": found[PAGE - 1].id if len(found) > PAGE else None,
        "query": {key: value for key, value in checked.values.items() if value},
    }
    return render(request, TEMPLATE, context, status_code=200 if checked.ok else 422)


def sentences(entry: Entry) -> list[LazyText]:
    """What an entry says, one sentence per change, e.g. "maria changed ion's
    role from operator to supervisor."; a refusal says so first."""
    names = {"actor": entry.actor, "target": entry.target}
    before, after = entry.before or {}, entry.after or {}
    said = []
    action = entry.action.removesuffix(".refused")
    if action != entry.action:
        said.append(lazy("Refused, nothing changed: %(actor)s does not hold %(missing)s.",
                         missing=_permissions(str(after.get("not_held", "")).split(", ")), **names))
        after = {key: value for key, value in after.items() if key != "not_held"}
    if action == "role.permissions":
        held, wanted = set(before.get("permissions") or ()), set(after.get("permissions") or ())
        if wanted - held:
            said.append(lazy("%(actor)s gave the role %(target)s: %(permissions)s.",
                             permissions=_permissions(sorted(wanted - held)), **names))
        if held - wanted:
            said.append(lazy("%(actor)s took from the role %(target)s: %(permissions)s.",
                             permissions=_permissions(sorted(held - wanted)), **names))
    elif action in _WHOLE:
        values = {"role": "—", "name": "—", **{key: _word(value) for key, value in after.items()}}
        said.append(_told(_WHOLE[action], **values, **names))
    else:
        said += [_change(action, key, before.get(key), after.get(key), names)
                 for key in sorted(before.keys() | after.keys()) if before.get(key) != after.get(key)]
    return said


# Actions told in one sentence (%(role)s, %(name)s: the value after). The
# sentences are marked for the catalogue here and filled by `_told`.
_WHOLE = {
    "user.create": lazy("%(actor)s created the user %(target)s with the role %(role)s."),
    "user.password.reset": lazy("%(actor)s reset the password of %(target)s."),
    "user.password.change": lazy("%(actor)s changed their own password."),
    "role.create": lazy("%(actor)s created the role %(target)s."),
    "role.delete": lazy("%(actor)s deleted the role %(target)s."),
    "defect.create": lazy("%(actor)s added the defect code %(target)s, %(name)s."),
    "sign-in.ok": lazy("%(actor)s signed in."),
    "sign-in.failed": lazy("Someone failed to sign in as %(target)s: wrong user name or password."),
    "sign-in.locked": lazy("A sign-in as %(target)s was held back after too many failed attempts."),
    "alert_rule.create": lazy("%(actor)s added the alert rule %(target)s."),
    "alert_rule.remove": lazy("%(actor)s removed the alert rule %(target)s."),
    "alert.acknowledge": lazy("%(actor)s acknowledged the alert %(target)s: %(comment)s"),
    "scans.import": lazy("%(actor)s imported scans from the file %(target)s."),
}
# A field's change told as a sentence, by action and field.
_CHANGES = {
    ("user.update", "role"): lazy("%(actor)s changed the role of %(target)s from %(before)s to %(after)s."),
    ("user.update", "full_name"):
        lazy("%(actor)s changed the full name of %(target)s from %(before)s to %(after)s."),
    ("user.update", "language"):
        lazy("%(actor)s changed the language of %(target)s from %(before)s to %(after)s."),
    ("user.update", "email"):
        lazy("%(actor)s changed the e-mail address of %(target)s from %(before)s to %(after)s."),
    ("role.rename", "name"): lazy("%(actor)s renamed the role %(before)s to %(after)s."),
    ("defect.update", "name"):
        lazy("%(actor)s renamed the defect code %(target)s from %(before)s to %(after)s."),
    ("defect.update", "name_ro"):
        lazy("%(actor)s changed the Romanian name of the defect code %(target)s"
             " from %(before)s to %(after)s."),
    ("defect.update", "category"):
        lazy("%(actor)s changed the category of the defect code %(target)s from %(before)s to %(after)s."),
}
_SWITCHES = {
    ("user.update", "active", True): lazy("%(actor)s enabled the user %(target)s."),
    ("user.update", "active", False): lazy("%(actor)s disabled the user %(target)s."),
    ("defect.update", "active", True): lazy("%(actor)s put the defect code %(target)s back in use."),
    ("defect.update", "active", False): lazy("%(actor)s took the defect code %(target)s out of use."),
}


def _change(action: str, field: str, before: Any, after: Any, names: dict[str, str]) -> LazyText:
    if (action, field, after) in _SWITCHES:
        return _told(_SWITCHES[action, field, after], **names)
    if field == "language":
        before, after = _language(before), _language(after)
    values = {"before": _word(before), "after": _word(after), **names}
    if (action, field) in _CHANGES:
        return _told(_CHANGES[action, field], **values)
    return lazy("%(actor)s, %(action)s %(target)s: %(field)s from %(before)s to %(after)s.",
                action=action, field=field, **values)


def _told(sentence: LazyText, **values: Any) -> LazyText:
    return lazy(sentence.msgid, **values)


def _word(value: Any) -> Any:
    """A stored value as a reader says it: yes/no, a dash for nothing, lists joined."""
    if isinstance(value, bool):
        return lazy("yes") if value else lazy("no")
    if value is None or value == "":
        return "—"
    if isinstance(value, list):
        return LazyList([str(item) for item in value])
    return value


def _language(code: Any) -> Any:
    return LANGUAGES.get(code, code) if code else lazy("the plant's default")


def _permissions(names: list[str]) -> LazyList:
    """Permissions by their descriptions (a name the app no longer has, as it is)."""
    return LazyList([PERMISSIONS.get(name, name) for name in names if name])


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _utc(day: date, zone: tzinfo) -> datetime:
    """Midnight of a plant day, as the naive UTC the log stores."""
    return to_utc(datetime.combine(day, time(), tzinfo=zone))


routes = [Route("/admin/audit", audit_page, methods=["GET"])]
