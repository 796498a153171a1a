"""Firing alerts as scans are saved, in whichever process saves them.

Each process keeps every rule's window (quality/alerts/windows.py), fed by
the process's one scan watcher (quality/scans/feed.py): its own saves as they
commit, other processes' scans from the watcher's poll, so the windows cover
every scan and no viewer costs a query. A window that crosses into a breach on
a scan this process saved fires the rule: one transaction sets the rule's
`breached` flag only if it was clear, counts the breach and inserts the alert
keyed by (rule, breach) with its notifications (the outbox), so a breach seen
by several processes or hosts fires once. A window that clears on this
process's save re-arms the rule the same way. That work runs beside the save,
never in it: a scan's answer does not wait for it.

The same task polls, every 2 s per process, which rules are in force (a rule
added or removed anywhere is picked up) and the open alerts, for the banners
(`AlertBoard`): one small transaction, whatever the number of pages open.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from quality.alerts.rules import Rule, in_force
from quality.alerts.windows import Window, window_for
from quality.clock import utc_now
from quality.db import Cursor, Database, DatabaseUnavailable
from quality.scans.store import Saved, ScanRow
from quality.shifts import Shifts

log = logging.getLogger(__name__)

OPEN_SHOWN = 20  # the open alerts a banner lists
SCAN_IDS_CHARS = 2000  # the size of alerts.scan_ids (migration 0015)
# What a breach found: value, limit, the scans that made it, the breaching scan's station and order.
Snapshot = tuple[Decimal, Decimal, list[int], str, str]


@dataclass(frozen=True, slots=True)
class OpenAlert:
    id: int
    rule_id: int
    kind: str
    fired_at: datetime
    station: str
    order_code: str
    value: Decimal
    threshold: Decimal
    defect_code: str | None
    at_station: bool
    rule_station: str | None
    rule_order: str | None
    period: str  # the rule's (rules.PERIODS)


class AlertBoard:
    """The open alerts, as of the last poll (or this process's last firing):
    what every banner of this process shows, read once for all of them."""

    def __init__(self) -> None:
        self.open: tuple[OpenAlert, ...] = ()
        self.version = 0
        self._changed = asyncio.Event()

    def replace(self, found: Sequence[OpenAlert]) -> None:
        found = tuple(found)
        if found != self.open:
            self.open = found
            self.version += 1
            self._changed.set()
            self._changed = asyncio.Event()

    def at_station(self, station: str) -> tuple[OpenAlert, ...]:
        """The open alerts whose rule asks to be shown at this station."""
        return tuple(alert for alert in self.open if alert.at_station and alert.station == station)

    def next_change(self) -> asyncio.Event:
        """Set at the next change; take it before reading, so no change slips by."""
        return self._changed


@dataclass(frozen=True, slots=True)
class Channels:
    """Where a fired alert's notifications go (the outbox sends them)."""

    webhook: bool
    email: bool


class AlertEngine:
    def __init__(self, db: Database, board: AlertBoard, channels: Channels, shifts: Shifts,
                 interval: float = 2.0) -> None:
        self.db = db
        self.shifts = shifts
        self.board = board
        self.channels = channels
        self.interval = interval
        self.fired = asyncio.Event()  # set after each alert fired here (the outbox sender waits on it)
        self._windows: list[Window] = []
        self._rules_seen: tuple[int, int] | None = None
        self._loading: list[ScanRow] | None = None  # scans seen while the windows load
        self._locks: dict[int, asyncio.Lock] = {}
        self._polling = asyncio.Lock()  # the background poll and a page's own, one at a time
        self._work: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self.poll()
        except DatabaseUnavailable as exc:
            log.warning("alert rules not loaded yet: %s", exc)
        self._task = asyncio.create_task(self._run(), name="alert-engine")

    async def stop(self) -> None:
        tasks = [task for task in (self._task, *self._work) if task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def observe(self, saved: Sequence[Saved], own: bool) -> None:
        """Scans committed, in id order: `own` when this process saved them (and
        so acts on the breaches they make). Repeats of a saved submission count once."""
        for item in saved:
            if item.repeated:
                continue
            row = item.row
            if self._loading is not None:
                self._loading.append(row)
            for window in self._windows:
                if not window.rule.matches(row.station, row.order_code):
                    continue
                window.add(row.id, row.defect_code, row.created_at)
                if own and window.breached != window.noted_breached:
                    self._act(window, row)

    def _act(self, window: Window, row: ScanRow) -> None:
        window.noted_breached = breached = window.breached
        snapshot = (window.value, window.limit, window.scan_ids, row.station, row.order_code)
        task = asyncio.create_task(self._transition(window, breached, snapshot))
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    async def _transition(self, window: Window, breached: bool,
                          snapshot: Snapshot) -> None:
        rule = window.rule
        lock = self._locks.setdefault(rule.id, asyncio.Lock())
        try:
            async with lock:  # this process's fire and re-arm of a rule, in the order seen
                if not breached:
                    await self.db.run(rearm, rule.id)
                    return
                if await self.db.run(fire, rule, snapshot, self.channels, utc_now()) is not None:
                    self.fired.set()
                    await self.refresh()
        except Exception:
            # Not recorded: the next scan of this process tries again.
            window.noted_breached = not breached
            log.exception("alert rule %s: %s not recorded", rule.id, "firing" if breached else "re-arming")

    async def poll(self) -> None:
        """Rules in force (reloaded when one was added or removed) and the open alerts."""
        async with self._polling:
            await self._poll()

    async def _poll(self) -> None:
        async with self.db.transaction() as cur:
            await cur.execute("SELECT COALESCE(MAX(id), 0), COUNT(removed_at) FROM alert_rules")
            seen = tuple(int(value) for value in await cur.fetchone())
            self.board.replace(await _open_alerts(cur))
        if seen != self._rules_seen:
            await self._load_windows()
            self._rules_seen = seen  # type: ignore[assignment]

    async def refresh(self) -> None:
        async with self.db.transaction() as cur:
            self.board.replace(await _open_alerts(cur))

    async def _load_windows(self) -> None:
        """Each rule's window from its last scans in the database; scans this
        process sees meanwhile are added after, those the load did not read."""
        self._loading = []
        try:
            # One snapshot: the newest id and the windows' scans of one moment,
            # so a scan committed while they are read is added once, after.
            async with self.db.transaction(snapshot=True) as cur:
                rules = await in_force(cur)
                await cur.execute("SELECT COALESCE(MAX(id), 0) FROM scans")
                (newest,) = await cur.fetchone()
                windows = [await _loaded(cur, window_for(rule, self.shifts)) for rule in rules]
            for row in self._loading:
                if row.id > newest:
                    for window in windows:
                        if window.rule.matches(row.station, row.order_code):
                            window.add(row.id, row.defect_code, row.created_at)
            self._windows = windows
        finally:
            self._loading = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll()
            except DatabaseUnavailable as exc:
                log.warning("alert engine: %s", exc)
            except Exception:
                log.exception("alert engine poll failed; retrying")


async def _loaded(cur: Cursor, window: Window) -> Window:
    await window.load(cur)
    await cur.execute("SELECT breached FROM alert_rules WHERE id = %s", (window.rule.id,))
    (breached,) = await cur.fetchone()
    window.noted_breached = bool(breached)
    return window


async def fire(cur: Cursor, rule: Rule, snapshot: Snapshot, channels: Channels,
               now: datetime) -> int | None:
    """The alert of a new breach, fired at `now`, and its notifications; None
    when the rule was breached already (another process fired it) or removed.
    Safe to run again."""
    value, limit, scan_ids, station, order_code = snapshot
    fired = await cur.execute("UPDATE alert_rules SET breached = TRUE, breaches = breaches + 1"
                              " WHERE id = %s AND NOT breached AND removed_at IS NULL", (rule.id,))
    if fired != 1:
        return None
    await cur.execute("SELECT breaches FROM alert_rules WHERE id = %s", (rule.id,))
    (breach,) = await cur.fetchone()
    await cur.execute(
        "INSERT INTO alerts (rule_id, breach, fired_at, station, order_code, value, threshold, scan_ids)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (rule.id, breach, now, station, order_code, value, limit,
         _stored_scan_ids(scan_ids)))
    alert_id = cur.lastrowid
    notices = [("webhook", "")] if channels.webhook else []
    if channels.email:
        notices += [("email", address) for address in rule.recipients]
    if notices:
        await cur.executemany(
            "INSERT INTO alert_outbox (alert_id, channel, recipient, idempotency_key, next_attempt_at)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(alert_id, channel, recipient, uuid.uuid4().hex, now) for channel, recipient in notices])
    return alert_id


def _stored_scan_ids(scan_ids: Sequence[int]) -> str:
    """The scans comma-separated, as many whole ids as the column holds: cut
    mid-number, the last would name a scan that did not cause the alert."""
    text = ",".join(map(str, scan_ids))
    if len(text) <= SCAN_IDS_CHARS:
        return text
    return text[:text.rindex(",", 0, SCAN_IDS_CHARS + 1)]


async def rearm(cur: Cursor, rule_id: int) -> None:
    await cur.execute("UPDATE alert_rules SET breached = FALSE WHERE id = %s AND breached", (rule_id,))


async def _open_alerts(cur: Cursor) -> list[OpenAlert]:
    await cur.execute(
        "SELECT a.id, a.rule_id, r.kind, a.fired_at, a.station, a.order_code, a.value, a.threshold,"
        " r.defect_code, r.at_station, r.station, r.order_code, r.period"
        " FROM alerts a JOIN alert_rules r ON r.id = a.rule_id"
        " WHERE a.acknowledged_at IS NULL ORDER BY a.id DESC LIMIT %s", (OPEN_SHOWN,))
    return [OpenAlert(*row[:9], bool(row[9]), *row[10:]) for row in await cur.fetchall()]
