"""Form validation: normalised values, one message per bad field, input kept."""

from __future__ import annotations

import io
import re

from starlette.datastructures import FormData, UploadFile

from quality.fields import EMAIL, MAX_EMAIL, Field, validate
from quality.i18n import lazy, translations

FIELDS = (
    Field("code", "Operator code", re.compile(r"OP[A-Z0-9]{2}"), "OP07", max_length=8),
    Field("note", "Note", re.compile(r".*"), "anything", normalise=str.strip),
)


def test_values_are_trimmed_and_upper_cased() -> None:
    checked = validate(FormData({"code": "  op07 ", "note": " Keep case "}), FIELDS)
    assert checked.ok and checked.values == {"code": "OP07", "note": "Keep case"}


def test_each_bad_field_gets_one_message_and_keeps_what_was_typed() -> None:
    checked = validate(FormData({"code": "XX99"}), FIELDS)
    assert not checked.ok
    assert checked.errors == {"code": "Operator code must look like OP07.",
                              "note": "Note is missing: scan or type it."}
    assert checked.values == {"code": "XX99", "note": ""}


def test_too_long_and_non_text_values_are_refused() -> None:
    long = validate(FormData({"code": "OP07" * 10, "note": "x"}), FIELDS)
    assert long.errors == {"code": "Operator code is too long (at most 8 characters)."}
    upload = UploadFile(io.BytesIO(b"OP07"), filename="code.txt")
    sent_a_file = validate(FormData([("code", upload), ("note", "x")]), FIELDS)
    assert sent_a_file.errors == {"code": "Operator code must be text."}


def test_a_value_as_long_as_its_field_allows_is_kept_whole() -> None:
    address = "a" * 230 + "@plant.example"  # longer than fields.KEEP, as an e-mail address may be
    checked = validate(FormData({"email": address}), (Field("email", "E-mail", EMAIL, "a@b.c", MAX_EMAIL),))
    assert checked.ok and checked.values == {"email": address.upper()}


def test_messages_are_translated_whole_with_their_label() -> None:
    fields = (Field("code", lazy("Operator code"), re.compile(r"OP[A-Z0-9]{2}"), "OP07"),)
    error = validate(FormData({"code": "XX99"}), fields).errors["code"]
    assert error.translate(translations("ro")) == "„Cod operator” trebuie să arate ca OP07."
