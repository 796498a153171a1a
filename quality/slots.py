"""Places for long-running work a process takes on (e.g. exports): at most
`per_user` for one user and `per_process` in all, taken without waiting, so a
request beyond them is told at once to come back later."""

from __future__ import annotations


class Slot:
    """One place taken; given back once, however often released."""

    def __init__(self, slots: Slots, user_id: int) -> None:
        self._slots = slots
        self.user_id = user_id
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.give_back(self.user_id)


class Slots:
    def __init__(self, per_user: int, per_process: int) -> None:
        self.per_user = per_user
        self.per_process = per_process
        self._by_user: dict[int, int] = {}
        self.taken = 0

    def user_full(self, user_id: int) -> bool:
        return self._by_user.get(user_id, 0) >= self.per_user

    def process_full(self) -> bool:
        return self.taken >= self.per_process

    def take(self, user_id: int) -> Slot | None:
        """A place for this user, or None when the user or the process is at its bound."""
        if self.process_full() or self.user_full(user_id):
            return None
        self.taken += 1
        self._by_user[user_id] = self._by_user.get(user_id, 0) + 1
        return Slot(self, user_id)

    def give_back(self, user_id: int) -> None:
        self.taken -= 1
        left = self._by_user.pop(user_id) - 1
        if left:
            self._by_user[user_id] = left
