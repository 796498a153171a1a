"""Each rule's recent scans in its scope, kept in memory and updated one scan
at a time: a few integer operations per rule and scan, so evaluating the
rules costs a save next to nothing (bench/alerts_bench.py measures it)."""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from quality.alerts.rules import RATE, Rule
from quality.codes import APPROVED

_HUNDRED = Decimal(100)


class Window:
    """One rule's scans: whether they breach it, by how much, and which they are."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.noted_breached = False  # what this process last acted on (fired or re-armed)

    def add(self, scan_id: int, defect_code: str) -> None:
        raise NotImplementedError

    @property
    def breached(self) -> bool:
        raise NotImplementedError

    @property
    def value(self) -> Decimal:
        raise NotImplementedError

    @property
    def scan_ids(self) -> list[int]:
        """The scans that make the breach: the rejected ones of the window, or the run."""
        raise NotImplementedError


class RateWindow(Window):
    """The last N scans: breached when full and more than the threshold rejected."""

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self._scans: deque[tuple[int, bool]] = deque(maxlen=rule.pieces)
        self._rejected = 0
        # rejected / N > threshold / 100, in integers (the threshold has two
        # decimals): no rounding at the edge, no Decimal work per scan
        self._bound = int(rule.limit * 100) * rule.pieces

    def add(self, scan_id: int, defect_code: str) -> None:
        rejected = defect_code != APPROVED
        if len(self._scans) == self.rule.pieces and self._scans[0][1]:
            self._rejected -= 1
        self._scans.append((scan_id, rejected))
        self._rejected += rejected

    @property
    def breached(self) -> bool:
        return len(self._scans) == self.rule.pieces and self._rejected * 10000 > self._bound

    @property
    def value(self) -> Decimal:
        return (_HUNDRED * self._rejected / max(len(self._scans), 1)).quantize(Decimal("0.01"))

    @property
    def scan_ids(self) -> list[int]:
        return [scan_id for scan_id, rejected in self._scans if rejected]


class RunWindow(Window):
    """The current run of one defect code: breached at K in a row."""

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self._code = ""
        self._run: deque[int] = deque(maxlen=rule.pieces)
        self._length = 0

    def add(self, scan_id: int, defect_code: str) -> None:
        counts = defect_code != APPROVED and self.rule.defect_code in (None, defect_code)
        if not counts:
            self._code, self._length = "", 0
            self._run.clear()
            return
        if defect_code != self._code:
            self._code, self._length = defect_code, 0
            self._run.clear()
        self._length += 1
        self._run.append(scan_id)

    @property
    def breached(self) -> bool:
        return self._length >= self.rule.pieces

    @property
    def value(self) -> Decimal:
        return Decimal(self._length)

    @property
    def scan_ids(self) -> list[int]:
        return list(self._run)


def window_for(rule: Rule) -> Window:
    return RateWindow(rule) if rule.kind == RATE else RunWindow(rule)
