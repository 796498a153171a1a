"""Answers shared by every open page asking the same question: a list's
totals, a report. Pages that follow the floor ask again as scans arrive, and a
hundred of them open on the same filter must cost the database what one costs.

Each answer is kept with the process's scan mark when it was asked (the newest
scan id the process had seen: `ScanWatcher.newest`) and when. A page says what
it can use (`usable(mark, age)`): an answer asked after the scan it was told
about, or one young enough; otherwise the question is asked again, once, and
everyone waiting for it shares that one reading (single flight)."""

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

    @property
    def age(self) -> float:
        return time.monotonic() - self.asked_at


Usable = Callable[[int, float], bool]  # (mark, age in seconds) -> good enough for this page


class SharedAnswers:
    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._answers: OrderedDict[Hashable, Answer] = OrderedDict()
        self._asking: dict[Hashable, tuple[int, float, asyncio.Task[Answer]]] = {}
        self.asked = 0  # questions that went to the database (for tests and metrics)

    async def get(self, key: Hashable, mark: int, usable: Usable,
                  ask: Callable[[], Awaitable[Any]]) -> Answer:
        """The answer to `key`: kept, being asked, or asked now at scan mark `mark`."""
        known = self._answers.get(key)
        if known is not None and usable(known.mark, known.age):
            self._answers.move_to_end(key)
            return known
        asking = self._asking.get(key)
        if asking is None or not usable(asking[0], time.monotonic() - asking[1]):
            task = asyncio.create_task(self._ask(key, mark, ask))
            # Its error is retrieved even when every page waiting for it has gone.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            asking = (mark, time.monotonic(), task)
            self._asking[key] = asking
        # Shielded: a page that leaves does not cancel the reading others wait for.
        return await asyncio.shield(asking[2])

    async def _ask(self, key: Hashable, mark: int, ask: Callable[[], Awaitable[Any]]) -> Answer:
        began = time.monotonic()
        try:
            self.asked += 1
            answer = Answer(await ask(), mark, began)
        finally:
            if self._asking.get(key, (0, 0.0, None))[2] is asyncio.current_task():
                del self._asking[key]
        known = self._answers.get(key)
        if known is None or known.asked_at <= began:
            self._answers[key] = answer
            self._answers.move_to_end(key)
            while len(self._answers) > self._keep:
                self._answers.popitem(last=False)
        return answer
