"""Daily bars revised once after the close: preliminary until 09:00 ET the next day, then final."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

import aiohttp

from mdw.domain import NEW_YORK, Timeframe, local_midnight_ms
from mdw.simulator import SimServer
from mdw.simulator.testing import SimFactory

DAY = date(2025, 3, 4)


def _et(day: date, hour: int) -> int:
    return int(datetime.combine(day, time(hour), tzinfo=NEW_YORK).timestamp() * 1000)


async def _json(sim: SimServer, path: str) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.get(sim.base_url + path, headers={"Authorization": f"Bearer {sim.key}"}) as r,
    ):
        assert r.status == 200
        return await r.json()


async def _served(sim: SimServer, ticker: str) -> tuple[dict[str, Any], dict[str, Any]]:
    aggs = await _json(sim, f"/v2/aggs/ticker/{ticker}/range/1/day/{DAY}/{DAY}?adjusted=false")
    grouped = await _json(sim, f"/v2/aggs/grouped/locale/us/market/stocks/{DAY}?adjusted=false")
    return aggs["results"][0], next(r for r in grouped["results"] if r["T"] == ticker)


async def test_revised_ticker_serves_a_preliminary_daily_bar_until_the_next_morning(
    sim_factory: SimFactory,
) -> None:
    """ABBV (revised by default): less volume and fewer trades at the close, the truth from 09:00 ET."""
    sim = await sim_factory(now_ms=_et(DAY, 21))
    start = local_midnight_ms(DAY, NEW_YORK)
    truth = sim.market.aggregates("ABBV", Timeframe(1, "d"), start, start + 86_400_000)
    bar, row = await _served(sim, "ABBV")
    assert bar["v"] < truth.v[0] and bar["n"] < truth.n[0] and bar["c"] == truth.c[0]
    assert (row["v"], row["n"]) == (bar["v"], bar["n"])
    ko, _ = await _served(sim, "KO")  # not revised: final at once
    assert ko["v"] == sim.market.aggregates("KO", Timeframe(1, "d"), start, start + 86_400_000).v[0]
    sim.clock.set(_et(date(2025, 3, 5), 9))
    bar, row = await _served(sim, "ABBV")
    assert (bar["v"], bar["n"]) == (truth.v[0], truth.n[0]) == (row["v"], row["n"])


async def test_revisions_switch_off_when_no_ticker_is_named(sim_factory: SimFactory) -> None:
    """revised=() serves every daily bar final at the close."""
    sim = await sim_factory(now_ms=_et(DAY, 21), revised=frozenset())
    start = local_midnight_ms(DAY, NEW_YORK)
    bar, _ = await _served(sim, "ABBV")
    assert bar["v"] == sim.market.aggregates("ABBV", Timeframe(1, "d"), start, start + 86_400_000).v[0]
