"""Sending alerts' notifications from the outbox (`alert_outbox`, written in
the transaction that fires an alert), in the background of each process: the
webhook (`QUALITY_ALERT_WEBHOOK`, a JSON POST) and e-mails
(`QUALITY_SMTP_URL`, one per recipient of the rule, in the recipient's
language when the address is an active user's who chose one, else in the
rule's; looked up as each batch is claimed, so a user who changed language
gets the next e-mail in the new one).

At least once, whatever happens: a row is claimed for LEASE_SECONDS before it
is sent (another process takes it again if this one dies meanwhile), marked
sent only after the receiver accepted it, and otherwise tried again after
2, 4, 8 … seconds (at most an hour apart) until MAX_ATTEMPTS, then marked
failed. Each carries its row's idempotency key (the webhook's
`Idempotency-Key` header, the e-mail's Message-ID) so a receiver can drop a
repeat. Nothing here runs in a save: a receiver that is down, slow or
answering 500 only delays its own notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from quality.alerts.rules import P_CHART
from quality.alerts.text import alert_text, plain
from quality.clock import utc_now
from quality.db import Cursor, Database, DatabaseUnavailable
from quality.i18n import translator
from quality.metrics import Metrics
from quality.settings import Settings

log = logging.getLogger(__name__)

LEASE_SECONDS = 60
MAX_ATTEMPTS = 15
MAX_BACKOFF_SECONDS = 3600
SEND_TIMEOUT = 10.0
BATCH = 20
# The sender's own threads for webhook POSTs (urllib blocks), not the default
# executor, which sign-in hashes passwords on: a receiver holding every POST
# for SEND_TIMEOUT holds only these. A batch's POSTs in turn, each at most
# SEND_TIMEOUT, end within its lease: BATCH / WEBHOOK_THREADS * SEND_TIMEOUT
# is 50 of the LEASE_SECONDS' 60.
WEBHOOK_THREADS = 4
# How often each process looks for notifications due (its own alerts wake it at
# once): retries, and rows a stopped process left. One transaction a look.
IDLE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Notice:
    """One claimed outbox row, with what its message says."""

    id: int
    channel: str
    recipient: str
    key: str
    attempts: int
    alert_id: int
    rule_id: int
    kind: str
    station: str
    order_code: str
    value: Decimal
    threshold: Decimal
    fired_at: datetime
    mail_language: str  # the recipient's own if a user's (`_claim`), else the rule's
    rule_station: str | None
    rule_order: str | None
    period: str  # the rule's (rules.PERIODS)


def backoff(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones."""
    return float(min(2 ** attempts, MAX_BACKOFF_SECONDS))


class Sender:
    def __init__(self, db: Database, settings: Settings, metrics: Metrics, wake: asyncio.Event) -> None:
        self.db = db
        self.settings = settings
        self.metrics = metrics
        self.wake = wake
        self.base_url = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
        self._task: asyncio.Task[None] | None = None
        self._posting: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._posting = ThreadPoolExecutor(WEBHOOK_THREADS, thread_name_prefix="alert-webhook")
        self._task = asyncio.create_task(self._run(), name="alert-outbox")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._posting:
            # Not waiting: a POST under way ends within SEND_TIMEOUT on its own,
            # and its row, not marked sent, is sent again after its lease.
            self._posting.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.send_due()
            except DatabaseUnavailable as exc:
                log.warning("alert outbox: %s", exc)
            except Exception:
                log.exception("alert outbox failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), IDLE_SECONDS)
            self.wake.clear()

    async def send_due(self) -> None:
        """Claim what is due, send it all at once, record each outcome."""
        claimed, pending = await self.db.run(_claim, BATCH)
        finished = await asyncio.gather(*(self._send_one(notice) for notice in claimed))
        self.metrics.notifications_pending.set(pending - sum(finished))

    async def _send_one(self, notice: Notice) -> bool:
        """Send one; whether it is done with (sent, or given up)."""
        try:
            if notice.channel == "webhook":
                await self._post(notice)
            else:
                await self._mail(notice)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:255]
            log.warning("alert notification %s (%s) not sent: %s", notice.id, notice.channel, error)
            given_up = notice.attempts >= MAX_ATTEMPTS
            await self.db.run(_failed, notice, error, given_up)
            if given_up:
                self.metrics.notifications.labels("failed").inc()
            return given_up
        await self.db.run(_sent, notice.id)
        self.metrics.notifications.labels("sent").inc()
        return True

    def link(self, notice: Notice) -> str:
        return f"{self.base_url}/alerts/{notice.alert_id}"

    async def _post(self, notice: Notice) -> None:
        body = json.dumps({
            "alert": notice.alert_id, "rule": notice.rule_id, "kind": notice.kind,
            "station": notice.station, "order": notice.order_code, "value": float(notice.value),
            "threshold": float(notice.threshold), "fired_at": notice.fired_at.isoformat() + "Z",
            "period": notice.period if notice.kind == P_CHART else None, "link": self.link(notice),
        }).encode()
        assert self.settings.alert_webhook and self._posting
        request = urllib.request.Request(self.settings.alert_webhook, data=body, method="POST", headers={
            "Content-Type": "application/json", "Idempotency-Key": notice.key})
        # urllib in a thread: one POST now and then needs no HTTP client library
        await asyncio.get_running_loop().run_in_executor(self._posting, _open, request)

    async def _mail(self, notice: Notice) -> None:
        assert self.settings.smtp_url
        server = urlsplit(self.settings.smtp_url)
        options = parse_qs(server.query)
        sender = options.get("from", [f"quality@{server.hostname}"])[0]
        message = self.message(notice, sender)
        await aiosmtplib.send(
            message, hostname=server.hostname, port=server.port or (465 if server.scheme == "smtps" else 25),
            username=unquote(server.username) if server.username else None,
            password=unquote(server.password) if server.password else None,
            use_tls=server.scheme == "smtps", start_tls=True if options.get("starttls") == ["1"] else None,
            timeout=SEND_TIMEOUT)

    def message(self, notice: Notice, sender: str) -> EmailMessage:
        """The e-mail, in its recipient's language."""
        _ = translator(notice.mail_language)
        text = _(alert_text(notice.kind, notice.period, notice.value, notice.threshold, notice.station,
                            notice.order_code, notice.rule_station, notice.rule_order))
        message = EmailMessage()
        message["Subject"] = _("Quality alert") + ": " + text
        message["From"] = sender
        message["To"] = notice.recipient
        message["Message-ID"] = f"<{notice.key}@quality>"
        message.set_content("\n".join([
            text, "", _("Value: %(value)s, limit: %(limit)s") % {
                "value": plain(notice.value), "limit": plain(notice.threshold)},
            self.link(notice), ""]))
        return message


def _open(request: urllib.request.Request) -> None:
    with urllib.request.urlopen(request, timeout=SEND_TIMEOUT) as response:
        response.read()


async def _claim(cur: Cursor, limit: int) -> tuple[list[Notice], int]:
    """Due rows, taken for LEASE_SECONDS (skipping those another process holds),
    and how many are waiting to be sent, these included."""
    now = utc_now()
    await cur.execute(
        "SELECT o.id, o.channel, o.recipient, o.idempotency_key, o.attempts + 1, a.id, a.rule_id, r.kind,"
        " a.station, a.order_code, a.value, a.threshold, a.fired_at, r.mail_language, r.station,"
        " r.order_code, r.period FROM alert_outbox o JOIN alerts a ON a.id = o.alert_id"
        " JOIN alert_rules r ON r.id = a.rule_id"
        " WHERE o.sent_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= %s"
        " ORDER BY o.next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED", (now, limit))
    found = [Notice(*row) for row in await cur.fetchall()]
    if found:
        await cur.execute(
            "UPDATE alert_outbox SET attempts = attempts + 1, next_attempt_at = %s"
            f" WHERE id IN ({', '.join(['%s'] * len(found))})",
            (now + timedelta(seconds=LEASE_SECONDS), *(notice.id for notice in found)))
        found = await _in_recipients_languages(cur, found)
    await cur.execute("SELECT COUNT(*) FROM alert_outbox WHERE sent_at IS NULL AND failed_at IS NULL")
    (pending,) = await cur.fetchone()
    return found, int(pending)


async def _in_recipients_languages(cur: Cursor, notices: list[Notice]) -> list[Notice]:
    """Each e-mail in its recipient's language where the address is an active
    user's who chose one: one query for the batch, matched by the database
    (users.email's collation, in any case). A plain read, not a locking one:
    claiming never waits for, nor holds up, a change to an account."""
    mails = [notice.id for notice in notices if notice.channel == "email"]
    if not mails:
        return notices
    await cur.execute(
        "SELECT o.id, u.language FROM alert_outbox o JOIN users u ON u.email = o.recipient"
        f" WHERE o.id IN ({', '.join(['%s'] * len(mails))}) AND u.active AND u.language IS NOT NULL",
        mails)
    languages = dict(await cur.fetchall())
    return [dataclasses.replace(notice, mail_language=languages[notice.id]) if notice.id in languages
            else notice for notice in notices]


async def _sent(cur: Cursor, outbox_id: int) -> None:
    await cur.execute("UPDATE alert_outbox SET sent_at = %s, last_error = NULL WHERE id = %s",
                      (utc_now(), outbox_id))


async def _failed(cur: Cursor, notice: Notice, error: str, given_up: bool) -> None:
    now = utc_now()
    await cur.execute(
        "UPDATE alert_outbox SET last_error = %s, next_attempt_at = %s, failed_at = %s WHERE id = %s",
        (error, now + timedelta(seconds=backoff(notice.attempts)), now if given_up else None, notice.id))
