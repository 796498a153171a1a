"""Figures people act on (issue 22): exact under concurrent saves, scans
stored by hand, late commits, any zone and changed shift settings."""

from __future__ import annotations

import sys
from pathlib import Path

from quality.settings import DatabaseURL

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from figures_check import scenario


async def test_the_differential_check_finds_every_figure_exact(db_url: DatabaseURL) -> None:
    result = await scenario(db_url, scans=240, filters=120, reports=16, exports=12, seed=3)
    print(f"figures compared: {result.compared}")
    assert result.mismatches == [], "\n".join(result.mismatches)
    assert result.compared > 500
