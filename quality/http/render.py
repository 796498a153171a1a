"""The one way a handler answers with HTML: `render(request, template, ...)`,
through the process's renderer (quality/http/templates.py decides page or
fragment)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from quality.http.services import services


def render(request: Request, template: str, context: Mapping[str, Any] | None = None,
           **options: Any) -> HTMLResponse:
    return services(request).renderer.render(request, template, context, **options)
