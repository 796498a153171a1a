"""The language of an answer: the signed-in user's choice, else before sign-in
the browser's, else the plant's (quality/i18n.py has the catalogues)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from quality.i18n import LANGUAGES, accepted_language


def request_language(connection: HTTPConnection, default: str) -> str:
    """The language of the answer: the signed-in user's choice, else before
    sign-in the browser's, else the plant's (`QUALITY_LANGUAGE`)."""
    user = getattr(connection.state, "user", None)
    if user is not None:
        return user.language if user.language in LANGUAGES else default
    return accepted_language(connection.headers.get("accept-language", ""), default)
