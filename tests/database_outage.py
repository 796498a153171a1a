"""A live server whose database can be cut and restored while its pages stay
open in a browser: a relay on a unix socket between the app and the real
database, and the waits that tell when the app has noticed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import urllib.error
import urllib.request
from typing import Any

from quality.settings import Settings
from tests.conftest import LiveServer, server_dir


class DatabaseRelay:
    """A unix socket the app takes for its database's, passing bytes both ways
    to the real one: `cut` makes the database unreachable for that app alone
    (its connections dropped, new ones refused), `restore` brings it back, while
    the test still reaches the database directly."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.directory = server_dir("relay-")
        self.socket = self.directory / "db.sock"
        self.path = str(self.socket)
        self.server: asyncio.AbstractServer | None = None
        self.open: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self.server = await asyncio.start_unix_server(self._relay, path=self.path)

    async def cut(self) -> None:
        assert self.server
        self.server.close()
        self.socket.unlink(missing_ok=True)
        for writer in self.open:
            writer.transport.abort()
        await self.server.wait_closed()

    async def close(self) -> None:
        if self.server and self.server.is_serving():
            await self.cut()
        shutil.rmtree(self.directory, ignore_errors=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream = await asyncio.open_unix_connection(self.database)
        except OSError:
            writer.transport.abort()
            return
        self.open |= {writer, upstream}
        await asyncio.gather(_pipe(reader, upstream), _pipe(upstream_reader, writer))
        self.open -= {writer, upstream}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


def through(relay: DatabaseRelay, settings: Settings) -> Settings:
    assert settings.database_url
    return dataclasses.replace(settings, database_url=dataclasses.replace(
        settings.database_url, unix_socket=relay.path))


@contextlib.asynccontextmanager
async def app_behind_relay(settings: Settings) -> Any:
    """A live server (plant time: Europe/Bucharest) reaching its database through a relay."""
    assert settings.database_url and settings.database_url.unix_socket
    relay = DatabaseRelay(settings.database_url.unix_socket)
    await relay.restore()
    server = LiveServer(through(relay, settings), {"QUALITY_TIMEZONE": "Europe/Bucharest"})
    try:
        await asyncio.to_thread(server.start)
        yield server, relay
    finally:
        await asyncio.to_thread(server.stop)
        await relay.close()


def health(server: LiveServer) -> int:
    try:
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def until_health(server: LiveServer, status: int) -> None:
    """Until the app's /healthz answers `status`: 503 once its database is gone, 200 once back."""
    for _ in range(300):
        if await asyncio.to_thread(health, server) == status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"/healthz never answered {status}")


async def until_refused(server: LiveServer, path: str) -> None:
    """Until the app has refused a GET of `path` for want of its database (a
    browser's live stream asking again, once the app has ended it)."""
    for _ in range(300):
        if f"database unavailable for GET {path}" in server.output():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"GET {path} was never refused")
