"""Saving the list's filter by name, and deleting a saved one: POSTs from the
list page (CSRF-checked like every POST), each answered with the list."""

from __future__ import annotations

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from quality.fields import validate
from quality.http.errors import error_page
from quality.http.services import services
from quality.i18n import lazy
from quality.permissions import guard
from quality.saved_filters import MAX_QUERY, NAME, delete, save
from quality.scan_filter import read_filter


@guard("scans.view")
async def save_filter(request: Request) -> Response:
    form = await request.form()
    checked = validate(form, [NAME])
    if not checked.ok:
        return error_page(request, 400, checked.errors["name"])
    query = form.get("query")
    listing = read_filter(QueryParams(query if isinstance(query, str) else "\0"),
                          services(request).settings)
    if not isinstance(query, str) or not listing.ok:
        return error_page(request, 400, lazy("The filter is not valid."))
    # Stored as the list writes it: the address the saved link opens.
    values = listing.checked.values
    stored = listing.filter.query(group=values.get("group"), sort=values.get("sort"))
    if len(stored) > MAX_QUERY:
        return error_page(request, 400, lazy("This filter is too long to save."))
    async with services(request).db.transaction() as cur:
        refused = await save(cur, request.state.user.id, checked.values["name"], stored)
    if refused:
        return error_page(request, 400, refused)
    return RedirectResponse("/scans" + (f"?{stored}" if stored else ""), 303)


@guard("scans.view")
async def delete_filter(request: Request) -> Response:
    form = await request.form()
    saved_id = form.get("id")
    if not isinstance(saved_id, str) or not saved_id.isdecimal() or len(saved_id) > 10:
        return error_page(request, 400, lazy("Choose a saved filter to delete."))
    async with services(request).db.transaction() as cur:
        deleted = await delete(cur, request.state.user.id, int(saved_id))
    if not deleted:
        return error_page(request, 404, lazy("You have no such saved filter."))
    return RedirectResponse("/scans", 303)


routes = [
    Route("/scans/saved", save_filter, methods=["POST"], name="scan_list_save"),
    Route("/scans/saved/delete", delete_filter, methods=["POST"], name="scan_list_delete_saved"),
]
