"""The language of an answer: the signed-in user's choice, else before sign-in
the browser's, else the plant's (quality/i18n.py has the catalogues).

The session cookie remembers the signed-in user's choice (`l`, written when it
changes): an error page answered while the database is away, which cannot say
who asks, still speaks their language."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from quality.i18n import LANGUAGES, accepted_language


def request_language(connection: HTTPConnection, default: str) -> str:
    """The language of the answer: the signed-in user's choice, else before
    sign-in the browser's, else the plant's (`QUALITY_LANGUAGE`)."""
    user = getattr(connection.state, "user", None)
    if user is not None:
        return user.language if user.language in LANGUAGES else default
    remembered = connection.session.get("l") if "t" in connection.session else None
    if isinstance(remembered, str):
        return remembered if remembered in LANGUAGES else default
    return accepted_language(connection.headers.get("accept-language", ""), default)


def remember_language(connection: HTTPConnection, language: str) -> None:
    """Keep the signed-in user's choice in their session cookie (see above)."""
    if connection.session.get("l") != language:
        connection.session["l"] = language
