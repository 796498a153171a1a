"""The plant's shift calendar: where each shift starts (`QUALITY_SHIFTS`, in the
plant's zone), which production day and shift a moment belongs to, and each
shift's bounds as stored times. The stations' counter, the scan list's shift
filter, the reports and the summary tables all read it here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from quality.clock import plant_moment, to_plant
from quality.settings import Settings


@dataclass(frozen=True)
class Shifts:
    """Shift start times (minutes after local midnight) in the plant's zone. A
    shift belongs to the production day on which it starts, so a night shift
    that runs past midnight is one shift of one day."""

    starts: tuple[int, ...]
    timezone: ZoneInfo

    @classmethod
    def of_plant(cls, settings: Settings) -> Shifts:
        """The plant's shifts, as its settings name them."""
        return cls(settings.shifts, settings.timezone)

    def labels(self) -> list[str]:
        ends = [*self.starts[1:], self.starts[0]]
        return [f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
                for start, end in zip(self.starts, ends, strict=True)]

    def of(self, at: datetime) -> tuple[date, int]:
        """The production day and shift index (0-based) of a UTC time."""
        local = to_plant(at, self.timezone)
        minutes = local.hour * 60 + local.minute
        day = local.date()
        if minutes < self.starts[0]:
            return day - timedelta(days=1), len(self.starts) - 1
        index = max(i for i, start in enumerate(self.starts) if start <= minutes)
        return day, index

    def around(self, at: datetime) -> tuple[datetime, datetime]:
        """The shift a naive-UTC time falls in, as naive-UTC [start, end)."""
        return self.span(*self.of(at))

    def span(self, day: date, index: int) -> tuple[datetime, datetime]:
        """A shift of a production day, as naive-UTC [start, end)."""
        start = self._utc(day, self.starts[index])
        if index + 1 < len(self.starts):
            return start, self._utc(day, self.starts[index + 1])
        return start, self._utc(day + timedelta(days=1), self.starts[0])

    def day_span(self, day: date) -> tuple[datetime, datetime]:
        """A whole production day, as naive-UTC [start, end)."""
        return self._utc(day, self.starts[0]), self._utc(day + timedelta(days=1), self.starts[0])

    def spans_within(self, index: int, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        first = self.of(start)[0] - timedelta(days=1)
        last = self.of(end)[0]
        spans = []
        day = first
        while day <= last:
            lo, hi = self.span(day, index)
            lo, hi = max(lo, start), min(hi, end)
            if lo < hi:
                spans.append((lo, hi))
            day += timedelta(days=1)
        return spans

    def _utc(self, day: date, minutes: int) -> datetime:
        return plant_moment(day, minutes, self.timezone)
