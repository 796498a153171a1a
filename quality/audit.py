"""The audit log: one row per change, written by `record` inside the
transaction that makes the change, so a change and its audit row commit or
roll back together. Nothing in the app updates or deletes rows (and triggers
from migration 0004 refuse it); `entries` reads them back, newest first."""

from __future__ import annotations

import getpass
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request

from quality.clock import utc_now
from quality.db import Cursor
from quality.http.sessions import client_address

Values = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change and from where."""

    id: int | None  # the user's id; None for the terminal and the app itself
    name: str
    address: str

    @classmethod
    def of(cls, request: Request) -> Actor:
        """The signed-in user of a request that passed its guard."""
        user = request.state.user
        return cls(user.id, user.username, client_address(request))


def terminal() -> Actor:
    """A `quality` command run by someone at a terminal of the server."""
    try:
        name = getpass.getuser()
    except OSError:  # no user name for this uid (a bare container)
        name = "unknown"
    return Actor(None, f"terminal:{name}"[:64], "terminal")


SYSTEM = Actor(None, "system", "")  # the app itself, e.g. the admin account made at first start


async def record(cur: Cursor, actor: Actor, action: str, target: str,
                 before: Values | None, after: Values | None) -> None:
    """Write one audit row in the caller's transaction."""
    await cur.execute(
        "INSERT INTO audit_log (at, actor_id, actor, address, action, target, before_value, after_value)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (utc_now(), actor.id, actor.name[:64], actor.address[:45], action, target[:128],
         _encode(before), _encode(after)),
    )


def _encode(values: Values | None) -> str | None:
    return None if values is None else json.dumps(dict(values), sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Change:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    at: datetime
    actor: str
    address: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @property
    def changes(self) -> list[Change]:
        """Each field whose value differs, before → after."""
        before, after = self.before or {}, self.after or {}
        return [
            Change(key, before.get(key), after.get(key))
            for key in sorted(before.keys() | after.keys())
            if before.get(key) != after.get(key)
        ]


@dataclass(frozen=True, slots=True)
class Filters:
    actor: str = ""
    action: str = ""  # a prefix: "user" finds user.create, user.update, ...
    since: datetime | None = None
    until: datetime | None = None


async def entries(cur: Cursor, filters: Filters, before_id: int | None, limit: int) -> list[Entry]:
    """Newest first, at most `limit`, older than `before_id` (keyset pagination)."""
    where, params = ["TRUE"], []
    if filters.actor:
        where.append("actor = %s")
        params.append(filters.actor)
    if filters.action:
        where.append("action LIKE %s")
        params.append(filters.action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if filters.since:
        where.append("at >= %s")
        params.append(filters.since)
    if filters.until:
        where.append("at < %s")
        params.append(filters.until)
    if before_id is not None:
        where.append("id < %s")
        params.append(before_id)
    await cur.execute(
        "SELECT id, at, actor, address, action, target, before_value, after_value FROM audit_log"
        f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s",
        (*params, limit),
    )
    return [
        Entry(id_, at, actor, address, action, target, _decode(before), _decode(after))
        for id_, at, actor, address, action, target, before, after in await cur.fetchall()
    ]


def _decode(text: str | None) -> dict[str, Any] | None:
    return None if text is None else json.loads(text)
