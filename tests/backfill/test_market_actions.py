"""Corporate actions market-wide (issue #16 item 3), against the simulator.

Dividends and splits of many tickers come from a few ``/stocks/v1`` listings (``ticker.any_of`` or
the whole market) instead of two requests per ticker; the vendor's ``historical_adjustment_factor``
is checked against mdw's own ratios; stock dividends are splits to mdw; the deprecated v3
listings answer when v1 is not served; adjusted reads equal the simulator's adjusted ground truth.
"""

from __future__ import annotations

from datetime import date

import numpy as np

from mdw.adjust import adjust_bars
from mdw.backfill import run_backfill
from mdw.backfill.plan import BackfillSpec
from mdw.backfill.planner import plan_backfill
from mdw.domain import AssetClass, Ticker, Timeframe, parse_tickers, to_ms
from mdw.plans import Limits, Plan
from mdw.polygon import Pacing, PolygonClient
from mdw.simulator import Market, SimServer
from mdw.simulator.actions import adjustment_type
from mdw.simulator.testing import SimFactory
from mdw.store.base import Store

NOW = to_ms("2025-06-02T12:00:00Z")
TODAY = date(2025, 6, 2)
FIRST, LAST = date(2024, 6, 3), date(2025, 5, 30)
LIMITS = Limits(Plan.parse("advanced"), margin_ms=0)
DAY = Timeframe.parse("1d")


def listed_stocks(market: Market, count: int, first: date = FIRST) -> list[str]:
    """Stocks listed from ``first`` to today (the legacy names first), ``count`` of them."""
    names = [r.ticker for r in market.listings() if r.market == "stocks" and r.start <= first
             and (r.end is None or r.end > TODAY)]
    return names[:count]


def actions_spec(tickers: list[str], first: date = FIRST) -> BackfillSpec:
    return BackfillSpec(tuple(Ticker(t, AssetClass.STOCKS) for t in tickers), (), first, LAST,
                        corporate_actions=True)


def endpoint_requests(sim: SimServer, *names: str) -> int:
    by_endpoint = sim.stats()["requests_by_endpoint"]
    assert isinstance(by_endpoint, dict)
    return sum(int(by_endpoint.get(n, 0)) for n in names)


async def assert_actions_exact(store: Store, sim: SimServer, tickers: list[str], first: date = FIRST) -> None:
    """Every ticker's stored dividends and splits are the simulator's of the wanted days."""
    for t in tickers:
        want_divs = sorted(d.id for d in sim.market.dividends(t) if first <= d.ex_dividend_date <= TODAY)
        want_splits = sorted(s.id for s in sim.market.splits(t) if first <= s.execution_date <= TODAY)
        assert sorted(d.id for d in await store.actions.dividends(t)) == want_divs, t
        assert sorted(s.id for s in await store.actions.splits(t)) == want_splits, t


def test_planner_asks_for_a_thousand_tickers_actions_in_a_handful_of_requests() -> None:
    """1,000 tickers over a year: a few listings, not 2,000 requests; one ticker stays per ticker."""
    tickers = [f"T{i:04d}" for i in range(1000)]
    plan = plan_backfill(actions_spec(tickers), {}, NOW)
    assert len(plan.actions) <= 5 and sum(a.pages for a in plan.actions) <= 5
    covered = {t for a in plan.actions for t in a.tickers}
    assert covered == set(tickers)
    single = plan_backfill(actions_spec(["AAPL"]), {}, NOW)
    assert sorted((a.ticker, a.kind) for a in single.actions) == [("AAPL", "dividends"), ("AAPL", "splits")]


async def test_many_tickers_actions_come_from_a_few_v1_listings_exactly(
    store: Store, sim_factory: SimFactory,
) -> None:
    """1,000 stocks' actions over a year in at most a handful of requests, each ticker's rows exact,
    the vendor's factors agree with mdw's, and a re-run asks nothing."""
    sim = await sim_factory(now_ms=NOW, rate_limit="unlimited", n_stocks=2000)
    tickers = listed_stocks(sim.market, 1000)
    assert len(tickers) == 1000
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as client:
        report = await run_backfill(store, client, actions_spec(tickers), now=NOW, limits=LIMITS)
        assert report.status == "ok" and report.factor_mismatches == 0
        assert report.requests <= 5 and sim.stats()["rate_limited"] == 0
        # a listing's tickers commit together, up to 500 a transaction: one or two per listing (it
        # was one per ticker and kind, 2,000)
        assert report.transactions <= 2 * report.requests
        assert endpoint_requests(sim, "dividends_v3", "splits_v3") == 0
        await assert_actions_exact(store, sim, tickers)
        again = await run_backfill(store, client, actions_spec(tickers), now=NOW, limits=LIMITS)
        assert again.requests == 0


async def test_v3_listings_answer_when_the_plan_lacks_v1_and_adjusted_reads_are_exact(
    store: Store, sim_factory: SimFactory,
) -> None:
    """v1 refused (not entitled): the run turns to v3 once and stores the same actions; bars adjusted
    with them, stock dividends and reverse splits included, equal the simulator's adjusted bars."""
    sim = await sim_factory(now_ms=NOW, rate_limit="unlimited", n_stocks=3000,
                            not_entitled=frozenset({"dividends_v1", "splits_v1"}))
    first = date(2021, 1, 4)  # stock dividends are rare: four and a half years holds each kind
    tickers = listed_stocks(sim.market, 60, first)
    kinds: dict[str, str] = {}
    for r in sim.market.listings():
        if r.market != "stocks" or not (r.start <= first and (r.end is None or r.end > TODAY)):
            continue
        for s in sim.market.splits(r.ticker):
            if first <= s.execution_date <= TODAY:
                kinds.setdefault(adjustment_type(s), r.ticker)
        if len(kinds) == 3:
            break
    assert set(kinds) == {"forward_split", "reverse_split", "stock_dividend"}, kinds
    tickers = list(dict.fromkeys([*tickers, *kinds.values(), "NVDA"]))
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as client:
        report = await run_backfill(store, client, actions_spec(tickers, first), now=NOW, limits=LIMITS)
        assert report.status == "ok", report.errors
        # refused at most once per kind (the two listings start together), then v3 only
        assert endpoint_requests(sim, "dividends_v1", "splits_v1") <= 2
        await assert_actions_exact(store, sim, tickers, first)
        split_names = [*kinds.values(), "NVDA"]
        bars = BackfillSpec(tuple(parse_tickers(",".join(split_names))), (DAY,), first, LAST)
        assert (await run_backfill(store, client, bars, now=NOW, limits=LIMITS)).status == "ok"
    for t in split_names:
        rng = bars.wanted(AssetClass.STOCKS)
        raw = await store.bars(t, DAY, rng.start_ms, rng.end_ms)
        got = adjust_bars(raw, await store.actions.splits(t), [], "splits", as_of=TODAY)
        truth = sim.market.aggregates(t, DAY, rng.start_ms, rng.end_ms, adjusted=True)
        assert len(got) == len(truth) > 200, t
        assert np.array_equal(got.c, truth.c) and np.array_equal(got.o, truth.o), t
