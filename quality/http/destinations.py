"""Where each user works: the pages a permission opens, in the order the home
page and the admin index list them (one list, read by both pages)."""

from __future__ import annotations

from starlette.requests import Request

from quality.i18n import lazy
from quality.session_cache import User
from quality.stations import STATIONS

# Where each permission's holder works, in the order a home page lists them.
DESTINATIONS = [
    *((station.permission, station.path, station.title, station.summary)
      for station in STATIONS.values()),
    ("scans.view", "/scans", lazy("Scan lists"), lazy("Follow the lines' scans.")),
    ("reports.view", "/reports", lazy("Reports"), lazy("Approval and rejection by shift and order.")),
    ("admin.users", "/admin/users", lazy("Users"), lazy("Create and manage accounts.")),
    ("admin.roles", "/admin/roles", lazy("Roles & permissions"), lazy("Who may do what.")),
    ("admin.defects", "/admin/defects", lazy("Defect codes"), lazy("The defect catalogue.")),
    ("admin.audit", "/admin/audit", lazy("Audit log"), lazy("Every change, who and when.")),
    ("alerts.view", "/alerts", lazy("Alerts"), lazy("When a line goes wrong.")),
    ("admin.alerts", "/admin/alerts", lazy("Alert rules"), lazy("What raises an alert.")),
]


def destinations_for(request: Request, user: User) -> list[tuple[str, str, str]]:
    """The pages this user may open, among those this version serves."""
    served = {getattr(route, "path", None) for route in request.app.routes}
    return [
        (url, title, text)
        for permission, url, title, text in DESTINATIONS
        if user.can(permission) and url in served
    ]
