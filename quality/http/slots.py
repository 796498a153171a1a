"""The live streams a process keeps open (quality/http/live.py takes and gives
back their slots): at most STREAMS_PER_USER for one user and
STREAMS_PER_PROCESS in all, so neither one browser left opening tabs nor a
crowd of them ties up the process."""

from __future__ import annotations

STREAMS_PER_USER = 6
STREAMS_PER_PROCESS = 500


class StreamSlot:
    """One open live-table stream; given back once, however often released.
    Held as a context, it is given back when the block ends, however it ends."""

    def __init__(self, slots: StreamSlots, user_id: int) -> None:
        self._slots = slots
        self.user_id = user_id
        self._held = True

    def __enter__(self) -> StreamSlot:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.release(self.user_id)


class StreamSlots:
    """The live-table streams a process keeps open: at most `per_user` for one
    user and `per_process` in all, so neither one browser left opening tabs nor
    a crowd of them ties up the process."""

    def __init__(self, per_user: int, per_process: int) -> None:
        self.per_user = per_user
        self.per_process = per_process
        self._by_user: dict[int, int] = {}
        self.open = 0

    def take(self, user_id: int) -> StreamSlot | None:
        if self.open >= self.per_process or self._by_user.get(user_id, 0) >= self.per_user:
            return None
        self.open += 1
        self._by_user[user_id] = self._by_user.get(user_id, 0) + 1
        return StreamSlot(self, user_id)

    def release(self, user_id: int) -> None:
        self.open -= 1
        left = self._by_user.pop(user_id) - 1
        if left:
            self._by_user[user_id] = left
