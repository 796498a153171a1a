"""The alerts' notifications: sent from the outbox by the background sender,
to a real webhook receiver and a real SMTP server on 127.0.0.1; retried with
backoff after a 500, once each (idempotency key), counted on /metrics, and a
receiver holding a POST never holds up a save nor, holding every POST, a sign-in."""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Any

from starlette.testclient import TestClient

from quality.alerts import outbox
from quality.alerts.outbox import backoff
from quality.app import create_app
from quality.settings import Settings
from tests.admin_support import query, sign_in
from tests.alert_receivers import smtp_server, webhook
from tests.conftest import eventually, login
from tests.test_alerts import add_rule, fg_scans


def test_a_fired_alert_reaches_the_webhook_after_a_500_and_each_recipient_once_in_their_language(
    settings: Settings, make_user: Any
) -> None:
    with webhook(statuses=[500]) as hook, smtp_server() as (mailbox, smtp_url):
        configured = dataclasses.replace(settings, alert_webhook=hook.url, smtp_url=smtp_url,
                                         public_url="https://quality.plant.example")
        with TestClient(create_app(configured), client=("127.0.0.1", 50000)) as client:
            token = sign_in(client, make_user, "ada", "admin")
            assert add_rule(client, token, pieces="2", threshold="50", mail_language="ro",
                            recipients="qa@plant.example, sef@plant.example").status_code == 303
            fg_scans(client, token, ["101", "102"])
            assert eventually(lambda: len(hook.accepted) == 1 and len(mailbox.messages) == 2)
            (alert_id,) = query(settings, "SELECT id FROM alerts")[0]
            keys = {headers["Idempotency-Key"] for headers, _body, _status in hook.received}
            assert len(hook.received) == 2 and len(keys) == 1  # the 500, then the retry, one key
            assert hook.accepted[0] == {
                "alert": alert_id, "rule": 1, "kind": "rejection_rate", "station": "fg",
                "order": "CP00012345", "value": 100.0, "threshold": 50.0,
                "fired_at": hook.accepted[0]["fired_at"], "period": None,
                "link": f"https://quality.plant.example/alerts/{alert_id}"}
            assert sorted(to for (to,), _message in mailbox.messages) == [
                "qa@plant.example", "sef@plant.example"]
            message = mailbox.messages[0][1]
            assert message["Subject"].startswith("Alertă de calitate")
            body = message.get_payload(decode=True).decode()
            assert f"https://quality.plant.example/alerts/{alert_id}" in body
            assert eventually(lambda: query(settings, "SELECT COUNT(*) FROM alert_outbox"
                                                      " WHERE sent_at IS NULL") == [(0,)])
            metrics = client.get("/metrics").text
            assert 'quality_alert_notifications_total{outcome="sent"} 3.0' in metrics
            assert "quality_alert_notifications_pending 0.0" in metrics


def test_each_recipient_gets_the_mail_in_their_own_language_as_it_is_when_sent(
    settings: Settings, make_user: Any
) -> None:
    with smtp_server() as (mailbox, smtp_url), TestClient(
            create_app(dataclasses.replace(settings, smtp_url=smtp_url)), client=("127.0.0.1", 50000)
    ) as client:
        token = sign_in(client, make_user, "ada", "admin")
        for name, language in (("rita", "ro"), ("eddie", "en")):
            make_user(name, "supervisor")
            query(settings, f"UPDATE users SET language = '{language}',"
                            f" email = '{name.capitalize()}@Plant.example' WHERE username = '{name}'")
        assert add_rule(client, token, pieces="1", threshold="50", mail_language="en", recipients=(
            "RITA@plant.EXAMPLE, eddie@plant.example, nobody@plant.example")).status_code == 303
        fg_scans(client, token, ["101"])
        assert eventually(lambda: len(mailbox.messages) == 3)
        assert subjects(mailbox.messages) == {
            "RITA@plant.EXAMPLE": "Alertă de calitate", "eddie@plant.example": "Quality alert",
            "nobody@plant.example": "Quality alert"}
        (rita,) = query(settings, "SELECT id FROM users WHERE username = 'rita'")[0]
        assert client.post(f"/admin/users/{rita}", data={
            "csrf_token": token, "full_name": "", "role": "supervisor", "active": "on",
            "language": "en", "email": "Rita@Plant.example"}, follow_redirects=False).status_code == 303
        fg_scans(client, token, ["000", "101"], start=2)  # re-armed, then fired again
        assert eventually(lambda: len(mailbox.messages) == 6)
        assert set(subjects(mailbox.messages[3:]).values()) == {"Quality alert"}


def subjects(messages: list[tuple[list[str], Any]]) -> dict[str, str]:
    """Each recipient's subject, up to its colon."""
    return {to: message["Subject"].split(":")[0] for (to,), message in messages}


def test_a_slow_or_absent_receiver_never_slows_a_save(
    settings: Settings, make_user: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(outbox, "SEND_TIMEOUT", 300.0)  # the sender waits for the held POST, never gives up
    with webhook(hold=True) as hook:
        configured = dataclasses.replace(settings, alert_webhook=hook.url,
                                         smtp_url="smtp://127.0.0.1:9")  # nothing listens there
        with TestClient(create_app(configured), client=("127.0.0.1", 50000)) as client:
            token = sign_in(client, make_user, "ada", "admin")
            add_rule(client, token, pieces="1", threshold="50", recipients="qa@plant.example")
            # Ends the test should a save wait for the POST: it then returns after the release.
            watchdog = threading.Timer(30.0, hook.release.set)
            watchdog.start()
            try:
                fg_scans(client, token, ["101"])  # fires: its POST reaches the receiver, which holds it
                assert eventually(lambda: len(hook.arrived) > 0)
                fg_scans(client, token, ["000", "101", "000", "101"], start=2)  # re-arming, firing
                held_meanwhile = hook.holding > 0
            finally:
                watchdog.cancel()
                hook.release.set()
            # Each save answered as saved (fg_scans checks the 200) while the POST was unanswered.
            assert held_meanwhile, "a save waited until the webhook's receiver answered"
            assert query(settings, "SELECT COUNT(*) FROM scans") == [(5,)]
            assert eventually(lambda: len(hook.received) == 3)
            assert eventually(lambda: query(
                settings, "SELECT COUNT(*) FROM alert_outbox WHERE channel = 'email' AND attempts > 0"
                " AND last_error IS NOT NULL AND sent_at IS NULL") == [(3,)])


def test_a_receiver_holding_every_post_never_holds_up_a_sign_in(
    settings: Settings, make_user: Any, monkeypatch: Any
) -> None:
    # More POSTs than the event loop's default executor has threads (sized as
    # ThreadPoolExecutor sizes it), all claimed at the sender's first look, none
    # giving up while the receiver holds them.
    held = min(32, (os.cpu_count() or 1) + 4)
    monkeypatch.setattr(outbox, "BATCH", max(outbox.BATCH, held))
    monkeypatch.setattr(outbox, "SEND_TIMEOUT", 300.0)
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as client:
        token = sign_in(client, make_user, "ada", "admin")
        make_user("bob", "supervisor")
        add_rule(client, token, pieces="1", threshold="50")
        fg_scans(client, token, ["101", "000"] * held)
        # Each breach fires in a task beside its save: all fired before the app stops.
        assert eventually(lambda: query(settings, "SELECT COUNT(*) FROM alerts") == [(held,)])
    # The webhook rows the engine writes when one is configured, due at once.
    query(settings, "INSERT INTO alert_outbox"
                    " (alert_id, channel, recipient, idempotency_key, next_attempt_at)"
                    " SELECT id, 'webhook', '', MD5(id), fired_at FROM alerts")
    with webhook(hold=True) as hook:
        configured = dataclasses.replace(settings, alert_webhook=hook.url)
        with TestClient(create_app(configured), client=("127.0.0.1", 50000)) as client:
            # Ends the test should the sign-in wait for the POSTs: it then signs in after the release.
            watchdog = threading.Timer(30.0, hook.release.set)
            try:
                assert eventually(lambda: len(hook.arrived) > 0)  # every POST of the batch is under way
                watchdog.start()
                signed_in = login(client, "bob")
                held_meanwhile = not hook.release.is_set()
            finally:
                watchdog.cancel()
                hook.release.set()
            assert signed_in.status_code == 303
            assert held_meanwhile, "the sign-in waited until the webhook's receiver answered"
            assert eventually(lambda: len(hook.accepted) == held)
            assert sorted(body["alert"] for body in hook.accepted) == [
                alert_id for (alert_id,) in query(settings, "SELECT id FROM alerts ORDER BY id")]


def test_backoff_doubles_and_is_bounded() -> None:
    assert [backoff(n) for n in (1, 2, 3, 10, 40)] == [2, 4, 8, 1024, 3600]
