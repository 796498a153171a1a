"""What a process gives its exports: a bounded number of places (per user and
in all) and one thread of their own to format rows on, which gives way to the
event loop.

An export reads a table batch by batch for as long as its client downloads;
unbounded, a crowd of them (one supervisor's browser reopening the link, a
script) ties up the database and the event loop that scans and sign-ins need.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from quality.http.slots import Slots

T = TypeVar("T")
# Rows formatted at a stretch: one to two milliseconds of work.
SLICE_ROWS = 200
# After each slice the thread lets go of the GIL as long as the slice took: the
# event loop, if it waits for it, gets it now rather than after Python's 5 ms,
# and exports never take more than half of the process's turns.
# While exports run the event loop beats this often; a beat older than
# BUSY_SECONDS means it is busy (a report, a burst of scans, a garbage
# collection), and the thread waits for it, though never past WAIT_SECONDS
# before its next slice (exports go on, slowly, even on a saturated loop).
BEAT_SECONDS = 0.002
BUSY_SECONDS = 0.01
WAIT_SECONDS = 0.05


class Exporter:
    def __init__(self, per_user: int, per_process: int) -> None:
        self.slots = Slots(per_user, per_process)
        # One thread: formatting holds the GIL, so a second thread would not
        # format faster, only take more turns from the event loop. Not the
        # default executor either, which sign-in hashes passwords on.
        self._formatter = ThreadPoolExecutor(1, thread_name_prefix="export")
        self._beat = time.monotonic()
        self._beating: asyncio.Task[None] | None = None
        self._formatting = 0

    async def format(self, rows: Sequence[T], write: Callable[[Sequence[T]], bytes]) -> bytes:
        """`write(rows)`, done on the export thread a slice at a time, each
        when the event loop is not busy; cancelled, it stops after the slice
        it is writing."""
        self._beat = time.monotonic()  # the loop is here: that is a beat
        self._formatting += 1
        if self._beating is None or self._beating.done():
            self._beating = asyncio.create_task(self._beat_while_formatting(), name="export-heartbeat")
        stop = threading.Event()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._formatter, self._in_slices, rows, write, stop)
        finally:
            stop.set()
            self._formatting -= 1

    async def _beat_while_formatting(self) -> None:
        while self._formatting:
            self._beat = time.monotonic()
            await asyncio.sleep(BEAT_SECONDS)

    def _in_slices(self, rows: Sequence[T], write: Callable[[Sequence[T]], bytes],
                   stop: threading.Event) -> bytes:
        parts = []
        for start in range(0, len(rows), SLICE_ROWS):
            self._wait_for_the_loop()
            if stop.is_set():
                break
            began = time.perf_counter()
            parts.append(write(rows[start:start + SLICE_ROWS]))
            time.sleep(time.perf_counter() - began)
        return b"".join(parts)

    def _wait_for_the_loop(self) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() - self._beat > BUSY_SECONDS and time.monotonic() < deadline:
            time.sleep(0.001)

    def close(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
        self._formatter.shutdown(wait=False, cancel_futures=True)
