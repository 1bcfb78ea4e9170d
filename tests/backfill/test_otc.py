"""The vendor's ``otc`` flag is stored per bar exactly as the simulator sent it: ``true`` on an OTC
name's bars, nothing (NULL) on a listed name's; read back by the Python API, exported, copied."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import aiohttp

from mdw.backfill import run_backfill
from mdw.domain import MISSING_OTC, AssetClass, Timeframe, day_range_ms
from mdw.polygon import Pacing, PolygonClient
from mdw.simulator import SimServer
from mdw.simulator.testing import SimFactory
from mdw.store import Store, open_store

from .helpers import make_spec

D1, H1 = Timeframe(1, "d"), Timeframe(1, "h")
START, END = date(2024, 3, 4), date(2024, 3, 15)


def _otc_name(sim: SimServer) -> str:
    """An OTC-listed ticker that trades in the test's days."""
    rng = day_range_ms(START, END, AssetClass.STOCKS.tz)
    market = sim.state.market
    return next(r.ticker for r in market.listings()
                if r.market == "otc" and r.listed_on(START) and r.listed_on(END)
                and len(market.aggregates(r.ticker, D1, rng.start_ms, rng.end_ms)) > 5)


async def _sent(sim: SimServer, ticker: str, span: str) -> dict[int, Any]:
    """``t`` -> the ``otc`` value of each bar the simulator serves (None where the key is absent)."""
    path = f"/v2/aggs/ticker/{ticker}/range/1/{span}/{START}/{END}?adjusted=false&limit=50000"
    async with (aiohttp.ClientSession() as http,
                http.get(sim.base_url + path, headers={"Authorization": f"Bearer {sim.key}"}) as r):
        body = await r.json()
    return {bar["t"]: bar.get("otc") for bar in body["results"]}


async def test_backfill_stores_otc_flag_per_bar_exactly_as_the_simulator_sent_it(
    store: Store, sim_factory: SimFactory,
) -> None:
    """An OTC name's daily and hourly bars are stored with otc=true, a listed name's with none; the
    flags equal the served ones bar by bar, and a re-run changes nothing."""
    sim = await sim_factory(n_stocks=2000)
    otc = _otc_name(sim)
    spec = make_spec(f"{otc},AAPL", "1d,1h", START.isoformat(), END.isoformat(), grouped_daily=False)
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as client:
        report = await run_backfill(store, client, spec)
        assert report.exit_code == 0
        for ticker, tf, span in [(otc, D1, "day"), (otc, H1, "hour"), ("AAPL", D1, "day"),
                                 ("AAPL", H1, "hour")]:
            sent = await _sent(sim, ticker, span)
            got = await store.bars(ticker, tf, 0, 2**62)
            assert got.t.tolist() == sorted(sent)
            want = [MISSING_OTC if sent[t] is None else int(sent[t]) for t in got.t.tolist()]
            assert got.otc.tolist() == want
            assert set(want) == ({1} if ticker == otc else {MISSING_OTC})
        again = await run_backfill(store, client, spec)
        assert again.exit_code == 0 and again.bars_fetched == 0


async def test_grouped_daily_rows_carry_the_otc_flag_of_otc_names(sim_factory: SimFactory) -> None:
    """Grouped daily asked with OTC names: an OTC name's row is otc=true, a listed name's has none."""
    sim = await sim_factory(n_stocks=2000)
    otc = _otc_name(sim)
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as client:
        rows = await client.grouped_daily(START, "stocks")
    assert rows[otc].otc.tolist() == [1] and rows["AAPL"].otc.tolist() == [MISSING_OTC]


async def test_otc_flags_survive_copy_and_export(sim_factory: SimFactory, tmp_path: Path) -> None:
    """Copied from SQLite to the columnar store and read through the Python API and an export, an
    OTC name's bars keep otc=true and a listed name's stay null."""
    import mdw.api
    from mdw.backfill.copy import copy_store

    sim = await sim_factory(n_stocks=2000)
    otc = _otc_name(sim)
    source = f"sqlite:///{tmp_path / 'a.db'}"
    async with await open_store(source) as store, PolygonClient(
            sim.key, sim.base_url, pacing=Pacing("unlimited")) as client:
        spec = make_spec(f"{otc},AAPL", "1d", START.isoformat(), END.isoformat(), grouped_daily=False)
        assert (await run_backfill(store, client, spec)).exit_code == 0
    target = f"iceberg+sqlite:///{tmp_path / 'b.db'}?warehouse={tmp_path / 'lake'}"
    async with await open_store(source) as src, await open_store(target) as dst:
        copied = await copy_store(src, dst)
    assert copied.differences == []
    wh = await mdw.api.AsyncWarehouse.open(target)
    try:
        frame = await wh.bars(otc, "1d", START.isoformat(), END.isoformat())
        assert len(frame) > 5 and frame["otc"].tolist() == [True] * len(frame)
        listed = await wh.bars_arrow("AAPL", "1d", START.isoformat(), END.isoformat())
        assert listed.num_rows > 5 and listed.column("otc").null_count == listed.num_rows
    finally:
        await wh.close()
