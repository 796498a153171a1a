"""The scan list's CSV columns, defined once: the export writes them
(quality/pages/scan_list/export.py) and `quality import` reads them back
(quality/scan_import.py), in any language the app speaks.

CSV is opened by spreadsheet programs, which run a cell that starts like a
formula: every text cell that could is written with OWASP's leading `'`
(`as_text`), which the import takes off again (`from_text`)."""

from __future__ import annotations

from quality.i18n import lazy

COLUMNS = (lazy("Time"), lazy("Station"), lazy("Operator"), lazy("Piece"), lazy("Order"),
           lazy("Checker 1"), lazy("Checker 2"), lazy("Defect code"), lazy("Defect"), lazy("Verdict"),
           lazy("Re-scan"))
# What a spreadsheet takes as the start of a formula (OWASP, CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def as_text(value: str) -> str:
    """A value a spreadsheet would run as a formula, with the leading `'` that
    makes it text (OWASP); any other value as it is."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def from_text(value: str) -> str:
    """A cell as `as_text` had it before: without the `'` it added."""
    return value[1:] if value.startswith("'") and value[1:].startswith(_FORMULA_START) else value
