"""A whole-market month from flat files: the universe of all stocks, 1m and 1d, exact and covered.

The universe is defined as issue #17 defines one (stored, resolved from reference data refreshed
from the simulator); the bars are compared with the simulator's ground truth, ``vw`` aside.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pytest

from mdw.backfill.fileplan import CostModel
from mdw.backfill.members import universe_spec
from mdw.backfill.plan import BackfillSpec
from mdw.backfill.runner import run_backfill
from mdw.backfill.universe import UniverseSpec
from mdw.config import RateLimit, load_settings
from mdw.domain import NEW_YORK, Timeframe, local_midnight_ms, parse_timeframes
from mdw.flatfiles.keys import dataset_named
from mdw.flatfiles.s3 import FlatFileClient
from mdw.polygon import PolygonClient
from mdw.simulator import SimServer
from mdw.simulator.testing import SimFactory
from mdw.store import Dataset, Store

MINUTES = dataset_named("us_stocks_sip/minute_aggs_v1")
DAYS = dataset_named("us_stocks_sip/day_aggs_v1")
ONE_MINUTE, ONE_DAY = Timeframe(1, "m"), Timeframe(1, "d")
FIELDS = ("t", "o", "h", "l", "c", "v", "n")
UNLIMITED = CostModel(RateLimit.parse("unlimited"))


def _clients(sim: SimServer) -> tuple[PolygonClient, FlatFileClient]:
    settings = load_settings(polygon_api_key=sim.key, polygon_base_url=sim.base_url, rate_limit="unlimited",
                             retry_base_s=0.01)
    key_id, secret = sim.flatfile_key
    return PolygonClient.from_settings(settings), FlatFileClient(sim.base_url, key_id, secret)


async def _backfill_universe(
    store: Store, sim: SimServer, first: date, last: date, today: date,
) -> BackfillSpec:
    rest, files = _clients(sim)
    async with rest:
        await store.universes.save("all-stocks", UniverseSpec().to_json())
        spec = await universe_spec(store, rest, "all-stocks", parse_timeframes("1m,1d"), first, last,
                                   today=today)
        now = local_midnight_ms(today, NEW_YORK)
        report = await run_backfill(store, rest, replace(spec, source="auto"), files=files, cost=UNLIMITED,
                                    now=now)
    assert report.exit_code == 0, report.errors
    assert report.requests == 0  # every day of the month is published: nothing goes to REST
    return spec


async def _assert_exact(store: Store, sim: SimServer, ticker: str, first: date, last: date) -> int:
    """The ticker's stored 1m and 1d bars over the days equal the simulator's; returns its minute bars."""
    for tf, ds in ((ONE_MINUTE, MINUTES), (ONE_DAY, DAYS)):
        start, end = ds.day_range(first).start_ms, ds.day_range(last).end_ms
        expected = sim.market.aggregates(ticker, tf, start, end)
        got = await store.bars(ticker, tf, start, end)
        for name in FIELDS:
            assert np.array_equal(getattr(got, name), getattr(expected, name)), (ticker, tf, name)
        assert np.isnan(got.vw).all()  # flat files carry no vw
    return len(await store.bars(ticker, ONE_MINUTE, MINUTES.day_range(first).start_ms,
                                MINUTES.day_range(last).end_ms))


async def _assert_market_covered(store: Store, tickers: list[str], first: date, last: date) -> None:
    for ds in (MINUTES, DAYS):
        days = ds.days(first, last)
        recorded = [d for d in await store.market_days.recorded(ds.prefix, 0, 2**62)
                    if d.timeframe == str(ds.timeframe)]
        assert len(recorded) == len(days)
        for ticker in tickers:
            held = await store.coverage(ticker, Dataset.BARS, str(ds.timeframe))
            assert all(held.covers(ds.day_range(d)) for d in days), (ticker, ds.prefix)


async def test_flatfile_universe_month_is_stored_exactly_and_the_whole_market_covered(
    store: Store, sim_factory: SimFactory,
) -> None:
    """All stocks, March 2024, 1m and 1d: 42 files, every sampled series exact, every day covered."""
    today = date(2024, 4, 2)
    sim = await sim_factory(n_stocks=10, now_ms=local_midnight_ms(today, NEW_YORK))
    first, last = date(2024, 3, 1), date(2024, 3, 28)  # the 29th was Good Friday
    spec = await _backfill_universe(store, sim, first, last, today)
    tickers = [t.symbol for t in spec.tickers]
    assert len(tickers) == 10 and len(MINUTES.days(first, last)) == 20
    sample = ["AAPL", "SPY", tickers[0], tickers[len(tickers) // 2], tickers[-1]]
    for ticker in sorted(set(sample) & set(tickers)):
        assert await _assert_exact(store, sim, ticker, first, last) > 0
    await _assert_market_covered(store, [*tickers, "NOTLISTED"], first, last)


@pytest.mark.slow
async def test_flatfile_universe_holds_thin_and_delisted_names_exactly_through_a_delisting(
    store: Store, sim_factory: SimFactory,
) -> None:
    """1,158 securities across LNDFJ's delisting (last session March 8): liquid, thin and delisted exact."""
    today = date(2024, 3, 13)
    sim = await sim_factory(n_stocks=1158, now_ms=local_midnight_ms(today, NEW_YORK))
    first, last = date(2024, 3, 7), date(2024, 3, 11)
    spec = await _backfill_universe(store, sim, first, last, today)
    tickers = [t.symbol for t in spec.tickers]
    assert "LNDFJ" in tickers
    delisted = await _assert_exact(store, sim, "LNDFJ", first, last)
    assert delisted > 0 and not len(await store.bars("LNDFJ", ONE_MINUTE, MINUTES.day_range(last).start_ms,
                                                     MINUTES.day_range(last).end_ms))
    counts = {t: len(b) for t, b in sim.flatfiles.bars(MINUTES, first).items()}
    thin = min(counts, key=lambda t: counts[t])
    assert counts[thin] < 390 // 4  # a name that trades in fewer than a quarter of the minutes
    for ticker in ("AAPL", thin):
        assert await _assert_exact(store, sim, ticker, first, last) > 0
    await _assert_market_covered(store, [*tickers, "NOTLISTED"], first, last)
