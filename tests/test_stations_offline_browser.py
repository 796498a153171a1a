"""The station while the app itself is down (restarting, redeployed), in
Chromium against a real server stopped and started again: the page loads from
the terminal's cache, keeps the scans made and sends each once when the app is
back; nothing but the station pages is ever answered from the cache, nor to
anyone but the user who loaded them; a new deployment's script replaces the
kept one."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, expect

from quality.settings import Settings
from tests.conftest import LiveServer, browser_login, execute, free_port
from tests.scanner import scan

pytestmark = pytest.mark.browser

OFFLINE = ("Offline: the app cannot be reached. Keep scanning: scans are kept on this terminal"
           " and sent when it is back.")
# Every cache the page's origin holds, and the addresses in each.
KEPT = """async () => {
  const found = {};
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    found[name] = (await cache.keys()).map((request) => {
      const url = new URL(request.url);
      return url.pathname + url.search;
    });
  }
  return found;
}"""


async def kept(page: Page) -> dict[str, list[str]]:
    return await page.evaluate(KEPT)


async def until_kept(page: Page, *paths: str) -> dict[str, list[str]]:
    """Until the worker holds these pages and the static files the page uses."""
    scripts = await page.locator("script[src]").evaluate_all("list => list.map(s => s.getAttribute('src'))")
    for _ in range(200):
        found = await kept(page)
        held = {address for addresses in found.values() for address in addresses}
        if {*paths, *scripts} <= held:
            return found
        await page.wait_for_timeout(100)
    raise AssertionError(f"not kept: {paths} {scripts}, found {found}")


async def not_loaded(context: Any, url: str, error: str) -> None:
    """The browser's own error page for `url` (in a tab of its own: the error
    page's navigation would cut into the next one's)."""
    tab = await context.new_page()
    with pytest.raises(PlaywrightError, match=error):
        await tab.goto(url)
    await tab.close()


async def bad_gateway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A proxy's answer to every request while the app behind it is down."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Gateway")
    await writer.drain()
    writer.close()


async def test_the_station_loads_and_keeps_scans_while_the_app_is_down(
    live_server: LiveServer, browser: Any, make_user: Any, settings: Settings
) -> None:
    make_user("olga", "operator")
    page = await browser.new_page()
    await browser_login(page, live_server, "olga")
    await page.goto(live_server.url + "/scan")
    await scan(page, "OP01", "CP00000001-0001", "OC01", "OC02", "000")
    result = page.get_by_test_id("scan-result")
    await expect(result).to_have_attribute("data-outcome", "approved")
    await until_kept(page, "/scan")

    await asyncio.to_thread(live_server.halt)
    await page.reload()  # the browser's own error page, without the worker
    note = page.get_by_test_id("offline-note")
    await expect(note).to_have_text(OFFLINE)
    await expect(page.locator("#operator_code")).to_have_value("OP01")
    # The kept page's token may be stale by the time the app is back: the page
    # asks for the session's own then (this one would be refused).
    await page.evaluate("document.body.setAttribute('hx-headers', '{\"X-CSRF-Token\": \"stale\"}')")
    await scan(page, "CP00000001-0002", "OC01", "OC02", "104")
    pending = page.locator("#pending li")
    await expect(pending).to_have_count(1, timeout=5000)
    await page.reload()  # still down: the page and its outbox again
    await expect(note).to_be_visible()
    await page.evaluate("document.body.setAttribute('hx-headers', '{\"X-CSRF-Token\": \"stale\"}')")
    await scan(page, "CP00000001-0003", "OC01", "OC02", "104")
    await expect(pending).to_have_count(2, timeout=5000)
    await expect(pending.first).to_contain_text("CP00000001-0002 · 104 — pending, retrying")

    # a proxy in front, answering for the missing app: the same
    gateway = await asyncio.start_server(bad_gateway, "127.0.0.1", live_server.port)
    try:
        await page.reload()
        await expect(note).to_have_text(OFFLINE)
        await expect(pending).to_have_count(2, timeout=5000)
    finally:
        gateway.close()
        await gateway.wait_closed()

    await asyncio.to_thread(live_server.start)
    await expect(page.get_by_test_id("pending")).to_be_hidden(timeout=20000)
    await expect(note).to_be_hidden()
    await expect(page.get_by_test_id("saved-piece")).to_have_text("CP00000001-0003")
    await expect(page.get_by_test_id("order-counts")).to_have_text(
        "Order CP00000001: 1 approved · 2 rejected")
    assert settings.database_url
    (rows,) = await execute(settings.database_url, "SELECT piece_code FROM scans ORDER BY id")
    assert rows == [("CP00000001-0001",), ("CP00000001-0002",), ("CP00000001-0003",)]
    await page.close()


async def test_only_the_station_pages_of_the_signed_in_user_are_kept(
    live_server: LiveServer, browser: Any, make_user: Any
) -> None:
    make_user("ada", "admin")
    make_user("bob", "operator")
    context = await browser.new_context()
    page = await context.new_page()
    await browser_login(page, live_server, "ada")
    await page.goto(live_server.url + "/scan")
    await until_kept(page, "/scan")
    for path in ("/scans", "/admin/users", "/account"):  # visited with the worker in charge
        await page.goto(live_server.url + path)
        await expect(page.locator("main")).to_be_visible()
    await page.goto(live_server.url + "/scan")
    held = [address for addresses in (await kept(page)).values() for address in addresses]
    assert [address for address in held if not address.startswith("/static/")] == ["/scan"]

    await asyncio.to_thread(live_server.halt)
    for path in ("/login", "/scans", "/admin/users", "/account"):  # not the worker's to answer
        await not_loaded(context, live_server.url + path, "ERR_CONNECTION_REFUSED")
    await not_loaded(context, live_server.url + "/fgscan", "ERR_FAILED")  # never opened here
    await page.goto(live_server.url + "/scan")
    await expect(page.get_by_test_id("offline-note")).to_have_text(OFFLINE)

    # signing out takes the user's page with it
    await asyncio.to_thread(live_server.start)
    await page.goto(live_server.url + "/scan")
    await expect(page.get_by_test_id("who")).to_contain_text("ada")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(live_server.url + "/login")
    await asyncio.to_thread(live_server.halt)
    await not_loaded(context, live_server.url + "/scan", "ERR_FAILED")

    # the next user on the same browser gets only their own
    await asyncio.to_thread(live_server.start)
    await browser_login(page, live_server, "bob")
    await page.goto(live_server.url + "/scan")
    await until_kept(page, "/scan")
    await asyncio.to_thread(live_server.halt)
    await page.reload()
    await expect(page.get_by_test_id("offline-note")).to_be_visible()
    await expect(page.get_by_test_id("who")).to_contain_text("bob")
    await context.close()


class HoldingProxy:
    """A proxy in front of the app that can hold back the app's answer to the
    next GET of one address: the app has answered, the browser is not told
    until the test says so."""

    def __init__(self, app: LiveServer) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.holding: str | None = None
        self.answered = asyncio.Event()
        self.released = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> HoldingProxy:
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server
        self.released.set()
        self.server.close()

    def hold_next(self, path: str) -> None:
        self.holding, self.answered, self.released = path, asyncio.Event(), asyncio.Event()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            app_reader, app_writer = await asyncio.open_connection("127.0.0.1", self.app.port)
        except OSError:  # the app is down: no answer, as without the proxy
            writer.close()
            return
        held = asyncio.Event()

        async def requests() -> None:
            while data := await reader.read(65536):
                if self.holding and data.startswith(f"GET {self.holding} ".encode()):
                    self.holding = None
                    held.set()
                app_writer.write(data)
                await app_writer.drain()
            app_writer.close()

        async def answers() -> None:
            while data := await app_reader.read(65536):
                if held.is_set():
                    self.answered.set()
                    await self.released.wait()
                    held.clear()
                writer.write(data)
                await writer.drain()
            writer.close()

        with contextlib.suppress(OSError):
            await asyncio.gather(requests(), answers())


async def test_a_page_fetched_while_its_user_signs_out_is_not_kept(
    live_server: LiveServer, browser: Any, make_user: Any
) -> None:
    # The page asks the worker to keep it once the worker runs, which may be
    # just as the user signs out: the app answers that fetch with the page, and
    # the sign-out has ended the session by the time the answer arrives.
    make_user("ada", "operator")
    context = await browser.new_context()
    page = await context.new_page()
    async with HoldingProxy(live_server) as proxy:
        await browser_login(page, proxy, "ada")
        await page.goto(proxy.url + "/scan")
        await until_kept(page, "/scan")
        await page.evaluate("""async () => {
          for (const name of await caches.keys()) await (await caches.open(name)).delete("/scan");
        }""")
        proxy.hold_next("/scan")
        await page.evaluate('navigator.serviceWorker.controller.postMessage({ keep: ["/scan"] })')
        await asyncio.wait_for(proxy.answered.wait(), 30)
        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(proxy.url + "/login")
        proxy.released.set()
        for _ in range(20):  # the worker has the answer at once; give it time to keep it
            held = [address for addresses in (await kept(page)).values() for address in addresses]
            assert "/scan" not in held
            await page.wait_for_timeout(100)
        await asyncio.to_thread(live_server.halt)
        await not_loaded(context, proxy.url + "/scan", "ERR_FAILED")
    await context.close()


def copy_of_the_app(directory: Path) -> Path:
    """The package, its templates and static files, where a test may change them."""
    root = Path(__file__).resolve().parents[1]
    for name in ("quality", "templates", "static"):
        shutil.copytree(root / name, directory / name, ignore=shutil.ignore_patterns("__pycache__"))
    return directory


async def test_a_new_deployments_script_replaces_the_kept_one(
    tmp_path: Path, settings: Settings, browser: Any, make_user: Any
) -> None:
    make_user("olga", "operator")
    app = copy_of_the_app(tmp_path / "app")
    server = LiveServer(settings, cwd=app)
    await asyncio.to_thread(server.start)
    try:
        page = await browser.new_page()
        await browser_login(page, server, "olga")
        await page.goto(server.url + "/scan")
        old = await until_kept(page, "/scan")
        script = page.locator("script[src^='/static/scan.js']")
        old_src = await script.get_attribute("src")

        await asyncio.to_thread(server.halt)
        scan_js = app / "static" / "scan.js"
        scan_js.write_text(scan_js.read_text() + '\ndocument.body.dataset.deployment = "2";\n')
        await asyncio.to_thread(server.start)
        # the open page finds the app back with new assets, and loads them itself
        await expect(page.locator("body")).to_have_attribute("data-deployment", "2", timeout=20000)
        new_src = await script.get_attribute("src")
        assert new_src != old_src
        new = await until_kept(page, "/scan")
        for _ in range(100):  # the old deployment's copies go once the new worker runs
            if list(new) != list(old) and len(new) == 1:
                break
            await page.wait_for_timeout(100)
            new = await kept(page)
        assert len(new) == 1 and list(new) != list(old), new
        assert old_src not in next(iter(new.values()))

        await asyncio.to_thread(server.halt)
        await page.reload()  # from the cache: the new script
        await expect(page.get_by_test_id("offline-note")).to_be_visible()
        assert await script.get_attribute("src") == new_src
        await expect(page.locator("body")).to_have_attribute("data-deployment", "2")
        await page.close()
    finally:
        server.stop()
