"""Places for long-running responses a process serves: live tables
(quality/http/live.py) and exports (quality/pages/scan_list/exporter.py), at
most `per_user` for one user and `per_process` in all, so neither one browser
left opening tabs nor a crowd of them ties up the process. A place is taken
without waiting: a request beyond the bound is told at once (a 429) to come
back later."""

from __future__ import annotations

# The live tables' bounds (the exports' are settings).
STREAMS_PER_USER = 6
STREAMS_PER_PROCESS = 500


class Slot:
    """One place taken; given back once, however often released. Held as a
    context, it is given back when the block ends, however it ends."""

    def __init__(self, slots: Slots, user_id: int) -> None:
        self._slots = slots
        self.user_id = user_id
        self._held = True

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.release(self.user_id)


class Slots:
    def __init__(self, per_user: int, per_process: int) -> None:
        self.per_user = per_user
        self.per_process = per_process
        self._by_user: dict[int, int] = {}
        self.open = 0

    def user_full(self, user_id: int) -> bool:
        return self._by_user.get(user_id, 0) >= self.per_user

    def take(self, user_id: int) -> Slot | None:
        """A place for this user, or None when the user or the process is at its bound."""
        if self.open >= self.per_process or self.user_full(user_id):
            return None
        self.open += 1
        self._by_user[user_id] = self._by_user.get(user_id, 0) + 1
        return Slot(self, user_id)

    def release(self, user_id: int) -> None:
        self.open -= 1
        left = self._by_user.pop(user_id) - 1
        if left:
            self._by_user[user_id] = left
