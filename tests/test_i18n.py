"""The translation layer: no user-visible text outside it, complete catalogues,
the request's language chosen in one place, and pages in that language."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from starlette.testclient import TestClient

from quality.app import create_app
from quality.http.templates import PACKAGE_DIR, TEMPLATES_DIR
from quality.i18n import (
    LANGUAGES,
    LOCALE_DIR,
    accepted_language,
    count,
    lazy,
    lazy_plural,
    percent,
    translations,
)
from quality.settings import Settings, load_settings
from tests.conftest import csrf_token_in, login

ROOT = PACKAGE_DIR.parent
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy": None, "lazy_plural": (1, 2)}

# -- no text outside the layer: templates ----------------------------------------

# Jinja's own syntax, removed before the HTML is read: a `{% trans %}` block
# whole (its text is translated), then every expression, tag and comment.
_JINJA = re.compile(r"{%-?\s*trans\b.*?endtrans\s*-?%}|{{.*?}}|{%.*?%}|{#.*?#}", re.S)
# Attributes people read (a screen reader included).
_SHOWN_ATTRIBUTES = {"title", "placeholder", "alt", "aria-label", "label"}
_LETTER = re.compile(r"[^\W\d_]{2}")  # a word; a lone letter is a code's (2026-11-27T06:00)
_ATTRIBUTE = re.compile(r'[\w-]+="[^"]*"')  # a macro that writes attributes (aria-invalid="true")


class _TextFinder(HTMLParser):
    """Collects the letters a template shows that no `_()` produced."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag in ("script", "style")
        self.found += [f"{tag}[{name}]={value!r}" for name, value in attrs
                       if name in _SHOWN_ATTRIBUTES and value and _LETTER.search(value)]

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if not self._in_script and _LETTER.search(_ATTRIBUTE.sub("", data)):
            self.found.append(data.strip())


def untranslated_text(source: str) -> list[str]:
    finder = _TextFinder()
    finder.feed(_JINJA.sub(" ", source))
    return finder.found


@pytest.mark.parametrize("template", sorted(p.relative_to(TEMPLATES_DIR).as_posix()
                                            for p in TEMPLATES_DIR.rglob("*.html")))
def test_templates_show_no_text_outside_the_translation_layer(template: str) -> None:
    assert untranslated_text((TEMPLATES_DIR / template).read_text()) == []


@pytest.mark.parametrize("template", sorted(p.relative_to(TEMPLATES_DIR).as_posix()
                                            for p in TEMPLATES_DIR.rglob("*.html")))
def test_imported_macros_translate_with_the_pages_language(template: str) -> None:
    """An import without context would give the macros the English fallback `_`."""
    imports = re.findall(r"{%-?\s*(?:import|from)\b.*?%}", (TEMPLATES_DIR / template).read_text())
    assert [line for line in imports if "with context" not in line] == []


def test_the_template_check_finds_plain_text_and_attributes() -> None:
    assert untranslated_text('<p title="Piece">{{ _("Ok") }} Saved</p>') == ["p[title]='Piece'", "Saved"]
    assert untranslated_text("<p>{% trans n=1 %}{{ n }} saved{% endtrans %} · 3</p>") == []


# -- no text outside the layer: Python --------------------------------------------

# Calls whose arguments end up on a page. A text literal passed to them (at any
# depth: a context dict, a tuple) must be inside lazy()/lazy_plural().
SINKS = {"error_page", "_login_form", "_answer", "render", "HTTPException", "Field", "Station",
         "SubmissionConflict", "AccountError", "NoSuchUser", "LastAdmin", "Refused", "NotDelegable"}
_NOT_SHOWN = {"headers", "block", "media_type"}  # keywords of those calls people never read
_SQL = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|CALL|CREATE|ALTER|SET|WITH)\b")


def _looks_like_text(value: str) -> bool:
    """Words people read: two words, or one capitalised word ("Reports")."""
    return bool(re.search(r"[^\W\d_]{2,}\s+[^\W\d_]", value) or re.fullmatch(r"[A-Z][a-z]+", value)) \
        and not _SQL.match(value) and "%s" not in value  # %s: a query's parameter


def _texts_outside_lazy(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("lazy", "lazy_plural"):
        return []
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value] if _looks_like_text(node.value) else []
    if isinstance(node, ast.JoinedStr):  # an f-string: text assembled from pieces
        return [ast.unparse(node)]
    return [text for child in ast.iter_child_nodes(node) for text in _texts_outside_lazy(child)]


def python_texts_outside_the_layer(source: str) -> list[str]:
    """Text literals passed to a sink, and module constants of a module that
    uses the layer (its message tables), that are not marked."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in SINKS:
                values = [*node.args, *(k.value for k in node.keywords if k.arg not in _NOT_SHOWN)]
                found += [text for value in values for text in _texts_outside_lazy(value)]
        elif isinstance(node, ast.Assign) and any(  # form errors: checked.errors[name] = ...
                isinstance(t, ast.Subscript) and "errors" in ast.unparse(t.value) for t in node.targets):
            found += _texts_outside_lazy(node.value)
    if "quality.i18n" in source:
        for node in tree.body:
            if isinstance(node, ast.Assign) and all(
                    isinstance(t, ast.Name) and t.id.isupper() for t in node.targets):
                found += _texts_outside_lazy(node.value)
    return found


@pytest.mark.parametrize("module", sorted(p.relative_to(ROOT).as_posix()
                                          for p in PACKAGE_DIR.rglob("*.py")))
def test_python_messages_go_through_the_translation_layer(module: str) -> None:
    assert python_texts_outside_the_layer((ROOT / module).read_text()) == []


def test_the_python_check_finds_unmarked_messages() -> None:
    source = '''
from quality.i18n import lazy
TITLES = {400: "Bad request", 404: lazy("Not found")}
QUERY = "SELECT id FROM users WHERE name = %s"
error_page(request, 400, f"No {thing}.", headers={"Retry-After": "2"})
render(request, "x.html", {"message": "Not saved — try again.", "outcome": "invalid"})
render(request, "x.html", {"message": lazy("Not saved — try again.")})
checked.errors["code"] = "Unknown code."
'''
    assert sorted(python_texts_outside_the_layer(source)) == sorted([
        "f'No {thing}.'", "Not saved — try again.", "Unknown code.", "Bad request"])


# -- complete catalogues ------------------------------------------------------------


def extracted_msgids() -> set[str]:
    """What `pybabel extract -F babel.cfg` finds today."""
    method_map = [("quality/**.py", "python"), ("templates/**.html", "jinja2")]
    return {
        message if isinstance(message, str) else message[0]
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT, method_map, keywords=KEYWORDS)
    }


def test_babel_cfg_maps_what_the_check_extracts() -> None:
    sections = re.findall(r"^\[(\w+): (.+)\]$", (ROOT / "babel.cfg").read_text(), re.M)
    assert sections == [("python", "quality/**.py"), ("jinja2", "templates/**.html")]


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_every_message_has_a_finished_translation(language: str) -> None:
    with (LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalogue = read_po(po, locale=language)
    finished = {
        message.id if isinstance(message.id, str) else message.id[0]
        for message in catalogue
        if message.id and not message.fuzzy
        and all(message.string if isinstance(message.string, tuple) else [message.string])
    }
    assert extracted_msgids() - finished == set()


def test_romanian_uses_comma_below_letters() -> None:
    text = (LOCALE_DIR / "ro" / "LC_MESSAGES" / "messages.po").read_text()
    assert not re.search("[şţŞŢ]", text)  # cedilla forms: wrong for Romanian
    assert "ș" in text and "ț" in text


def test_python_messages_translate_whole_with_their_values() -> None:
    ro = translations("ro")
    assert lazy("Wrong user name or password.").translate(ro) == "Nume de utilizator sau parolă greșite."
    wait = lazy_plural("Too many failed sign-in attempts. Wait %(num)s minute, then try again.",
                       "Too many failed sign-in attempts. Wait %(num)s minutes, then try again.", 20)
    assert str(wait) == "Too many failed sign-in attempts. Wait 20 minutes, then try again."
    assert wait.translate(ro).endswith("Așteptați 20 de minute, apoi încercați din nou.")


# -- the request's language ---------------------------------------------------------


@pytest.mark.parametrize(("header", "expected"), [
    ("ro-RO,ro;q=0.9,en;q=0.8", "ro"),
    ("de-DE,de;q=0.9", "en"),
    ("de;q=0.9,ro;q=0.5", "ro"),
    ("en;q=0.2, ro", "ro"),
    ("ro;q=0, en", "en"),
    ("", "en"),
    ("garbage;q=x", "en"),
])
def test_accept_language_picks_the_first_language_we_speak(header: str, expected: str) -> None:
    assert accepted_language(header, "en") == expected


# Babel's own text for these (its rounding is half to even: 12.5 % with no digits is 12 %).
SHARES = {
    "en": ["0.0%", "100.0%", "12.5%", "33.3%", "—", "12%", "67%", "1,234.56%", "0.0%"],
    "ro": ["0,0\xa0%", "100,0\xa0%", "12,5\xa0%", "33,3\xa0%", "—", "12\xa0%", "67\xa0%", "1.234,56\xa0%",
           "0,0\xa0%"],
}


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_shares_and_counts_are_written_as_babel_writes_them(language: str) -> None:
    """`percent` and `count` parse the language's pattern once and remember what
    they wrote; asked twice (the second answer remembered) they give Babel's text."""
    for _ in range(2):
        asked = [(0, 1), (1, 1), (0.125, 1), (1 / 3, 1), (None, 1), (0.125, 0), (2 / 3, 0), (12.3456, 2),
                 (0.0005, 1)]
        shares = [percent(share, language, decimals) for share, decimals in asked]
        assert shares == SHARES[language]
        for value in (0, 1, 999, 1000, 1234567, -5):
            assert count(value, language) == format_decimal(value, locale=language)


def test_the_plant_language_is_a_setting() -> None:
    assert load_settings({"QUALITY_LANGUAGE": "ro"}, env_file=None).language == "ro"
    assert load_settings({}, env_file=None).language == "en"
    with pytest.raises(ValueError, match="QUALITY_LANGUAGE"):
        load_settings({"QUALITY_LANGUAGE": "xx"}, env_file=None)


def test_sign_in_page_follows_the_browser_before_sign_in(client: TestClient) -> None:
    romanian = client.get("/login", headers={"Accept-Language": "ro-RO,ro;q=0.9,en;q=0.5"})
    assert '<html lang="ro">' in romanian.text
    assert "Nume de utilizator" in romanian.text and "User name" not in romanian.text
    english = client.get("/login", headers={"Accept-Language": "de,en;q=0.5"})
    assert '<html lang="en">' in english.text and "User name" in english.text


def test_a_failed_sign_in_is_told_in_the_browsers_language(client: TestClient, make_user: Any) -> None:
    make_user("ioana", "operator")
    page = client.get("/login", headers={"Accept-Language": "ro"})
    refused = client.post("/login", headers={"Accept-Language": "ro"}, data={
        "username": "ioana", "password": "wrong", "csrf_token": csrf_token_in(page.text)})
    assert refused.status_code == 401
    assert "Nume de utilizator sau parolă greșite." in refused.text


def choose(client: TestClient, language: str, next_path: str = "/scan") -> Any:
    page = client.get(next_path)
    return client.post("/language", data={"language": language, "next": next_path,
                                          "csrf_token": csrf_token_in(page.text)},
                       follow_redirects=False)


def test_a_users_choice_is_stored_and_beats_the_browser(client: TestClient, make_user: Any) -> None:
    make_user("ioana", "operator")
    login(client, "ioana")
    assert 'data-testid="language"' in client.get("/scan").text  # the header's selector
    chosen = choose(client, "ro")
    assert chosen.status_code == 303 and chosen.headers["location"] == "/scan"
    page = client.get("/scan", headers={"Accept-Language": "en"})
    assert '<html lang="ro">' in page.text
    assert "Cod piesă" in page.text and "Ultimele scanări" in page.text
    # scan.js gets its texts from the page, translated
    messages = re.search(r'id="scan-messages">(.*?)</script>', page.text, re.S)
    assert messages and json.loads(messages[1])["noNetwork"] == "fără rețea"
    choose(client, "en")
    assert "Piece code" in client.get("/scan", headers={"Accept-Language": "ro"}).text


def test_an_unknown_language_is_refused_and_changes_nothing(client: TestClient, make_user: Any) -> None:
    make_user("ioana", "operator")
    login(client, "ioana")
    assert choose(client, "xx").status_code == 400
    assert '<html lang="en">' in client.get("/scan").text


def test_a_refused_scan_is_explained_in_the_users_language(client: TestClient, make_user: Any) -> None:
    make_user("ioana", "operator")
    login(client, "ioana")
    choose(client, "ro")
    page = client.get("/scan")
    submission = re.search(r'name="submission_id" value="(\w+)"', page.text)
    assert submission
    refused = client.post("/scan", headers={"HX-Request": "true"}, data={
        "operator_code": "OP07", "piece_code": "XX1", "checker1_code": "OC12", "checker2_code": "OC13",
        "defect_code": "000", "submission_id": submission[1], "csrf_token": csrf_token_in(page.text)})
    assert refused.status_code == 422
    assert "Nesalvat — corectați câmpul marcat." in refused.text
    assert "„Cod piesă” trebuie să arate ca CP00012345-0001." in refused.text


def test_users_without_a_choice_get_the_plant_language(settings: Settings, make_user: Any) -> None:
    make_user("ioana", "operator")
    plant = dataclasses.replace(settings, language="ro")
    with TestClient(create_app(plant), client=("127.0.0.1", 50000)) as client:
        login(client, "ioana")
        page = client.get("/scan", headers={"Accept-Language": "en"})
        assert '<html lang="ro">' in page.text and "Scanare calitate" in page.text
        missing = client.get("/nowhere")
        assert missing.status_code == 404 and "Nu există nicio pagină la această adresă." in missing.text


def test_the_scan_list_and_report_speak_the_users_language(client: TestClient, make_user: Any) -> None:
    make_user("sorin", "supervisor")
    login(client, "sorin")
    choose(client, "ro", "/scans")
    listing = client.get("/scans")
    assert '<html lang="ro">' in listing.text and "Doar respinse" in listing.text
    report = client.get("/reports")
    assert report.status_code == 200
    assert "Rata de respingere pe zile" in report.text  # an SVG chart's title, built in Python
