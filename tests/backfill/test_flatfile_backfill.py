"""Backfills that take whole-market days from flat files: ground truth, coverage, settle, dry run.

The whole market is the universe of all stocks the simulator's reference endpoint lists (issue #17's
universes are not in mdw yet), over real HTTP and S3 against real SQLite and PostgreSQL stores.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date

import numpy as np
import pytest

from mdw.backfill.fileplan import CostModel
from mdw.backfill.plan import BackfillSpec
from mdw.backfill.runner import plan_only, run_backfill
from mdw.config import RateLimit, load_settings
from mdw.domain import NEW_YORK, Timeframe, local_midnight_ms, parse_tickers, parse_timeframes
from mdw.flatfiles.keys import dataset_named
from mdw.flatfiles.s3 import FlatFileClient
from mdw.polygon import PolygonClient
from mdw.simulator import SimServer
from mdw.simulator.testing import SimFactory
from mdw.store import Dataset, Store

MINUTES = dataset_named("us_stocks_sip/minute_aggs_v1")
DAYS = dataset_named("us_stocks_sip/day_aggs_v1")
NOW = local_midnight_ms(date(2024, 3, 13), NEW_YORK) + 15 * 3_600_000  # Wed 15:00 ET: the 12th is out
UNLIMITED = CostModel(RateLimit.parse("unlimited"))


@asynccontextmanager
async def clients(sim: SimServer) -> AsyncIterator[tuple[PolygonClient, FlatFileClient]]:
    settings = load_settings(polygon_api_key=sim.key, polygon_base_url=sim.base_url, rate_limit="unlimited",
                             retry_base_s=0.01)
    key_id, secret = sim.flatfile_key
    async with PolygonClient.from_settings(settings) as rest:
        yield rest, FlatFileClient(sim.base_url, key_id, secret)


async def all_stocks(rest: PolygonClient) -> list[str]:
    """Every stock the simulator's reference endpoint lists: the whole market."""
    return sorted(str(row["ticker"]) for row in await rest.tickers(market="stocks"))


def spec_for(tickers: list[str], timeframes: str = "1m,1d", **kw: object) -> BackfillSpec:
    return BackfillSpec(tuple(parse_tickers(tickers)), tuple(parse_timeframes(timeframes)), date(2024, 3, 4),
                        date(2024, 3, 13), **kw)  # type: ignore[arg-type]


@pytest.fixture
async def market(sim_factory: SimFactory) -> SimServer:
    return await sim_factory(n_stocks=25, n_crypto=2, n_fx=1, now_ms=NOW)


def _sample(tickers: list[str]) -> list[str]:
    """Liquid, thin and synthetic names across the sorted universe."""
    picks = {"AAPL", "SPY", tickers[0], tickers[len(tickers) // 2], tickers[-1]}
    return sorted(t for t in picks if t in tickers)


async def test_flatfile_backfill_stores_the_whole_market_exactly_and_covers_its_days(
    store: Store, market: SimServer,
) -> None:
    """All stocks, 1m and 1d: published days come from files, the rest from REST; bars are exact."""
    async with clients(market) as (rest, files):
        tickers = await all_stocks(rest)
        assert len(tickers) == 25
        spec = spec_for(tickers)
        report = await run_backfill(store, rest, spec, files=files, cost=UNLIMITED, now=NOW)
    assert report.exit_code == 0, report.errors
    assert report.files["done"] == 14 and report.files["failed"] == 0  # 7 sessions x (minute + day)
    assert report.files["requests"] == 14 + 2 * 2  # a GET per file; a listing and a HEAD per dataset
    assert report.requests == 25  # March 13 (today, not published) over REST: its minutes, per ticker
    for ticker in _sample(tickers):
        for tf in (Timeframe(1, "m"), Timeframe(1, "d")):
            rng = spec.wanted(MINUTES.asset)
            # today's daily bar is still open: only the minutes up to now are final
            final = NOW if tf.intraday else local_midnight_ms(date(2024, 3, 13), NEW_YORK)
            expected = market.market.aggregates(ticker, tf, rng.start_ms, final)
            got = await store.bars(ticker, tf, rng.start_ms, rng.end_ms)
            for name in ("t", "o", "h", "l", "c", "v", "n"):
                assert np.array_equal(getattr(got, name), getattr(expected, name)), (ticker, tf, name)
    held = await store.coverage("NOTLISTED", Dataset.BARS, "1m")  # not traded: confirmed empty by files
    assert all(held.covers(MINUTES.day_range(d)) for d in MINUTES.days(date(2024, 3, 4), date(2024, 3, 12)))
    assert len(await store.market_days.recorded(MINUTES.prefix, 0, 2**62)) == 7


async def test_flatfile_backfill_dry_run_shows_both_costs_and_requests_nothing(
    store: Store, market: SimServer,
) -> None:
    """plan_only lists the bucket but fetches no bar: the plan carries the files and both costs."""
    async with clients(market) as (rest, files):
        plan = await plan_only(store, spec_for(await all_stocks(rest)), files=files, cost=UNLIMITED, now=NOW)
    assert {f.dataset for f in plan.files} == {MINUTES, DAYS} and len(plan.files) == 14
    costs = {c.dataset: c for c in plan.costs}
    assert costs[MINUTES.prefix].file_s < costs[MINUTES.prefix].rest_s
    assert files.stats.by_kind.get("get", 0) == 0


async def test_flatfile_backfill_settle_finds_a_replaced_file_and_counts_its_corrections(
    store: Store, market: SimServer,
) -> None:
    """After the vendor replaces a day's files, --settle ingests them again: the changes are updates."""
    async with clients(market) as (rest, files):
        spec = spec_for(await all_stocks(rest), source="flatfiles")
        assert (await run_backfill(store, rest, spec, files=files, cost=UNLIMITED, now=NOW)).exit_code == 0
        day = date(2024, 3, 6)
        market.flatfiles.replace([day])
        report = await run_backfill(store, rest, spec, files=files, cost=UNLIMITED, now=NOW, settle=True)
    settle = report.files["settle"]
    assert settle["replaced"] == 2 and settle["reingested"] == 2  # the minute and the day file
    truth = market.flatfiles.bars(MINUTES, day)
    rng = MINUTES.day_range(day)
    corrected = 0
    for ticker, expected in truth.items():
        got = await store.bars(ticker, Timeframe(1, "m"), rng.start_ms, rng.end_ms)
        assert np.array_equal(got.v, expected.v) and np.array_equal(got.n, expected.n)
        rest_bars = market.market.aggregates(ticker, Timeframe(1, "m"), rng.start_ms, rng.end_ms)
        corrected += int(np.sum(rest_bars.v != expected.v))
    day_changes = sum(1 for t, b in market.flatfiles.bars(DAYS, day).items()
                      if b.v[0] != market.market.daily_bar(t, day).v[0])
    assert corrected > 0 and settle["bars_updated"] == corrected + day_changes == report.bars_updated
    again = await run_backfill(store, rest, spec, files=files, cost=UNLIMITED, now=NOW, settle=True)
    assert again.files["settle"]["replaced"] == 0


async def test_flatfile_backfill_uses_rest_for_a_few_tickers_on_an_unlimited_plan(
    store: Store, market: SimServer,
) -> None:
    """auto with two tickers: their requests are cheaper than the market's files; no file is read."""
    async with clients(market) as (rest, files):
        report = await run_backfill(store, rest, spec_for(["AAPL", "KO"], "1m"), files=files,
                                    cost=UNLIMITED, now=NOW)
    assert report.exit_code == 0 and not report.files.get("planned") and report.requests == 2
    assert files.stats.by_kind.get("get", 0) == 0
