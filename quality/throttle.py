"""Password checks throttled in the database, so every process sees the same
counts. Signing in (quality/pages/account/sign_in.py) and changing one's own password
(quality/accounts.py) check a password only through `verify_counted`.

Counters. A check counts against three counters (table `login_attempts`): its
(address, user name) pair, its user name and its address. Each holds
`failures` (attempts counted and not taken back, those still being checked
included), `pending` (how many of those are still being checked) and `last_at`
(its latest counted attempt); a counter is forgotten after FORGET_AFTER
without one.

Counted first. An attempt is counted before its password is checked, under row
locks on its counters (taken in primary-key order), and settled after: a right
password takes its attempt back and its pair starts afresh; a wrong one stays
counted. So attempts made at once see each other: a burst of wrong passwords
meets the bounds after exactly as many checks as the same guesses made one
after the other.

Bounds. Each counter allows some failures free, then a wait after each
further one that doubles up to MAX_WAIT (`BOUNDS`): the pair's is the tight one
(one station guessing one user's password); the user's stops guessing spread
over addresses; the address's, looser, stops one address guessing many users'.

A stranger never locks the rightful user out. A stranger's failures count
against the user too, so the user bound alone would lock the user out of their
own station. When most of the user's failures come from other addresses, the
user bound delays this station by at most STRANGER_WAIT after its own last
attempt (or the user's, if that came first), whatever its own few typos; the
station's own failures still meet the pair bound in full. Guessing from many
addresses thus gets, at each address, the pair's and the address's allowance,
its attempts at least STRANGER_WAIT apart once the user bound is reached.

A right password is never refused for attempts still being checked. Counting
first makes right passwords look like failures until they are checked: a shift
change behind one address (more people than the address's free failures), or
one user at several terminals behind it, would be refused for the attempts
ahead of it. So an attempt that the bounds refuse only because of attempts
still being checked (it would pass were they all right) is not refused: it
waits, up to QUEUE_AT_MOST, for them to be settled and is counted again. If
they were right they were taken back and it goes on; if wrong, the bounds now
refuse it as they would have refused it after them one by one. A parallel
burst of wrong passwords thus gets exactly as many checks as a sequential one,
and a right password is delayed by the checks ahead of it, not refused.

Every transaction here is safe to run again and goes through `Database.run`.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from quality.clock import utc_now
from quality.db import Cursor, Database
from quality.i18n import lazy_plural
from quality.passwords import DUMMY_HASH, verify_password


@dataclass(frozen=True, slots=True)
class Bound:
    """Failed attempts allowed without waiting, then a wait after each further
    one that starts at `first_wait` and doubles, up to MAX_WAIT."""

    free: int
    first_wait: timedelta

    def wait_after(self, failures: int) -> timedelta:
        if failures < self.free:
            return timedelta(0)
        return min(self.first_wait * 2 ** min(failures - self.free, 16), MAX_WAIT)


MAX_WAIT = timedelta(minutes=15)
BOUNDS = {
    "pair": Bound(free=5, first_wait=timedelta(seconds=15)),
    "user": Bound(free=10, first_wait=timedelta(seconds=15)),
    "address": Bound(free=30, first_wait=timedelta(seconds=15)),
}
# The most the user bound delays a station holding few of the user's failures.
STRANGER_WAIT = timedelta(seconds=10)
# Failures are forgotten after this long without an attempt.
FORGET_AFTER = timedelta(hours=1)
# How long an attempt waits for the attempts still being checked ahead of it.
QUEUE_AT_MOST = 10.0
_RECOUNT_AFTER = (0.05, 0.15)  # seconds between counts while it waits, drawn at random
_PAUSES = random.Random()
_FORGET_BATCH = 500


class Throttled(Exception):
    """Too many failed attempts: the password was not checked; try after `wait`."""

    def __init__(self, wait: timedelta) -> None:
        super().__init__(f"throttled for {wait}")
        self.wait = wait


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a right password unlocks: the account as sign-in needs it."""

    user_id: int
    password_hash: str
    active: bool
    must_change_password: bool


@dataclass(frozen=True, slots=True)
class _Counter:
    failures: int
    pending: int
    last_at: datetime


@dataclass(frozen=True, slots=True)
class _Count:
    """A try at counting an attempt: counted when `wait` is zero."""

    wait: timedelta
    wait_if_right: timedelta = timedelta(0)  # the wait were the attempts being checked all right
    credentials: Credentials | None = None


async def verify_counted(db: Database, username: str, address: str, password: str
                         ) -> Credentials | None:
    """The account's credentials if `password` is the password of `username`,
    else None (an unknown user name too, at the same cost). Counted before the
    check, settled after it; `Throttled` instead when the bounds refuse it."""
    counters = _counters(username, address)
    credentials = await _count(db, counters, username)
    stored = credentials.password_hash if credentials else DUMMY_HASH
    right = False
    try:
        right = await asyncio.to_thread(verify_password, password, stored)
    finally:  # whatever happens, the attempt stops being pending
        await db.run(_settle, counters, right)
    return credentials if right else None


async def forget_old_attempts(db: Database) -> None:
    """Delete a batch of counters that have been forgotten; rows another
    transaction holds are left for the next time, so this never waits."""
    await db.run(_forget_old)


def sign_in_wait_message(wait: timedelta) -> str:
    num, minutes = _shown(wait)
    if minutes:
        return lazy_plural("Too many failed sign-in attempts. Wait %(num)s minute, then try again.",
                           "Too many failed sign-in attempts. Wait %(num)s minutes, then try again.",
                           num)
    return lazy_plural("Too many failed sign-in attempts. Wait %(num)s second, then try again.",
                       "Too many failed sign-in attempts. Wait %(num)s seconds, then try again.", num)


def password_wait_message(wait: timedelta) -> str:
    num, minutes = _shown(wait)
    if minutes:
        return lazy_plural("Too many wrong passwords. Wait %(num)s minute, then try again.",
                           "Too many wrong passwords. Wait %(num)s minutes, then try again.", num)
    return lazy_plural("Too many wrong passwords. Wait %(num)s second, then try again.",
                       "Too many wrong passwords. Wait %(num)s seconds, then try again.", num)


def _shown(wait: timedelta) -> tuple[int, bool]:
    """The wait rounded up: in seconds under two minutes, else in minutes (True)."""
    seconds = max(1, int(wait.total_seconds() + 0.999))
    return (seconds, False) if seconds < 120 else ((seconds + 59) // 60, True)


def _counters(username: str, address: str) -> list[tuple[str, str]]:
    """The attempt's counters, in primary-key order, the order they are locked in."""
    return [("pair", f"{address} {username}"), ("user", username), ("address", address)]


async def _count(db: Database, counters: list[tuple[str, str]], username: str) -> Credentials | None:
    """Count the attempt, waiting while only attempts still being checked hold it back."""
    give_up_at = time.monotonic() + QUEUE_AT_MOST
    while True:
        count = await db.run(_count_once, counters, username)
        if not count.wait:
            return count.credentials
        if count.wait_if_right or time.monotonic() >= give_up_at:
            raise Throttled(count.wait)
        await asyncio.sleep(_PAUSES.uniform(*_RECOUNT_AFTER))


async def _count_once(cur: Cursor, counters: list[tuple[str, str]], username: str) -> _Count:
    now = utc_now()
    # Creating or locking the counters first makes concurrent attempts on the same
    # pair, user or address queue here, each seeing the counts the others left.
    await cur.executemany(
        "INSERT INTO login_attempts (scope, subject, failures, pending, last_at)"
        " VALUES (%s, %s, 0, 0, %s)"
        " ON DUPLICATE KEY UPDATE failures = IF(last_at < %s, 0, failures),"
        " pending = IF(last_at < %s, 0, pending)",
        [(scope, subject, now, now - FORGET_AFTER, now - FORGET_AFTER) for scope, subject in counters],
    )
    await cur.execute(f"SELECT scope, failures, pending, last_at FROM login_attempts WHERE {_MATCH}",
                      _flat(counters))
    found = {scope: _Counter(*values) for scope, *values in await cur.fetchall()}
    wait = _wait(found, now, pending_failed=True)
    if wait:
        return _Count(wait, _wait(found, now, pending_failed=False))
    await cur.execute(
        "UPDATE login_attempts SET failures = failures + 1, pending = pending + 1, last_at = %s"
        f" WHERE {_MATCH}", (now, *_flat(counters)))
    await cur.execute(
        "SELECT id, password_hash, active, must_change_password FROM users WHERE username = %s",
        (username,))
    row = await cur.fetchone()
    return _Count(timedelta(0), credentials=None if row is None else Credentials(
        row[0], row[1], bool(row[2]), bool(row[3])))


def _wait(found: dict[str, _Counter], now: datetime, pending_failed: bool) -> timedelta:
    """How long the bounds hold this attempt back, counting the attempts still
    being checked as failures or (`pending_failed` false) as taken back."""
    counts = {scope: max(0, counter.failures - (0 if pending_failed else counter.pending))
              for scope, counter in found.items()}
    until = {}
    for scope, counter in found.items():
        # A counter owing no wait holds nothing back, however recent its last
        # attempt (one counted after this one began, by a transaction it waited for).
        if wait := BOUNDS[scope].wait_after(counts[scope]):
            until[scope] = counter.last_at + wait
    if "user" in until and counts["user"] - counts["pair"] > counts["pair"]:  # mostly others' failures
        pair, user = found["pair"], found["user"]
        until["user"] = min(until["user"], min(pair.last_at, user.last_at) + STRANGER_WAIT)
    return max([timedelta(0), *(moment - now for moment in until.values())])


async def _settle(cur: Cursor, counters: list[tuple[str, str]], right: bool) -> None:
    """The attempt was checked: a right password was no failure, so its pair
    starts afresh and the user's and address's counts drop by it; a wrong one
    stays counted."""
    if not right:
        await cur.execute(f"UPDATE login_attempts SET pending = GREATEST(pending, 1) - 1 WHERE {_MATCH}",
                          _flat(counters))
        return
    pair, *others = counters
    await cur.execute("DELETE FROM login_attempts WHERE scope = %s AND subject = %s", pair)
    await cur.execute(
        "UPDATE login_attempts SET failures = GREATEST(failures, 1) - 1, pending = GREATEST(pending, 1) - 1"
        " WHERE (scope = %s AND subject = %s) OR (scope = %s AND subject = %s)", _flat(others))


async def _forget_old(cur: Cursor) -> None:
    await cur.execute(
        "SELECT scope, subject FROM login_attempts WHERE last_at < %s LIMIT %s FOR UPDATE SKIP LOCKED",
        (utc_now() - FORGET_AFTER, _FORGET_BATCH))
    keys = [(scope, subject) for scope, subject in await cur.fetchall()]
    if keys:
        match = " OR ".join(["(scope = %s AND subject = %s)"] * len(keys))
        await cur.execute(f"DELETE FROM login_attempts WHERE {match}", _flat(keys))


_MATCH = " OR ".join(["(scope = %s AND subject = %s)"] * 3)


def _flat(counters: list[tuple[str, str]]) -> tuple[str, ...]:
    return tuple(value for counter in counters for value in counter)
