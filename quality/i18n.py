"""The one translation layer: message catalogues per language, the request's
language, and the gettext callables templates render with.

Every user-visible text is an English msgid. Templates translate with `_()`
and `{% trans %}`; Python code marks its messages with `lazy()` (or
`lazy_plural()`), which keeps the msgid and its values until a template
translates it in the language of the request being answered. Catalogues are
`quality/locale/<lang>/LC_MESSAGES/messages.po`; `scripts/setup` compiles them
to `.mo`, and a missing or stale `.mo` is compiled here at start-up.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import NumberPattern, format_decimal, parse_pattern
from babel.support import Translations
from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import escape

log = logging.getLogger(__name__)

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
# Each with its name in its own language, for the header's selector.
LANGUAGES = {"en": "English", "ro": "Română"}
DEFAULT_LANGUAGE = "en"


class LazyText(str):
    """A message from Python code, translated when a page is rendered.

    As a `str` it is the English text, so code and logs can use it as one;
    it also keeps its msgid and values, and `translate` gives it in another
    language. `%(name)s` placeholders are filled after translation, so a
    translator moves them where the sentence needs them; a value that is
    itself a `LazyText` (a field's label) is translated too."""

    msgid: str
    plural: str | None
    count: int | None
    values: Mapping[str, Any]

    def __new__(cls, msgid: str, plural: str | None = None, count: int | None = None,
                values: Mapping[str, Any] | None = None) -> LazyText:
        values = dict(values or {})
        english = msgid if plural is None or count == 1 else plural
        self = super().__new__(cls, english % values if values else english)
        self.msgid, self.plural, self.count, self.values = msgid, plural, count, values
        return self

    def translate(self, translations: Translations) -> str:
        if self.plural is None:
            message = translations.gettext(self.msgid)
        else:
            message = translations.ngettext(self.msgid, self.plural, self.count or 0)
        if not self.values:
            return message
        return message % {name: value.translate(translations) if isinstance(value, LazyText) else value
                          for name, value in self.values.items()}


class LazyList(LazyText):
    """Several messages (or plain names) as one value, each translated, joined by commas."""

    items: tuple[str, ...]

    def __new__(cls, items: Sequence[str]) -> LazyList:
        self = super().__new__(cls, "%(items)s", values={"items": ", ".join(items)})
        self.items = tuple(items)
        return self

    def translate(self, translations: Translations) -> str:
        return ", ".join(_translate(translations, item) if isinstance(item, LazyText) else item
                         for item in self.items)


def lazy(text: str, **values: Any) -> LazyText:
    """Mark a message for the catalogue; it is translated at render time."""
    return LazyText(text, values=values)


def lazy_plural(singular: str, plural: str, count: int, **values: Any) -> LazyText:
    return LazyText(singular, plural, count, {"num": count, **values})


@functools.cache
def translations(language: str) -> Translations:
    """A language's catalogue, loaded once per process."""
    mo_path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
    po_path = mo_path.with_suffix(".po")
    if not po_path.exists():
        raise LookupError(f"no catalogue for language {language!r}")
    if not mo_path.exists() or mo_path.stat().st_mtime < po_path.stat().st_mtime:
        return Translations(io.BytesIO(compile_catalogue(po_path, mo_path)), domain=DOMAIN)
    with mo_path.open("rb") as mo:
        return Translations(mo, domain=DOMAIN)


def compile_catalogue(po_path: Path, mo_path: Path) -> bytes:
    """The `.mo` for a `.po`, written beside it when the package is writable."""
    with po_path.open("rb") as po:
        catalogue = read_po(po, locale=po_path.parents[1].name)
    buffer = io.BytesIO()
    write_mo(buffer, catalogue, use_fuzzy=False)
    try:
        mo_path.write_bytes(buffer.getvalue())
    except OSError as exc:  # an installed, read-only package: compile in memory each start
        log.info("catalogue %s compiled in memory only: %s", po_path, exc)
    return buffer.getvalue()


def accepted_language(header: str, default: str) -> str:
    """The first of the browser's `Accept-Language` choices we speak."""
    wanted = []
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            wanted.append((quality, tag.strip().replace("_", "-")))
    wanted.sort(key=lambda choice: -choice[0])
    for _quality, tag in wanted:
        base = tag.split("-")[0].lower()
        if base in LANGUAGES:
            return base
    return default


def translator(language: str) -> Callable[[str], str]:
    """Translate messages for text built outside a template (the reports' SVG charts)."""
    return functools.partial(_translate, translations(language))


@functools.lru_cache(maxsize=16384)
def count(value: int, language: str) -> str:
    """A count with the language's separators ("12,345" in English, "12.345"
    in Romanian): Babel's `format_decimal`, remembered, since a page writes the
    same counts again and again (a 90-day report two thousand of them)."""
    return format_decimal(value, locale=language_locale(language))


@functools.lru_cache(maxsize=8192)
def percent(share: float | None, language: str, decimals: int = 1) -> str:
    """A share as the language writes it ("12.5%" in English, "12,5 %" in
    Romanian), with `decimals` digits; a dash when there is no share."""
    if share is None:
        return "—"
    pattern, locale = _percent_format(language, decimals)
    return pattern.apply(share, locale)


@functools.cache
def _percent_format(language: str, decimals: int) -> tuple[NumberPattern, Locale]:
    """Babel's `format_percent` in parts, parsed once: a page writes hundreds of
    shares it has not written before (a new range), and parsing the pattern and
    the locale cost more than applying them."""
    locale = language_locale(language)
    # The language's own pattern (where the sign goes, its spacing), with the digits we want.
    pattern = locale.percent_formats[None].pattern
    last_digit = pattern.rfind("0") + 1
    return parse_pattern(pattern[:last_digit] + ("." + "0" * decimals if decimals else "")
                         + pattern[last_digit:]), locale


@functools.cache
def language_locale(language: str) -> Locale:
    """A language's Babel locale, parsed once."""
    return Locale.parse(language)


def _translate(translations: Translations, message: str | LazyText) -> str:
    if isinstance(message, LazyText):
        return message.translate(translations)
    return translations.gettext(message)


@functools.cache
def template_callables(language: str) -> dict[str, Any]:
    """`_`, `gettext` and `ngettext` for templates, in the style of Jinja's
    "newstyle" gettext: values are given as keywords and escaped. A translation
    is text, never markup, so it is escaped too (a msgid may come from a
    variable)."""
    catalogue = translations(language)

    # Given the evaluation context only, not the template context: Jinja copies
    # the whole template context for each call of a context function made
    # inside a loop or a block that sets variables.
    @pass_eval_context
    def gettext(eval_ctx: EvalContext, message: str | LazyText, **values: Any) -> str:
        text = _translate(catalogue, message)
        if eval_ctx.autoescape:
            return escape(text) % values if values else escape(text)
        return text % values if values else text

    @pass_eval_context
    def ngettext(eval_ctx: EvalContext, singular: str, plural: str, num: int, **values: Any) -> str:
        text = catalogue.ngettext(singular, plural, num)
        values = {"num": num, **values}
        return (escape(text) if eval_ctx.autoescape else text) % values

    return {"_": gettext, "gettext": gettext, "ngettext": ngettext,
            "language": language, "locale": language_locale(language)}
