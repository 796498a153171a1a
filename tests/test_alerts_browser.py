"""The alerts' done-when flow in Chromium, across two app processes: an admin
makes a rule, an operator's scans breach it, a supervisor's open scan list
(served by the other process) shows the alert (how soon is measured by
`bench/alerts_bench.py --banner`), the webhook receiver and the SMTP server
each get one notification, the supervisor acknowledges it with a comment and
the audit log shows it. And an open banner whose stream was refused while the
database was away shows alerts again once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest
from playwright.async_api import expect

from quality.settings import Settings
from tests.alert_receivers import smtp_server, webhook
from tests.conftest import LiveServer, browser_login, csrf_token_in
from tests.database_outage import app_behind_relay, until_health, until_refused
from tests.scanner import scan
from tests.test_alerts_live import fg_scan
from tests.test_cli import quality
from tests.test_live_streams import signed_in

pytestmark = pytest.mark.browser


async def test_an_admins_rule_fires_on_an_operators_scans_and_a_supervisor_acknowledges_it(
    settings: Settings, browser: Any, make_user: Any
) -> None:
    make_user("ada", "admin")
    make_user("olivia", "operator")
    make_user("sven", "supervisor")
    with webhook() as hook, smtp_server() as (mailbox, smtp_url):
        env = {"QUALITY_ALERT_WEBHOOK": hook.url, "QUALITY_SMTP_URL": smtp_url}
        first, second = LiveServer(settings, env), LiveServer(settings, env)
        await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
        try:
            admin = await (await browser.new_context()).new_page()
            await browser_login(admin, first, "ada")
            await admin.goto(first.url + "/admin/alerts")
            await admin.locator("#station").select_option("fg")
            await admin.get_by_label("Rejection rate above (%)").fill("150")
            await admin.locator("#pieces").fill("3")
            await admin.get_by_role("button", name="Add rule").click()
            await expect(admin.get_by_test_id("threshold-error")).to_contain_text("below 100")
            await admin.get_by_label("Rejection rate above (%)").fill("50")
            await admin.get_by_label("E-mail recipients").fill("qa@plant.example")
            await admin.get_by_role("button", name="Add rule").click()
            await expect(admin.get_by_test_id("notice")).to_have_text("Alert rule added.")
            await expect(admin.get_by_test_id("rule-row")).to_contain_text(
                "more than 50% of the last 3 scans rejected")

            supervisor = await (await browser.new_context()).new_page()
            await browser_login(supervisor, second, "sven")
            await supervisor.goto(second.url + "/scans")
            banner = supervisor.get_by_role("alert").filter(has_text="Quality alert")
            await expect(banner).to_have_count(0)

            operator = await (await browser.new_context()).new_page()
            await browser_login(operator, first, "olivia")
            await operator.goto(first.url + "/fgscan")
            for number, defect in enumerate(["101", "000", "102"], 1):
                await scan(operator, "OP07", f"CP00012345-{number:04d}", "OC12", "OC13", defect)
            await expect(operator.get_by_test_id("scan-result")).to_have_attribute("data-outcome",
                                                                                    "rejected")
            await expect(banner).to_contain_text("Finished goods scan: 66.67% of the last scans rejected")

            await asyncio.to_thread(_wait_for, lambda: len(hook.accepted) == 1 and len(mailbox.messages) == 1)
            await asyncio.sleep(1)  # nothing more comes
            assert len(hook.accepted) == 1 and len(mailbox.messages) == 1

            await banner.get_by_role("link").click()
            await supervisor.get_by_label("Comment").fill("Die changed, line restarted")
            await supervisor.get_by_role("button", name="Acknowledge").click()
            await expect(supervisor.get_by_test_id("notice")).to_have_text("Alert acknowledged.")
            await expect(banner).to_have_count(0)
            await expect(supervisor.get_by_test_id("alert-row")).to_contain_text(
                "acknowledged by sven: Die changed, line restarted")

            await admin.goto(first.url + "/admin/audit?action=alert.acknowledge")
            rows = admin.get_by_test_id("audit-row")
            await expect(rows).to_have_count(1)
            await expect(rows).to_contain_text("sven acknowledged the alert")
            await expect(rows).to_contain_text("Die changed, line restarted")
            await admin.goto(first.url + "/admin/audit?action=alert_rule.create")
            await expect(rows.filter(has_text="added the alert rule")).to_have_count(1)
        finally:
            first.stop()
            second.stop()


async def test_the_banner_shows_alerts_again_once_the_database_is_back(
    settings: Settings, browser: Any, make_user: Any
) -> None:
    assert settings.database_url
    make_user("olivia", "operator")
    make_user("sven", "supervisor")
    added = await asyncio.to_thread(quality, settings.database_url,
                                    "alerts", "add", "--station", "fg", "--same-defect", "2")
    assert added.returncode == 0, added.stderr
    async with app_behind_relay(settings) as (server, relay):
        context = await browser.new_context()
        await context.clock.install()  # the banner's wait before asking again, moved on by the test
        supervisor = await context.new_page()
        await browser_login(supervisor, server, "sven")
        await supervisor.goto(server.url + "/alerts")
        banner = supervisor.get_by_role("alert").filter(has_text="Quality alert")
        await expect(banner).to_have_count(0)

        await relay.cut()
        # The app ends the banner's stream and refuses it when the browser asks
        # again (a 503, not a stream): the browser's stream gives up on it.
        await until_refused(server, "/alerts/stream")
        await relay.restore()
        await until_health(server, 200)
        operator = await signed_in(server, "olivia")
        try:
            station = (await operator.get("/fgscan")).text
            for number in (1, 2):
                await fg_scan(operator, csrf_token_in(station), number)
        finally:
            await operator.aclose()
        await _shown_again(context, banner, "the same defect 2 times in a row")
        await context.close()


async def _shown_again(context: Any, banner: Any, text: str) -> None:
    """Until the banner shows `text`, moving the page's clock on past the
    banner's wait before it opens a refused stream again (5 s)."""
    for _ in range(10):
        await context.clock.fast_forward(5_000)
        with contextlib.suppress(AssertionError):
            await expect(banner).to_contain_text(text, timeout=2000)
            return
    raise AssertionError(f"the banner never showed {text!r}")


def _wait_for(check: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.1)
