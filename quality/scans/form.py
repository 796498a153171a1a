"""The scan form's fields (SPEC §5; the patterns are settings) and its validation."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from starlette.datastructures import FormData

from quality.http.forms import Field, Validated, validate
from quality.i18n import lazy
from quality.settings import CodePatterns

SUBMISSION_ID = re.compile(r"^[0-9a-f]{32}$")
APPROVED_DEFECT = "000"  # the defect code that means "no defect": the piece is approved


@dataclass(frozen=True)
class ScanInput:
    submission_id: bytes
    operator_code: str
    piece_code: str
    order_code: str
    checker1_code: str
    checker2_code: str
    defect_code: str

    @property
    def approved(self) -> bool:
        return self.defect_code == APPROVED_DEFECT


@functools.cache
def scan_fields(codes: CodePatterns) -> tuple[Field, ...]:
    """The fields for these patterns, built once (the settings never change in a process)."""
    return (
        Field("operator_code", lazy("Operator code"), re.compile(codes.operator), "OP07", 32),
        Field("piece_code", lazy("Piece code"), re.compile(codes.piece), "CP00012345-0001", 64),
        Field("checker1_code", lazy("Checker code 1"), re.compile(codes.checker), "OC12", 32),
        Field("checker2_code", lazy("Checker code 2"), re.compile(codes.checker), "OC12", 32),
        Field("defect_code", lazy("Defect code"), re.compile(codes.defect), lazy("000 or 104"), 3),
    )


def read_scan(form: FormData, codes: CodePatterns) -> tuple[Validated, ScanInput | None]:
    """Validate a posted scan; the input is None when any field is wrong."""
    checked = validate(form, scan_fields(codes))
    submission = form.get("submission_id")
    if not isinstance(submission, str) or not SUBMISSION_ID.match(submission):
        checked.errors["submission_id"] = lazy("This form is missing its submission id. Reload the page.")
    if not checked.ok:
        return checked, None
    values = checked.values
    return checked, ScanInput(
        submission_id=bytes.fromhex(str(submission)),
        operator_code=values["operator_code"],
        piece_code=values["piece_code"],
        order_code=values["piece_code"][: codes.order_length],
        checker1_code=values["checker1_code"],
        checker2_code=values["checker2_code"],
        defect_code=values["defect_code"],
    )
