"""The p-chart's definitions, one home for the reports' chart
(quality/pages/reports/control.py) and the p-chart alert rule
(quality/alerts/windows.py): a point's control limits for its sample, and the
run of points on one side of the centre line that is a signal."""

from __future__ import annotations

import math

RUN = 8


def limits(centre: float, pieces: int) -> tuple[float, float]:
    """A point's limits for a sample of `pieces`: p̄ ± 3·√(p̄(1 - p̄)/n), the lower floored at 0."""
    spread = 3 * math.sqrt(centre * (1 - centre) / pieces)
    return max(0.0, centre - spread), centre + spread
