"""Answers shared by every open page asking the same question: a list's
totals, a report. Pages that follow the floor ask again as scans arrive, and a
hundred of them open on the same filter must cost the database what one costs.

Each answer is kept with the process's scan mark when it was asked (the newest
scan id the process had seen: `ScanWatcher.newest`) and when. A page says what
it can use (`usable(mark, age)`): an answer asked after the scan it was told
about, or one young enough; otherwise the question is asked again, once, and
everyone waiting for it shares that one reading (single flight).

An answer may have been read on a read replica that lacks the newest writes.
Each is also kept with the time before which every write is in it
(`Database.read_holds`), and serves a client that wrote recently (the
`quality_wrote` cookie, quality/http/writes.py) only if it holds that write,
as `Database.read` would choose for that client alone; else that client's
question is asked again, and its answer shared in turn. Read-your-writes thus
costs the readings of the pages of browsers whose write the replica still
lacks (a second or so after it, unless the replica lags), never one per page."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

KEEP = 256  # questions remembered per process (filters open at once, with room)


@dataclass(frozen=True)
class Answer:
    value: Any
    mark: int  # the newest scan the process had seen when it was asked
    asked_at: float  # time.monotonic()
    holds: float  # every write committed before this time (epoch seconds) is in it

    @property
    def age(self) -> float:
        return time.monotonic() - self.asked_at


Usable = Callable[[int, float], bool]  # (mark, age in seconds) -> good enough for this page


class SharedAnswers:
    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._answers: OrderedDict[Hashable, Answer] = OrderedDict()
        # Each question being asked: what its answer will be kept with, and the reading.
        self._asking: dict[Hashable, tuple[Answer, asyncio.Task[Answer]]] = {}
        self.asked = 0  # questions that went to the database (for tests and metrics)

    async def get(self, key: Hashable, mark: int, usable: Usable, ask: Callable[[], Awaitable[Any]],
                  *, holds: float, written_at: float | None) -> Answer:
        """The answer to `key`: kept, being asked, or asked now at scan mark
        `mark` by `ask`, which holds every write committed before `holds`
        (`Database.read_holds()`) and this client's own, last at `written_at`."""

        def serves(answer: Answer) -> bool:
            return usable(answer.mark, answer.age) and (written_at is None or written_at < answer.holds)

        known = self._answers.get(key)
        if known is not None and serves(known):
            self._answers.move_to_end(key)
            return known
        asking = self._asking.get(key)
        if asking is None or not serves(asking[0]):
            task = asyncio.create_task(self._ask(key, mark, holds, ask))
            # Its error is retrieved even when every page waiting for it has gone.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            asking = (Answer(None, mark, time.monotonic(), holds), task)
            self._asking[key] = asking
        # Shielded: a page that leaves does not cancel the reading others wait for.
        return await asyncio.shield(asking[1])

    async def _ask(self, key: Hashable, mark: int, holds: float, ask: Callable[[], Awaitable[Any]]) -> Answer:
        began = time.monotonic()
        try:
            self.asked += 1
            answer = Answer(await ask(), mark, began, holds)
        finally:
            if key in self._asking and self._asking[key][1] is asyncio.current_task():
                del self._asking[key]
        known = self._answers.get(key)
        if known is None or known.asked_at <= began:
            self._answers[key] = answer
            self._answers.move_to_end(key)
            while len(self._answers) > self._keep:
                self._answers.popitem(last=False)
        return answer
