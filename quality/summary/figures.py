"""The figures every summary answer is made of: scans, and pieces by their
latest scan, approved or rejected, with the rejected scans per defect."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from quality.codes import APPROVED
from quality.scan_filter import SORTS


@dataclass
class Figures:
    scans: int = 0
    approved: int = 0  # pieces whose latest scan is here, by its verdict
    rejected: int = 0
    defects: Counter[str] = field(default_factory=Counter)  # rejected scans per defect code

    @property
    def pieces(self) -> int:
        return self.approved + self.rejected

    @property
    def rejection_rate(self) -> float | None:
        return self.rejected / self.pieces if self.pieces else None

    def top_defects(self, count: int = 3) -> list[tuple[str, int]]:
        # What most_common(count) gives (its heap keeps ties in the same order),
        # in a third of the time for a handful of codes; a report asks ~400 rows.
        return sorted(self.defects.items(), key=itemgetter(1), reverse=True)[:count]

    def add(self, defect: str, scans: int, approved: int, rejected: int) -> None:
        self.scans += int(scans)
        self.approved += int(approved)
        self.rejected += int(rejected)
        if defect != APPROVED and scans:
            self.defects[defect] += int(scans)

    def merge(self, other: Figures) -> None:
        self.scans += other.scans
        self.approved += other.approved
        self.rejected += other.rejected
        self.defects.update(other.defects)



def rank(groups: dict[Any, Figures]) -> list[tuple[Any, Figures]]:
    """Groups with the most rejected pieces first, then the most scans, then by name."""
    return sorted(groups.items(), key=lambda item: (-item[1].rejected, -item[1].scans, item[0]))


# How a table of groups may be sorted (quality.scan_filter.SORTS), each with its sort key.
_SORT_KEYS: dict[str, Any] = {
    "rejected": lambda item: (-item[1].rejected, -item[1].scans, item[0]),
    "scans": lambda item: (-item[1].scans, -item[1].rejected, item[0]),
    "rate": lambda item: (-(item[1].rejection_rate or 0), -item[1].rejected, item[0]),
    "name": lambda item: item[0],
}


def order_by(groups: dict[Any, Figures], by: str) -> list[tuple[Any, Figures]]:
    """Groups sorted by one of quality.scan_filter.SORTS: most first, then by
    name; "rejected" is `rank`'s order."""
    return sorted(groups.items(), key=_SORT_KEYS[by])


assert set(_SORT_KEYS) == set(SORTS)


@dataclass(frozen=True)
class TablePage:
    """One page of a long table of groups: its number (from 1), rows a page,
    and the rows in all; or, `every`, all of them on one page."""

    number: int
    size: int
    count: int
    every: bool = False

    @classmethod
    def asked(cls, number: int | None, size: int, count: int) -> TablePage:
        """Page `number` of `size` rows; None: all `count` rows at once."""
        return cls(number, size, count) if number is not None else cls(1, max(count, 1), count, every=True)

    @property
    def first(self) -> int:
        """The first row shown, from 1 (0: none)."""
        return min((self.number - 1) * self.size + 1, self.count + 1) if self.count else 0

    @property
    def last(self) -> int:
        return min(self.number * self.size, self.count)

    @property
    def has_next(self) -> bool:
        return self.last < self.count

    def of(self, rows: list[Any]) -> list[Any]:
        return rows[(self.number - 1) * self.size:self.number * self.size]

