"""The codes a scan is made of (SPEC §5), defined once: each code's label,
example and length, its pattern (a setting, `CodePatterns`), and which defect
code approves. The scan form, the scan list's filter and the defect catalogue
build their fields from these; the summaries, exports and demo data read
`APPROVED` here (migration 0001 seeds it in `defect_codes`, and a test holds the
database to it)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from quality.fields import Field
from quality.i18n import lazy
from quality.settings import CodePatterns

APPROVED = "000"  # the defect code that means "no defect": the piece is approved


@dataclass(frozen=True)
class Code:
    """One kind of code: `kind` names its pattern in `CodePatterns`, `name` the
    scan form's field and the column of `scans` that holds it."""

    kind: str
    name: str
    label: str  # a `lazy()` text
    example: str
    max_length: int

    def pattern(self, codes: CodePatterns) -> re.Pattern[str]:
        return _compiled(getattr(codes, self.kind))

    def field(self, codes: CodePatterns, name: str | None = None, **changes: Any) -> Field:
        """A form field for this code (named as the scan form names it, unless
        `name` says otherwise); `changes` are the field's other settings (label, example,
        whether it is required, ...)."""
        values: dict[str, Any] = {"label": self.label, "example": self.example,
                                  "max_length": self.max_length, **changes}
        return Field(name or self.name, pattern=self.pattern(codes), **values)


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    # ASCII: Python's \d and \w also take other scripts' digits and letters
    # ("١٠٤"), which the database's collation then compares equal to "104".
    return re.compile(pattern, re.ASCII)


OPERATOR = Code("operator", "operator_code", lazy("Operator code"), "OP07", 32)
PIECE = Code("piece", "piece_code", lazy("Piece code"), "CP00012345-0001", 64)
# An order code is a piece code's first `order_length` characters.
ORDER = Code("order", "order_code", lazy("Order"), "CP00012345", 32)
CHECKER = Code("checker", "checker_code", lazy("Checker code"), "OC12", 32)
DEFECT = Code("defect", "defect_code", lazy("Defect code"), "104", 3)


@functools.cache
def scan_fields(codes: CodePatterns) -> tuple[Field, ...]:
    """A scan's fields as the scan form and `quality import` check them, built
    once for these patterns (the settings never change in a process)."""
    return (
        OPERATOR.field(codes),
        PIECE.field(codes),
        CHECKER.field(codes, "checker1_code", label=lazy("Checker code 1")),
        CHECKER.field(codes, "checker2_code", label=lazy("Checker code 2")),
        DEFECT.field(codes, example=lazy("000 or 104")),
    )
