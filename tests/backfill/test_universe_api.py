"""Universes through the Python API against the simulator: stitched reads across a rename, and an
options chain (one underlying, one expiry, 1m) stored exactly in the minimal number of requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import numpy as np
import pytest
import pytest_asyncio

from mdw.api import AsyncWarehouse
from mdw.backfill import catalog
from mdw.domain import NEW_YORK, BarBatch, Timeframe, day_range_ms, local_midnight_ms
from mdw.errors import NotStoredError, UsageError
from mdw.simulator import SimServer
from mdw.simulator.testing import SimFactory

SIM_TODAY = date(2025, 1, 15)
FIELDS = ("t", "o", "h", "l", "c", "v", "n")


@pytest_asyncio.fixture
async def sim(sim_factory: SimFactory) -> SimServer:
    return await sim_factory(n_stocks=1000, now_ms=local_midnight_ms(SIM_TODAY, NEW_YORK))


@pytest_asyncio.fixture
async def wh(store_url: str, sim: SimServer) -> AsyncIterator[AsyncWarehouse]:
    opened = await AsyncWarehouse.open(store_url, polygon_api_key=sim.key, polygon_base_url=sim.base_url,
                                       rate_limit="unlimited")
    try:
        yield opened
    finally:
        await opened.close()


def _truth(sim: SimServer, ticker: str, tf: Timeframe, first: date, last: date) -> BarBatch:
    rng = day_range_ms(first, last, NEW_YORK)
    return sim.market.aggregates(ticker, tf, rng.start_ms, rng.end_ms)


def _same(got: object, want: BarBatch) -> None:
    import pandas as pd

    assert isinstance(got, pd.DataFrame)  # read with names="vendor": indexed by t
    assert np.array_equal(got.index.as_unit("ms").asi8, want.t)
    for name in FIELDS[1:]:
        assert np.array_equal(got[name].to_numpy(), getattr(want, name)), name


async def test_stitched_read_across_a_rename_equals_the_two_tickers_ground_truth(
    wh: AsyncWarehouse, sim: SimServer,
) -> None:
    """PVQ became PVQF on 2024-12-06: a universe named by today's ticker holds both, and a stitched
    read of PVQF (or of its FIGI) is PVQ's bars then PVQF's, with the change in its metadata."""
    first, last = date(2024, 11, 1), date(2024, 12, 31)
    await wh.define_universe("pvq", tickers=["PVQF"])
    report = await wh.backfill_universe("pvq", "1h,1d", first, last)
    assert report.status == "ok", report.errors
    assert await wh.universe_members("pvq", "2024-11-01") == ["PVQ"]
    assert await wh.universe_members("pvq", date(2024, 12, 20)) == ["PVQF"]
    for tf in (Timeframe(1, "h"), Timeframe(1, "d")):
        old, new = _truth(sim, "PVQ", tf, first, last), _truth(sim, "PVQF", tf, first, last)
        assert len(old) and len(new)
        frame = await wh.bars("PVQF", tf, first, last, names="vendor", stitch=True)
        _same(frame, BarBatch.concat([old, new]))
        assert frame.attrs["stitch"]["changes"] == [{"date": "2024-12-06", "from": "PVQ", "to": "PVQF"}]
        assert [p["ticker"] for p in frame.attrs["stitch"]["parts"]] == ["PVQ", "PVQF"]
        assert frame.attrs["coverage"]["complete"] is True
        _same(await wh.bars("PVQF", tf, first, last, names="vendor"), new)  # unstitched: only the new ticker
    figi = next(x.composite_figi for x in sim.market.listings() if x.ticker == "PVQF")
    by_figi = await wh.bars(figi, "1d", first, last, names="vendor", stitch=True)
    _same(by_figi, BarBatch.concat([_truth(sim, t, Timeframe(1, "d"), first, last) for t in ("PVQ", "PVQF")]))
    with pytest.raises(UsageError, match="unadjusted"):
        await wh.bars("PVQF", "1d", first, last, "splits", stitch=True)
    with pytest.raises(NotStoredError):
        await wh.bars("NOSUCHNAME", "1d", first, last, stitch=True)


async def test_options_chain_is_stored_exactly_in_one_request_per_contract(
    wh: AsyncWarehouse, sim: SimServer,
) -> None:
    """SPY's contracts expiring 2024-12-20, 1m over their last week: every contract exact, one page each."""
    first, last = date(2024, 12, 16), date(2024, 12, 20)
    await wh.define_universe("spy-1220", underlying="SPY", expiry="2024-12-20")
    report = await wh.backfill_universe("spy-1220", "1m", first, last)
    assert report.status == "ok", report.errors
    contracts = await wh.store.reference.contracts("SPY", date(2024, 12, 20), date(2024, 12, 20))
    assert len(contracts) > 10 and {c.contract_type for c in contracts} == {"call", "put"}
    assert report.planned_requests == report.requests == len(contracts)  # the vendor's minimal pages
    tf = Timeframe(1, "m")
    traded = 0
    for c in contracts:
        want = _truth(sim, c.ticker, tf, first, last)
        rng = day_range_ms(first, last, NEW_YORK)
        got = await wh.store.bars(c.ticker, tf, rng.start_ms, rng.end_ms)
        assert got.equals(want), c.ticker
        traded += len(want) > 0
    assert traded > 0
    assert len(await wh.universe_members("spy-1220", "2024-12-16")) == len(contracts)
    assert await wh.universe_members("spy-1220", "2024-12-23") == []  # expired


async def test_universe_definitions_refuse_bad_input(wh: AsyncWarehouse) -> None:
    """Every front end parses definitions through one module: the same words are refused the same way."""
    for bad in ({"market": "bonds"}, {"underlying": "SPY"}, {"strikes": "ATM±5"},
                {"underlying": "SPY", "expiry": "2024-13"}, {"underlying": "SPY", "expiry": "2024-12",
                                                             "strikes": "near"},
                {"active_on": "2024-02-30"}):
        with pytest.raises(UsageError):
            await wh.define_universe("x", **bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        await wh.define_universe("bad name")
    with pytest.raises(UsageError, match="no universe named"):
        await wh.remove_universe("x")
    with pytest.raises(UsageError, match="mdw reference refresh"):
        await wh.define_universe("us", types="CS,ETF")
        await wh.universe_members("us")
    assert list(await wh.universes()) == ["us"]
    assert catalog.define_spec(types="cs, etf", exchanges=["xnas"]).types == ("CS", "ETF")
