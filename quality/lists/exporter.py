"""What a process gives its exports: a bounded number of places (per user and
in all) and one thread of their own to format rows on.

An export reads a table batch by batch for as long as its client downloads;
unbounded, a crowd of them (one supervisor's browser reopening the link, a
script) ties up the database and the event loop that scans and sign-ins need.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from quality.slots import Slots


class Exporter:
    def __init__(self, per_user: int, per_process: int) -> None:
        self.slots = Slots(per_user, per_process)
        # One thread: formatting holds the GIL, so a second thread would not
        # format faster, only take more turns from the event loop. Not the
        # default executor either, which sign-in hashes passwords on.
        self.formatter = ThreadPoolExecutor(1, thread_name_prefix="export")

    def close(self) -> None:
        self.formatter.shutdown(wait=False, cancel_futures=True)
