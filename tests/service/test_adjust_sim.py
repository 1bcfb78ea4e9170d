"""Read-time adjustment through the API equals the simulator's adjusted=true ground truth."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from mdw.bar_schema import ADJUSTED_DECIMALS
from mdw.domain import NEW_YORK, AssetClass, Timeframe, local_midnight_ms
from mdw.simulator.server import SimServer

ServiceFactory = Callable[..., Awaitable[Any]]


def _cols(rows: list[dict[str, Any]], name: str) -> np.ndarray:
    return np.array([np.nan if r[name] is None else r[name] for r in rows], dtype=np.float64)


@pytest.mark.parametrize("timeframe,days", [("1d", 20), ("1m", 2)])
async def test_split_adjusted_bars_equal_the_simulators_adjusted_bars(
    sim: SimServer, service_factory: ServiceFactory, timeframe: str, days: int
) -> None:
    """Across a split, adjust=splits equals the vendor's adjusted=true bars at the instrument's precision."""
    svc = await service_factory(sim)
    ticker, split = next((t, s) for t in sim.market.universe() for s in sim.market.splits(t)
                         if s.execution_date.year >= 2005)
    first, last = split.execution_date - timedelta(days=days), split.execution_date + timedelta(days=days)
    run = await svc.backfill({"symbols": [ticker], "timeframes": [timeframe], "start": first.isoformat(),
                              "end": last.isoformat(), "corporate_actions": True})
    assert run["status"] == "ok"
    status, page, _ = await svc.get(f"/v1/bars/{ticker}?timeframe={timeframe}&start={first}&end={last}"
                                    "&adjust=splits&limit=50000&names=vendor")
    assert status == 200 and page["next_cursor"] is None
    start_ms = local_midnight_ms(first, NEW_YORK)
    end_ms = local_midnight_ms(last + timedelta(days=1), NEW_YORK)
    truth = sim.market.aggregates(ticker, Timeframe.parse(timeframe), start_ms, end_ms, adjusted=True)
    raw = sim.market.aggregates(ticker, Timeframe.parse(timeframe), start_ms, end_ms, adjusted=False)
    rows = page["bars"]
    assert [r["t"] for r in rows] == truth.t.tolist()
    assert not np.array_equal(truth.c, raw.c)  # the range really spans a split
    for name in ("o", "h", "l", "c", "v", "vw"):  # rounded once, so no float noise is served
        expected = np.round(getattr(truth, name), ADJUSTED_DECIMALS[AssetClass.STOCKS])
        assert np.array_equal(_cols(rows, name), expected, equal_nan=True), name


async def test_dividend_adjustment_applies_the_backward_ratio(sim: SimServer,
                                                             service_factory: ServiceFactory) -> None:
    """adjust=all scales bars before an ex-date by 1 - cash / previous close, and later bars not at all."""
    svc = await service_factory(sim)
    ticker, div = next((t, d) for t in sim.market.universe() for d in sim.market.dividends(t)
                       if d.ex_dividend_date.year == 2023 and not sim.market.splits(t))
    first, last = div.ex_dividend_date - timedelta(days=10), div.ex_dividend_date + timedelta(days=10)
    await svc.backfill({"symbols": [ticker], "timeframes": ["1d"], "start": first.isoformat(),
                        "end": last.isoformat(), "corporate_actions": True})
    query = f"/v1/bars/{ticker}?timeframe=1d&start={first}&end={last}&names=vendor"
    raw = (await svc.get(query))[1]["bars"]
    adjusted = (await svc.get(query + "&adjust=all"))[1]["bars"]
    cut = local_midnight_ms(div.ex_dividend_date, NEW_YORK)
    before = [r for r in raw if r["t"] < cut]
    factor = 1 - div.cash_amount / before[-1]["c"]
    for r, a in zip(raw, adjusted, strict=True):
        expected = r["c"] * factor if r["t"] < cut else r["c"]
        assert a["c"] == float(np.round(expected, ADJUSTED_DECIMALS[AssetClass.STOCKS]))
        assert a["v"] == r["v"]
