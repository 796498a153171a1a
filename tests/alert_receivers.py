"""What the alerts' notifications are sent to in the tests: a webhook receiver
and an SMTP server (aiosmtpd), both real servers on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from tests.conftest import free_port


class Webhook:
    """Answers each POST with the next of `statuses` (then 200) and, when it
    holds them, only once `release` is set."""

    def __init__(self, statuses: list[int] | None = None, hold: bool = False) -> None:
        self.statuses = list(statuses or [])
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.arrived: list[dict[str, Any]] = []  # every POST read, answered or still held
        self.received: list[tuple[dict[str, str], dict[str, Any], int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrived.append(json.loads(body))
                receiver.release.wait()
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.received.append((dict(self.headers), json.loads(body), status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    @property
    def holding(self) -> int:
        """POSTs read and not answered yet: their senders are still waiting."""
        return len(self.arrived) - len(self.received)

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [body for _headers, body, status in self.received if status == 200]


@contextmanager
def webhook(statuses: list[int] | None = None, hold: bool = False) -> Iterator[Webhook]:
    receiver = Webhook(statuses, hold)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()  # however the test ended, nothing stays held
        receiver.server.shutdown()
        receiver.server.server_close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, str]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, f"smtp://127.0.0.1:{port}?from=quality@plant.example"
    finally:
        controller.stop()
