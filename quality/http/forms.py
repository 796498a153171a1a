"""The one way to validate a submitted form or a page's query parameters:
declared fields, normalised values, one message per bad field. What the user
typed is always handed back, so a page can show it again beside its error.
Parameters not declared are ignored."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def trim_upper(value: str) -> str:
    return value.strip().upper()


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    pattern: re.Pattern[str]
    example: str
    max_length: int = 64
    normalise: Callable[[str], str] = trim_upper
    required: bool = True  # an optional field left empty is simply absent


@dataclass
class Validated:
    values: dict[str, str]
    errors: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.errors


# Longer than any code, short enough to show back in the form.
_KEEP = 200


def validate(form: Mapping[str, Any], fields: Sequence[Field]) -> Validated:
    """Check `form` (posted form data or query parameters) against `fields`."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for field in fields:
        raw = form.get(field.name)
        if raw is None:
            raw = ""
        if not isinstance(raw, str):
            values[field.name] = ""
            errors[field.name] = f"{field.label} must be text."
            continue
        value = field.normalise(raw)
        values[field.name] = value[:_KEEP]
        if not value:
            if field.required:
                errors[field.name] = f"Scan or type the {field.label.lower()}."
        elif len(value) > field.max_length:
            errors[field.name] = f"{field.label} is too long (at most {field.max_length} characters)."
        elif not field.pattern.fullmatch(value):
            errors[field.name] = f"{field.label} must look like {field.example}."
    return Validated(values, errors)
