"""What a process gives its exports: a bounded number of places (per user and
in all) and one thread of their own to format rows on, at a pace that leaves
the event loop its turns.

An export reads a table batch by batch for as long as its client downloads;
unbounded, a crowd of them (one supervisor's browser reopening the link, a
script) ties up the database and the event loop that scans and sign-ins need.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from quality.slots import Slots

T = TypeVar("T")
# Rows formatted at a stretch: one to two milliseconds of work.
SLICE_ROWS = 200
# After each slice the thread rests this many times as long as it worked.
REST_PER_WORK = 3


class Exporter:
    def __init__(self, per_user: int, per_process: int) -> None:
        self.slots = Slots(per_user, per_process)
        # One thread: formatting holds the GIL, so a second thread would not
        # format faster, only take more turns from the event loop. Not the
        # default executor either, which sign-in hashes passwords on.
        self._formatter = ThreadPoolExecutor(1, thread_name_prefix="export")

    async def format(self, rows: Sequence[T], write: Callable[[Sequence[T]], bytes]) -> bytes:
        """`write(rows)`, done on the export thread a slice at a time."""
        return await asyncio.get_running_loop().run_in_executor(self._formatter, _paced, rows, write)

    def close(self) -> None:
        self._formatter.shutdown(wait=False, cancel_futures=True)


def _paced(rows: Sequence[T], write: Callable[[Sequence[T]], bytes]) -> bytes:
    """Formatting holds the GIL, which the event loop needs for every request:
    after each slice the thread rests, so however many exports run, they
    format at most a quarter of the time (a long report or a garbage
    collection on the loop is stretched by a third at most), and the loop
    never waits for more than a slice. Four exports of a million rows each
    take a few minutes."""
    parts = []
    for start in range(0, len(rows), SLICE_ROWS):
        began = time.perf_counter()
        parts.append(write(rows[start:start + SLICE_ROWS]))
        time.sleep(REST_PER_WORK * (time.perf_counter() - began))
    return b"".join(parts)
