"""The one way to validate a submitted form or a page's query parameters:
declared fields, normalised values, one message per bad field. What the user
typed is always handed back, so a page can show it again beside its error.
Parameters not declared are ignored. Plain mappings in, plain values out: the
domain's own fields (quality/codes.py, quality/scan_filter.py) are declared
with it as well as the pages'."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from quality.i18n import lazy


def trim_upper(value: str) -> str:
    return value.strip().upper()


def trim(value: str) -> str:
    return value.strip()


def keep(value: str) -> str:
    """Passwords: every character counts, spaces included."""
    return value


# Free text a person types (names, descriptions): anything but control characters.
TEXT = re.compile(r"[^\x00-\x1f\x7f]*")
# An e-mail address, as far as a form can tell: something@domain.tld, no spaces
# or commas (the alert rules' recipients are a comma-separated list of them).
EMAIL = re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+")
# The longest address SMTP carries (RFC 5321's path, less its angle brackets): users.email's size.
MAX_EMAIL = 254


@dataclass(frozen=True)
class Field:
    name: str
    label: str  # a `lazy()` text, as are its messages
    pattern: re.Pattern[str]
    example: str
    max_length: int = 64
    normalise: Callable[[str], str] = trim_upper
    required: bool = True
    min_length: int = 0
    choices: Collection[str] | None = None  # the value must be one of these
    missing: str = ""  # the message for an empty required field, if not the scan pages' one


@dataclass
class Validated:
    values: dict[str, str]
    errors: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.errors


# Longer than any code, short enough to show back in the form (a field allowed
# more keeps its value whole: an address or a comment is never cut short).
KEEP = 200


def validate(form: Mapping[str, Any], fields: Sequence[Field]) -> Validated:
    """A submitted form (or a query string, for filters) against its fields."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for field in fields:
        raw = form.get(field.name)
        if raw is None:
            raw = ""
        if not isinstance(raw, str):
            values[field.name] = ""
            errors[field.name] = lazy("%(label)s must be text.", label=field.label)
            continue
        value = field.normalise(raw)
        values[field.name] = value[:max(KEEP, field.max_length)]
        error = _error(field, value)
        if error:
            errors[field.name] = error
    return Validated(values, errors)


def _error(field: Field, value: str) -> str | None:
    if not value:
        if not field.required:
            return None
        return field.missing or lazy("%(label)s is missing: scan or type it.", label=field.label)
    if len(value) > field.max_length:
        return lazy("%(label)s is too long (at most %(max)s characters).",
                    label=field.label, max=field.max_length)
    if len(value) < field.min_length:
        return lazy("%(label)s is too short (at least %(min)s characters).",
                    label=field.label, min=field.min_length)
    if field.choices is not None:
        return None if value in field.choices else lazy("%(label)s: choose one from the list.",
                                                        label=field.label)
    if not field.pattern.fullmatch(value):
        return lazy("%(label)s must look like %(example)s.", label=field.label, example=field.example)
    return None


# An "Older" link's keyset: the id a page of a list starts below (BIGINT
# UNSIGNED's 20 digits at most), for every list that pages so.
PAGE_LINK = Field("before", lazy("Page"), re.compile(r"[1-9][0-9]*"), lazy("a page link"), 20, trim,
                  required=False)


def page_link(checked: Validated) -> int | None:
    """The id a page starts below, None for the first page. A link that is not
    one is said in plain words (a person never types it: it was cut or edited)."""
    if PAGE_LINK.name in checked.errors:
        checked.errors[PAGE_LINK.name] = lazy("This page link is broken; start again from the first page.")
        return None
    value = checked.values[PAGE_LINK.name]
    return int(value) if value else None


def checkbox(form: Mapping[str, Any], name: str) -> bool:
    """A ticked checkbox sends "on"; an unticked one sends nothing."""
    return form.get(name) == "on"
