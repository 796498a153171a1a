"""A read replica, and how far behind its primary it is.

The replica (QUALITY_REPLICA_URL) has a pool of its own (`Database`), and this
object follows it: once per check interval (a second at most) it reads the
primary's position, `@@gtid_binlog_pos`, then asks the replica to reach it
within a moment (`MASTER_GTID_WAIT`) and where it is (`@@gtid_slave_pos`).
Both are plain variables and a plain function any account may use: the app's
account needs no right beyond its database (`SHOW SLAVE STATUS` and its
Seconds_Behind_Master need REPLICATION CLIENT / SLAVE MONITOR), no table and
no write, so a read-only replica and a primary left alone measure the same.

What it knows is `caught_up_to`: a time (this host's clock) before which
everything the primary had committed is on the replica. It is the time a
check *started* reading the primary's position, for the newest check whose
position the replica has reached, so it errs on the old side by at most one
interval. From it:

* the lag, `now - caught_up_to`: over `max_lag`, reads go to the primary;
* read-your-writes: a client whose last write was at `written_at` (the
  `quality_wrote` cookie, quality/http/writes.py) reads from the replica only
  when `written_at < caught_up_to`, that is once the replica has its write.

A replica that stops answering, or fails a read, is left alone until a check
finds it answering again; `Database.read` (quality/db.py) is the one place that
asks `why_not` and sends a read to one or the other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from typing import TYPE_CHECKING

from asyncmy.errors import MySQLError

from quality.db import DatabaseError, describe

if TYPE_CHECKING:
    from quality.db import Database

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0  # at most; a quarter of a smaller max lag
# How long a check lets the replica take to reach the primary's position: a
# replica that keeps up reaches it in milliseconds, and so reads as no lag.
GTID_WAIT_SECONDS = 0.05
_MAX_SAMPLES = 3600  # a replica that never catches up: remember an hour of checks at most

# Why a read went to the primary when a replica is configured.
UNREACHABLE, LAGGING, OWN_WRITE, FAILED = "unreachable", "lagging", "own_write", "failed"
REASONS = (UNREACHABLE, LAGGING, OWN_WRITE, FAILED)


def gtid_position(text: str) -> dict[int, int]:
    """A GTID position (`domain-server-sequence`, comma-separated) as the
    sequence number reached in each replication domain."""
    position: dict[int, int] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        domain, _server, sequence = item.split("-")
        position[int(domain)] = int(sequence)
    return position


def reached(applied: dict[int, int], target: dict[int, int]) -> bool:
    """Whether a server at `applied` has everything up to `target` (with
    gtid_strict_mode, sequence numbers only grow within a domain)."""
    return all(applied.get(domain, -1) >= sequence for domain, sequence in target.items())


class Replica:
    """The replica's pool, what the last checks found, and the reads' figures."""

    def __init__(self, primary: Database, pool: Database, max_lag: float) -> None:
        self.primary = primary
        self.pool = pool
        self.max_lag = max_lag
        self.interval = min(CHECK_SECONDS, max(0.1, max_lag / 4))
        self.reachable = False
        self.caught_up_to: float | None = None
        self.lag: float | None = None  # seconds behind at the last check; None until known
        self.served = 0  # reads the replica answered
        self.fallbacks: Counter[str] = Counter()  # reads that went to the primary, by reason
        self._samples: deque[tuple[float, dict[int, int]]] = deque(maxlen=_MAX_SAMPLES)
        self._checker: asyncio.Task[None] | None = None
        self._state = "unknown"  # what was last logged: "ok", "lagging", "unreachable"

    async def open(self) -> None:
        await self.pool.open()
        await self.check()  # the first reads already know where it stands
        self._checker = asyncio.create_task(self._check_forever(), name="replica-check")

    async def close(self) -> None:
        if self._checker:
            self._checker.cancel()
            await asyncio.gather(self._checker, return_exceptions=True)
        await self.pool.close()

    def why_not(self, written_at: float | None) -> str | None:
        """None when the replica may answer a read for a client whose last
        write was at `written_at` (epoch seconds, None: no recent write); else
        why the primary must."""
        if not self.reachable:
            return UNREACHABLE
        caught_up_to = self.caught_up_to
        if caught_up_to is None or time.time() - caught_up_to > self.max_lag:
            return LAGGING
        if written_at is not None and written_at >= caught_up_to:
            return OWN_WRITE
        return None

    def failed(self, exc: BaseException) -> str:
        """A read on the replica failed: the primary answers it, and the next
        ones until a check finds the replica well. Returns the reason."""
        self.reachable = False
        self._tell("unreachable", f"a read on the read replica failed ({describe(exc)}); "
                                  "reading from the primary until it answers again")
        return FAILED

    # -- checking --------------------------------------------------------------

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:
                log.exception("read replica check failed")

    async def check(self) -> None:
        """Read the primary's position, then how far the replica has come."""
        started = time.time()
        try:
            async with asyncio.timeout(self.primary.timeout):
                async with self.primary.transaction() as cur:
                    await cur.execute("SELECT @@gtid_binlog_pos")
                    (written,) = await cur.fetchone() or ("",)
        except (DatabaseError, MySQLError, TimeoutError) as exc:
            # The primary's own trouble (its requests say so): the replica's
            # lag is not measured meanwhile, and grows until it is.
            log.debug("replica check: the primary did not answer (%s)", describe(exc))
            return
        if not written:
            self.reachable = False
            self._tell("unreachable", "the primary writes no binary log, so no replica can follow it; "
                                      "reading from the primary")
            return
        self._samples.append((started, gtid_position(written)))
        try:
            async with asyncio.timeout(self.pool.timeout + GTID_WAIT_SECONDS):
                async with self.pool.transaction() as cur:
                    # Left to right: the wait, then where the replica stands after it.
                    await cur.execute("SELECT MASTER_GTID_WAIT(%s, %s), @@gtid_slave_pos",
                                      (written, GTID_WAIT_SECONDS))
                    waited, applied = await cur.fetchone() or (-1, "")
        except (DatabaseError, MySQLError, TimeoutError) as exc:
            self.reachable = False
            self._tell("unreachable", f"read replica unreachable ({describe(exc)}); reading from the primary")
            return
        self.reachable = True
        self._advance(0 if waited == 0 else None, gtid_position(applied))
        self.lag = None if self.caught_up_to is None else max(0.0, started - self.caught_up_to)
        if self.lag is None or self.lag > self.max_lag:
            self._tell("lagging", f"the read replica lags more than {self.max_lag:g}s"
                                  f" ({'unknown' if self.lag is None else f'{self.lag:.1f}s'});"
                                  " reading from the primary")
        else:
            self._tell("ok", "the read replica serves reads")

    def _advance(self, waited: int | None, applied: dict[int, int]) -> None:
        """Move `caught_up_to` to the newest check whose position the replica has."""
        newest = None
        if waited == 0:  # it reached this very check's position
            newest = self._samples[-1][0]
        else:
            for at, position in reversed(self._samples):
                if reached(applied, position):
                    newest = at
                    break
        if newest is None:
            return
        while self._samples and self._samples[0][0] <= newest:
            self._samples.popleft()
        self.caught_up_to = max(self.caught_up_to or newest, newest)

    def _tell(self, state: str, message: str) -> None:
        """Log a change of the replica's state once, not every check."""
        if state == self._state:
            return
        first = self._state == "unknown"
        self._state = state
        if state == "ok":
            if not first:
                log.info(message)
        else:
            log.warning(message)
