"""The time as the database stores it: UTC, without a zone (DATETIME columns).

Pages show times in the plant's zone (`Renderer.local_time`); everything
written or compared in SQL uses `utc_now()`.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
