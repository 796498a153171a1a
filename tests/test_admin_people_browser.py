"""Issue 21's admin touches in Chromium, in English and Romanian: a role's
description shows on the roles list and below the role choice of the user
forms; an admin sets an operator's language, which their pages then speak
(and the audit log tells as a sentence); and a missing page, a missing user, a
page the role may not open and a lost database each answer a whole page in the
app's layout that says what happened in the reader's language."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Locator, Page, expect

from quality.settings import Settings
from tests.admin_support import query
from tests.conftest import LiveServer, browser_login
from tests.database_outage import app_behind_relay, until_health
from tests.test_admin_users import user_id

pytestmark = pytest.mark.browser

LANGUAGES = ["en", "ro"]
# Data, shown as typed whatever the reader's language.
DESCRIPTION = "Leads a line & signs off orders — șef de linie"
# The role form's texts, from templates/admin/roles.html and the Romanian catalogue.
ROLE_FORM = {
    "en": ("Role name", "Description", "Create role",
           "Role created. Tick its permissions in the matrix.", "Role"),
    "ro": ("Numele rolului", "Descriere", "Creează rolul",
           "Rolul a fost creat. Bifați-i permisiunile în matrice.", "Rol"),
}
# Where the descriptions stand on a user form: below the role choice, above
# the language, each description on its role's row, right of its name.
DESCRIPTIONS_PLACE = """form => {
    const box = el => el.getBoundingClientRect();
    const role = box(form.querySelector('#role')), language = box(form.querySelector('#language'));
    const list = box(form.querySelector('[data-testid=role-descriptions]'));
    const pairs = Array.from(form.querySelectorAll('[data-testid=role-descriptions] dt'), dt => {
        const term = box(dt), text = box(dt.nextElementSibling);
        return term.right <= text.left && term.top < text.bottom && text.top < term.bottom;
    });
    return {below: role.bottom <= list.top && list.bottom <= language.top, beside: pairs};
}"""


def set_language(settings: Settings, username: str, language: str) -> None:
    query(settings, f"UPDATE users SET language = '{language}' WHERE username = '{username}'")


async def started(settings: Settings) -> LiveServer:
    server = LiveServer(settings)
    await asyncio.to_thread(server.start)
    return server


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_roles_description_shows_on_the_roles_list_and_below_the_role_choice(
    settings: Settings, browser: Any, make_user: Any, language: str
) -> None:
    make_user("ada", "admin")
    make_user("olga", "operator")
    set_language(settings, "ada", language)
    name_label, description_label, create, created, role_label = ROLE_FORM[language]
    server = await started(settings)
    try:
        page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
        await browser_login(page, server, "ada")
        await page.goto(server.url + "/admin/roles")
        await expect(page.locator("html")).to_have_attribute("lang", language)
        await page.get_by_label(name_label, exact=True).fill("lead")
        await page.get_by_label(description_label, exact=True).fill(DESCRIPTION)
        await page.get_by_role("button", name=create).click()
        await expect(page.get_by_test_id("notice")).to_have_text(created)
        listed = page.get_by_test_id("manage-lead").get_by_test_id("description")
        await expect(listed).to_be_visible()
        await expect(listed).to_have_text(DESCRIPTION)

        for url in ("/admin/users", f"/admin/users/{user_id(settings, 'olga')}"):  # create and edit forms
            await page.goto(server.url + url)
            form = page.locator("form.form-side").filter(has=page.locator("#role"))
            await expect(form.get_by_label(role_label, exact=True)).to_have_attribute("id", "role")
            described = form.get_by_test_id("role-descriptions").locator("dt:text-is('lead') + dd")
            await expect(described).to_be_visible()
            await expect(described).to_have_text(DESCRIPTION)
            place = await form.evaluate(DESCRIPTIONS_PLACE)
            assert place["below"] and place["beside"] and all(place["beside"]), (url, place)
    finally:
        server.stop()


def account_form(page: Page) -> Locator:
    """The form that creates or saves an account (not the password's, nor the filters)."""
    return page.locator("form.form-side").filter(has=page.locator("#language"))


async def next_page_in(page: Page, url: str, language: str) -> None:
    """Open `url` until it comes in `language`: a change to a user reaches the
    sessions a process trusts within 1 s (SPEC §6), so the first page asked
    may still be the old one's; the bound only ends a failing test."""
    for _ in range(50):
        await page.goto(url)
        if await page.locator("html").get_attribute("lang") == language:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never came in {language}")


async def test_an_admin_sets_an_operators_language_which_their_pages_then_speak(
    settings: Settings, browser: Any, make_user: Any
) -> None:
    make_user("ada", "admin")
    make_user("olga", "operator")
    server = await started(settings)
    try:
        admin = await (await browser.new_context()).new_page()
        await browser_login(admin, server, "ada")
        await admin.goto(server.url + "/admin/users")
        create = account_form(admin)
        await create.get_by_label("User name").fill("ion")
        await create.get_by_label("Role", exact=True).select_option("operator")
        await create.get_by_label("Language").select_option(label="Română")
        await create.get_by_label("Temporary password").fill("temporary-pass-1")
        await create.get_by_role("button", name="Create user").click()
        await expect(admin.get_by_test_id("notice")).to_contain_text("User created.")
        await expect(account_form(admin).get_by_label("Language")).to_have_value("ro")

        olga = f"{server.url}/admin/users/{user_id(settings, 'olga')}"
        await admin.goto(olga)
        form = account_form(admin)
        await expect(form.get_by_label("Language")).to_have_value("")  # the plant's default
        await form.get_by_label("Language").select_option(label="Română")
        await form.get_by_role("button", name="Save").click()
        await expect(admin.get_by_test_id("notice")).to_have_text("Changes saved.")
        await expect(form.get_by_label("Language")).to_have_value("ro")

        operator = await (await browser.new_context()).new_page()
        await browser_login(operator, server, "olga")  # the sign-in page: the browser's English
        await operator.goto(server.url + "/scan")
        await expect(operator.locator("html")).to_have_attribute("lang", "ro")
        await expect(operator).to_have_title("Scanare calitate · Scanare calitate")
        await expect(operator.get_by_role("heading", level=1)).to_have_text("Scanare calitate")
        await expect(operator.locator("header nav a")).to_have_text(
            ["Scanare calitate", "Scanare produse finite"])
        await expect(operator.get_by_role("button", name="Ieșire")).to_be_visible()
        await expect(operator.get_by_role("button", name="Salvează scanarea")).to_be_visible()

        await form.get_by_label("Language").select_option(label="the plant's default")
        await form.get_by_role("button", name="Save").click()
        await expect(admin.get_by_test_id("notice")).to_have_text("Changes saved.")
        await next_page_in(operator, server.url + "/scan", "en")
        await expect(operator.get_by_role("heading", level=1)).to_have_text("Quality scan")
        await expect(operator.get_by_role("button", name="Sign out")).to_be_visible()

        await admin.goto(server.url + "/admin/audit")
        await expect(admin.get_by_test_id("audit-row").locator(".sentence")).to_contain_text([  # newest first
            "ada changed the language of olga from Română to the plant's default.",
            "ada changed the language of olga from the plant's default to Română.",
        ])
    finally:
        server.stop()


# Each error page's heading and message (quality/http/errors.py, the Romanian catalogue).
ERRORS = {
    "en": {404: "Not found", 403: "Not allowed", 503: "Database busy",
           "page": "There is no page at this address.", "user": "There is no such user.",
           "role": "Your role does not allow this page.",
           "database": "The database is busy or unreachable. Nothing was changed; try again.",
           "back": "Back to the home page", "hello": "Hello, {}"},
    "ro": {404: "Nu a fost găsit", 403: "Acces interzis", 503: "Baza de date este ocupată",
           "page": "Nu există nicio pagină la această adresă.", "user": "Acest utilizator nu există.",
           "role": "Rolul dumneavoastră nu permite accesul la această pagină.",
           "database": "Baza de date este ocupată sau inaccesibilă."
                       " Nu s-a modificat nimic; încercați din nou.",
           "back": "Înapoi la pagina principală", "hello": "Bună ziua, {}"},
}


async def error_page(page: Page, url: str, status: int, message: str, language: str) -> None:
    """`url` answers `status` with a whole page in the app's layout: the header,
    a heading saying what happened, the message, in `language`."""
    answer = await page.goto(url)
    assert answer is not None and answer.status == status, url
    await expect(page.locator("html")).to_have_attribute("lang", language)
    await expect(page.locator("header.topbar a.brand")).to_be_visible()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"{ERRORS[language][status]} ({status})")
    await expect(page.get_by_test_id("error-message")).to_have_text(message)


async def back_home(page: Page, username: str, language: str) -> None:
    """The error page's way back leads to the reader's home page."""
    back = page.get_by_role("link", name=ERRORS[language]["back"])
    await expect(back).to_have_attribute("href", "/")
    await back.click()
    hello = ERRORS[language]["hello"].format(username)
    await expect(page.get_by_role("heading", level=1)).to_have_text(hello)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_missing_page_a_missing_user_and_a_forbidden_page_are_whole_pages_with_a_way_back(
    settings: Settings, browser: Any, make_user: Any, language: str
) -> None:
    make_user("ada", "admin")
    make_user("olga", "operator")
    set_language(settings, "ada", language)
    set_language(settings, "olga", language)
    texts = ERRORS[language]
    server = await started(settings)
    try:
        admin = await (await browser.new_context()).new_page()
        await browser_login(admin, server, "ada")
        for url, message in (("/no/such/page", texts["page"]), ("/admin/users/999999", texts["user"])):
            await error_page(admin, server.url + url, 404, message, language)
            await expect(admin.get_by_test_id("who")).to_contain_text("ada")  # signed in, with their header
            await back_home(admin, "ada", language)

        operator = await (await browser.new_context()).new_page()
        await browser_login(operator, server, "olga")
        await error_page(operator, server.url + "/admin/users", 403, texts["role"], language)
        await expect(operator.get_by_test_id("who")).to_contain_text("olga")
        await back_home(operator, "olga", language)
    finally:
        server.stop()


async def until_reader_unknown(page: Page, url: str) -> None:
    """Until the page at `url` no longer names who reads it (bounded)."""
    for _ in range(100):
        await page.goto(url)
        if not await page.get_by_test_id("who").count():
            return
        await page.wait_for_timeout(100)
    raise AssertionError("the app kept knowing the reader with its database gone")


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_page_asked_while_the_database_is_gone_is_the_503_page_in_the_users_language(
    settings: Settings, browser: Any, make_user: Any, language: str
) -> None:
    make_user("ada", "admin")
    set_language(settings, "ada", language)
    async with app_behind_relay(settings) as (server, relay):
        context = await browser.new_context()
        page = await context.new_page()
        await browser_login(page, server, "ada")
        await page.goto(server.url + "/admin/users")
        # A browser set to the other language: the page must still be the user's.
        await context.set_extra_http_headers({"Accept-Language": "ro" if language == "en" else "en"})
        await relay.cut()
        await until_health(server, 503)
        # A second after its database is gone the app no longer knows who asks
        # (quality/session_cache.py); their session cookie still says their language.
        await until_reader_unknown(page, server.url + "/admin/users")
        await error_page(page, server.url + "/admin/users", 503, ERRORS[language]["database"], language)
        await expect(page.locator(".error-page a")).to_have_count(0)  # no link a lost database would refuse

        await relay.restore()
        await until_health(server, 200)
        answer = await page.reload()
        assert answer is not None and answer.status == 200
        await expect(page.get_by_test_id("users")).to_be_visible()
        await context.close()
