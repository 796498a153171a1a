"""The scan form's validation: its fields (SPEC §5; the patterns are settings) are
`quality.codes.scan_fields`, which `quality import` checks its rows with too."""

from __future__ import annotations

import re

from starlette.datastructures import FormData

from quality.codes import scan_fields
from quality.fields import Validated, validate
from quality.i18n import lazy
from quality.scans.store import ScanInput
from quality.settings import CodePatterns

SUBMISSION_ID = re.compile(r"^[0-9a-f]{32}$")


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
