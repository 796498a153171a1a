"""The sessions a process trusts without asking the database, and who they are.

Each process trusts a session it checked for up to `TRUST_SECONDS` after the
last proof that nothing was revoked since: the database's revocation
counter (`REVOCATIONS`), which triggers bump on every sign-out and every
change to users, roles' permissions or sessions' ends (migrations 0006 and
0019), and which the scan watcher reads every 0.5 s (quality/scans/feed.py).
quality/http/sessions.py checks sessions and fills it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime

from quality.clock import utc_now

# The revocation counter: the sum of `auth_version`'s rows, one per database
# server that bumped it (migration 0019), so that bumps through two Galera
# nodes never touch the same row; any bump moves the sum.
REVOCATIONS = "SELECT CAST(COALESCE(SUM(version), 0) AS UNSIGNED) FROM auth_version"


@dataclass(frozen=True)
class User:
    id: int
    username: str
    full_name: str
    role: str
    permissions: frozenset[str]
    language: str | None = None  # their choice of UI language; None: the plant's

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def display_name(self) -> str:
        return self.full_name or self.username


# How long a process may act on a session check without fresh proof that no
# session was revoked since (SPEC §6: every end takes effect within 1 s).
TRUST_SECONDS = 1.0
_MAX_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class Checked:
    user: User
    version: int | None  # the auth_version this process knew when the check began
    checked_at: float  # monotonic time the check began
    recheck_after: datetime  # UTC: the session must be slid, or has reached its cap


class SessionCache:
    """The sessions this process checked, keyed by session id. An entry holds
    while no revocation is known since its check, and either the check or the
    latest confirmation of the revocation counter began at most TRUST_SECONDS
    ago: without the watcher (database down) trust lapses a second after the
    check."""

    def __init__(self) -> None:
        self.version: int | None = None
        self.confirmed_at = -math.inf
        self._entries: dict[bytes, Checked] = {}

    def confirm(self, version: int, read_began_at: float) -> None:
        """The revocation counter as read by a statement that began at `read_began_at`."""
        if version != self.version:
            self._entries.clear()
            self.version = version
        self.confirmed_at = max(self.confirmed_at, read_began_at)

    def get(self, session_id: bytes) -> User | None:
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        proof = max(entry.checked_at, self.confirmed_at)
        if (entry.version != self.version or time.monotonic() - proof > TRUST_SECONDS
                or utc_now() >= entry.recheck_after):
            del self._entries[session_id]
            return None
        return entry.user

    def put(self, session_id: bytes, entry: Checked) -> None:
        if entry.version != self.version:
            return  # a revocation arrived while it was being checked
        if len(self._entries) >= _MAX_CACHED:
            self._entries.clear()
        self._entries[session_id] = entry

    def forget(self, session_id: bytes) -> None:
        self._entries.pop(session_id, None)


