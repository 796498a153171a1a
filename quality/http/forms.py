"""The one way to validate a submitted form: declared fields, normalised values,
one message per bad field. What the user typed is always handed back, so a
page can show it again beside its error."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.datastructures import FormData

from quality.i18n import lazy


def trim_upper(value: str) -> str:
    return value.strip().upper()


@dataclass(frozen=True)
class Field:
    name: str
    label: str  # a `lazy()` text, as are its messages
    pattern: re.Pattern[str]
    example: str
    max_length: int = 64
    normalise: Callable[[str], str] = trim_upper


@dataclass
class Validated:
    values: dict[str, str]
    errors: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.errors


# Longer than any code, short enough to show back in the form.
_KEEP = 200


def validate(form: FormData, fields: Sequence[Field]) -> Validated:
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
        values[field.name] = value[:_KEEP]
        if not value:
            errors[field.name] = lazy("%(label)s is missing: scan or type it.", label=field.label)
        elif len(value) > field.max_length:
            errors[field.name] = lazy("%(label)s is too long (at most %(max)s characters).",
                                      label=field.label, max=field.max_length)
        elif not field.pattern.fullmatch(value):
            errors[field.name] = lazy("%(label)s must look like %(example)s.",
                                      label=field.label, example=field.example)
    return Validated(values, errors)
