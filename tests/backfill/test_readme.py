"""The README's Python snippet, run as printed, answers with the vendor's split-adjusted prices (#21)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mdw.backfill.demo import run_demo
from mdw.bar_schema import ADJUSTED_DECIMALS
from mdw.domain import AssetClass, Timeframe, day_range_ms, parse_ticker

from .test_api import simulator_thread

README = Path(__file__).resolve().parents[2] / "README.md"


def _snippet() -> str:
    """The first Python block under "## Python API", exactly as the README prints it."""
    section = README.read_text().split("## Python API", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "the README has no Python snippet"
    return found.group(1)


def test_readme_snippet_returns_the_simulators_split_adjusted_prices_on_the_demo_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a demo database, with a key for the simulator, df's closes are its adjusted=true closes."""
    monkeypatch.chdir(tmp_path)
    asyncio.run(run_demo(Path("mdw-demo") / "demo.db", days=2, target_s=1, latency_ms=0))  # a small demo
    code = _snippet()
    assert 'mdw.connect("sqlite:///mdw-demo/demo.db")' in code
    with simulator_thread() as sim:
        for name in ("MDW_CONFIG", "MDW_PLAN", "MASSIVE_API_KEY", "MASSIVE_BASE_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("POLYGON_API_KEY", sim.key)
        monkeypatch.setenv("POLYGON_BASE_URL", sim.base_url)
        monkeypatch.setenv("MDW_RATE_LIMIT", "unlimited")
        scope: dict[str, object] = {}
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, str(README), "exec"), scope)  # the README's own code, unchanged
        wh: Any = scope["wh"]
        try:
            df: Any = scope["df"]
            first, last = date(2025, 1, 2), date(2025, 12, 31)
            rng = day_range_ms(first, last, parse_ticker("AAPL").asset_class.tz)
            day = Timeframe.parse("1d")
            truth = sim.market.aggregates("AAPL", day, rng.start_ms, rng.end_ms, adjusted=True)
            raw = sim.market.aggregates("AAPL", day, rng.start_ms, rng.end_ms)
        finally:
            wh.close()
    decimals = ADJUSTED_DECIMALS[AssetClass.STOCKS]
    assert len(df) == len(truth) > 240
    assert np.array_equal(df["close"].to_numpy(), np.round(truth.c, decimals))
    assert np.array_equal(df["open"].to_numpy(), np.round(truth.o, decimals))
    assert not np.array_equal(truth.c, raw.c)  # AAPL's 2025-06-09 split lies inside the year
    assert df["date"].iloc[0] == first
    assert "close" in printed.getvalue() and "RangeSet" in printed.getvalue()
