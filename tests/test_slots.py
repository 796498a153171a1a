"""Places for long-running responses, bounded per user and per process."""

from __future__ import annotations

import pytest

from quality.http.slots import Slots


def test_slots_are_bounded_per_user_and_per_process() -> None:
    slots = Slots(per_user=2, per_process=3)
    first, second = slots.take(1), slots.take(1)
    assert first and second and slots.take(1) is None  # user 1 at their bound
    assert slots.user_full(1) and not slots.user_full(2)
    third = slots.take(2)
    assert third and slots.take(3) is None  # the process at its bound
    assert not slots.user_full(3)  # refused for the process, not for themselves
    first.release()
    first.release()  # given back once, however often released
    assert slots.open == 2 and not slots.user_full(1)
    assert slots.take(3) is not None and slots.take(1) is None


def test_a_slot_held_as_a_context_is_given_back_however_the_block_ends() -> None:
    slots = Slots(per_user=1, per_process=1)
    slot = slots.take(1)
    assert slot is not None
    with pytest.raises(RuntimeError), slot:
        assert slots.take(2) is None
        raise RuntimeError("the response failed")
    assert slots.open == 0 and slots.take(2) is not None
