"""The engine end to end: simulator over HTTP, real SQLite and PostgreSQL, exact ground truth."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime

import numpy as np
import pytest_asyncio

from mdw.backfill import BackfillSpec, Plan, execute_request, plan_only, run_backfill
from mdw.backfill.plan import OutcomeKey
from mdw.domain import BarBatch, RangeSet, SeriesKey, Timeframe, day_range_ms, parse_tickers, parse_timeframes
from mdw.polygon import Pacing, PolygonClient
from mdw.simulator import SimServer
from mdw.store import Dataset, Store
from mdw.store.base import WriteSize
from mdw.store.sqlstore import SqlStore

from .helpers import make_spec


@pytest_asyncio.fixture
async def client(sim: SimServer) -> AsyncIterator[PolygonClient]:
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as c:
        yield c


def served(sim: SimServer) -> tuple[int, int]:
    stats = sim.stats()
    return int(stats["requests"]), int(stats["bars_served"])


async def assert_ground_truth(store: Store, sim: SimServer, spec: BackfillSpec) -> int:
    """Every series of ``spec`` holds exactly the simulator's bars; returns the bar count."""
    total = 0
    for tk in spec.tickers:
        rng = spec.wanted(tk.asset_class)
        for tf in spec.timeframes:
            expected = sim.market.aggregates(tk.symbol, tf, rng.start_ms, rng.end_ms)
            got = await store.bars(tk.symbol, tf, rng.start_ms, rng.end_ms)
            assert len(got) == len(expected), f"{tk} {tf}"
            assert got.equals(expected), f"{tk} {tf}"
            total += len(expected)
    return total


async def test_backfill_equals_ground_truth_when_many_tickers_and_timeframes(
    store: Store, sim: SimServer, client: PolygonClient
) -> None:
    """Stocks, an ETF and crypto at three timeframes land exactly; a second run requests nothing."""
    spec = make_spec("AAPL,SPY,X:BTCUSD", "5m,1h,1d", "2024-03-01", "2024-03-12", corporate_actions=True)
    planned = await plan_only(store, spec)
    report = await run_backfill(store, client, spec)
    assert report.status == "ok" and report.exit_code == 0
    assert report.requests == planned.request_count == served(sim)[0]
    bars = await assert_ground_truth(store, sim, spec)
    assert report.bars_fetched == bars == report.bars_inserted
    held = {d.id for d in await store.actions.dividends("AAPL")}
    today = datetime.now(UTC).date()  # declared dividends with a later ex-date come with later runs
    truth = {d.id for d in sim.market.dividends("AAPL") if date(2024, 3, 1) <= d.ex_dividend_date <= today}
    assert held == truth
    assert {s.id for s in await store.actions.splits("AAPL")} == {
        s.id for s in sim.market.splits("AAPL") if s.execution_date >= date(2024, 3, 1)
    }
    before = served(sim)
    again = await run_backfill(store, client, spec)
    assert again.requests == 0 and served(sim) == before and again.status == "ok"
    runs = await store.runs.recent()
    assert [r.status for r in runs[:2]] == ["ok", "ok"] and runs[1].report["requests"] == report.requests


async def test_backfill_fetches_only_new_part_when_range_is_extended(
    store: Store, sim: SimServer, client: PolygonClient
) -> None:
    """Extending the end date requests one range per series and serves only the new bars."""
    first = make_spec("AAPL,X:ETHUSD", "15m,1d", "2024-04-01", "2024-04-05", grouped_daily=False)
    await run_backfill(store, client, first)
    before = served(sim)
    longer = replace(first, end=date(2024, 4, 12))
    report = await run_backfill(store, client, longer)
    requests, bars = served(sim)
    assert report.requests == requests - before[0] == 4
    new = 0
    for tk in longer.tickers:
        lo = longer.wanted(tk.asset_class).start_ms
        mid = first.wanted(tk.asset_class).end_ms
        hi = longer.wanted(tk.asset_class).end_ms
        for tf in longer.timeframes:
            new += len(sim.market.aggregates(tk.symbol, tf, mid, hi))
            assert len(sim.market.aggregates(tk.symbol, tf, lo, mid)) > 0
    assert bars - before[1] == new == report.bars_fetched
    await assert_ground_truth(store, sim, longer)


async def test_backfill_refetches_only_the_hole_when_middle_is_deleted(
    store: Store, sim: SimServer, client: PolygonClient
) -> None:
    """A session cut out of the middle is the only thing the next run asks for."""
    spec = make_spec("AAPL", "5m", "2024-05-06", "2024-05-10")
    await run_backfill(store, client, spec)
    tf = Timeframe.parse("5m")
    hole = day_range_ms(date(2024, 5, 8), date(2024, 5, 8), spec.tickers[0].asset_class.tz)
    deleted = await store.delete_range("AAPL", tf, hole.start_ms, hole.end_ms)
    assert deleted == len(sim.market.aggregates("AAPL", tf, hole.start_ms, hole.end_ms)) > 0
    before = served(sim)
    report = await run_backfill(store, client, spec)
    assert served(sim) == (before[0] + 1, before[1] + deleted)
    assert report.requests == 1 and report.bars_inserted == deleted
    await assert_ground_truth(store, sim, spec)


async def test_backfill_isolates_failure_when_one_ticker_is_not_found(
    store: Store, sim_factory: object
) -> None:
    """A ticker the vendor answers 404 for fails alone; the others complete and the exit code is 1."""
    sim = await sim_factory(keys={"k": "unlimited"}, not_found_tickers=frozenset({"ZZZZ"}))  # type: ignore[operator]
    spec = make_spec("AAPL,ZZZZ,X:BTCUSD", "1h,1d", "2024-03-04", "2024-03-08", grouped_daily=False)
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as c:
        report = await run_backfill(store, c, spec)
    assert report.exit_code == 1 and report.status == "partial"
    bad = {s.series: s for s in report.failed_series}
    assert set(bad) == {SeriesKey("ZZZZ", Timeframe(1, "h")), SeriesKey("ZZZZ", Timeframe(1, "d"))}
    assert all(s.status == "failed" and s.reason for s in bad.values())
    await assert_ground_truth(store, sim, replace(spec, tickers=tuple(parse_tickers("AAPL,X:BTCUSD"))))
    assert await store.coverage("ZZZZ", Dataset.BARS, "1h") == RangeSet()


async def test_plan_only_count_equals_requests_when_run_afterwards(
    store: Store, sim: SimServer, client: PolygonClient
) -> None:
    """The dry-run plan calls nothing and bounds what the run sends: SOL's 1m over 36 days may need
    two pages (the calendar's count) and is paged, one probe proves the unknown plan's history; a
    re-plan after it is exact."""
    spec = make_spec("X:SOLUSD,MSFT", "1m,4h", "2024-01-01", "2024-02-05")
    plan = await plan_only(store, spec)
    assert served(sim)[0] == 0
    assert plan.per_series()["X:SOLUSD 1m"] == 2 and plan.probes == 1
    estimate = plan.estimate()
    assert (estimate.low, estimate.high, estimate.sure) == (5, 7, "bounded")  # SOL 4h too
    report = await run_backfill(store, client, spec)
    assert estimate.low <= report.requests == served(sim)[0] <= estimate.high
    assert sim.stats()["pages_served"] == report.requests
    again = make_spec("X:SOLUSD,MSFT", "1m,4h", "2023-01-01", "2023-01-05")
    exact = (await plan_only(store, again)).estimate()
    assert exact.sure == "exact" and exact.expected == 4
    await assert_ground_truth(store, sim, spec)


async def test_grouped_daily_equals_ground_truth_when_many_stocks_few_sessions(
    store: Store, sim_factory: object
) -> None:
    """Six listed stocks over two sessions cost two grouped requests and equal the per-ticker daily bars."""
    sim = await sim_factory(keys={"k": "unlimited"}, n_stocks=40)  # type: ignore[operator]
    names = ("AAPL", "MSFT", "JPM", "NVDA", "V", "WMT")
    listed = {t: (date(2024, 3, 7), date(2024, 3, 10)) for t in names}
    spec = make_spec(",".join(names), "1d", "2024-03-07", "2024-03-10", spans=listed)
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as client:
        report = await run_backfill(store, client, spec)
        again = await run_backfill(store, client, spec)
    assert report.requests == 2 == served(sim)[0]
    assert sim.stats()["requests_by_endpoint"] == {"grouped_stocks": 2}
    await assert_ground_truth(store, sim, spec)
    assert again.requests == 0


async def test_grouped_daily_asks_per_ticker_when_ticker_absent_from_grouped(
    store: Store, sim_factory: object
) -> None:
    """ETFs missing from the market's grouped listing are fetched on their own, never covered empty:
    once over all the sessions they were absent from, not once per session."""
    sim = await sim_factory(keys={"k": "unlimited"}, n_stocks=40)  # type: ignore[operator]
    assert "SPY" not in sim.market.universe()
    listed = {t: (date(2024, 3, 7), date(2024, 3, 8)) for t in ("AAPL", "MSFT", "JPM", "V", "WMT")}
    spec = make_spec("AAPL,MSFT,JPM,SPY,V,WMT", "1d", "2024-03-07", "2024-03-08", spans=listed)
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as client:
        report = await run_backfill(store, client, spec)
    assert report.status == "ok" and report.requests == 3  # two sessions + SPY over both
    assert sim.stats()["requests_by_endpoint"] == {"grouped_stocks": 2, "aggs": 1}
    await assert_ground_truth(store, sim, spec)


def _same_bars(derived: BarBatch, vendor: BarBatch, exact_volume: bool) -> None:
    assert derived.t.tolist() == vendor.t.tolist()
    for col in ("o", "h", "l", "c", "n"):
        assert np.array_equal(getattr(derived, col), getattr(vendor, col)), col
    if exact_volume:
        assert np.array_equal(derived.v, vendor.v)
    else:  # fractional crypto volumes: summing 5m sums is a different float order than 1m sums
        np.testing.assert_allclose(derived.v, vendor.v, rtol=1e-12)
    # VWAP of VWAPs equals the vendor's to rounding: (sum vw*v)/v is computed from 5m partials.
    np.testing.assert_allclose(derived.vw, vendor.vw, rtol=1e-12)


async def test_derive_equals_vendor_bars_when_coarser_timeframes_built_locally(
    store: Store, sim: SimServer, client: PolygonClient
) -> None:
    """With --derive only 5m is fetched; 15m, 1h and 4h built locally match the simulator's bars."""
    spec = make_spec("AAPL,X:BTCUSD", "5m,15m,1h,4h", "2024-03-08", "2024-03-12", derive=True)
    report = await run_backfill(store, client, spec)
    assert report.requests == 2 == served(sim)[0] and report.status == "ok"
    for tk in spec.tickers:
        rng = spec.wanted(tk.asset_class)
        for tf in parse_timeframes("15m,1h,4h"):
            got = await store.bars(tk.symbol, tf, rng.start_ms, rng.end_ms)
            expected = sim.market.aggregates(tk.symbol, tf, rng.start_ms, rng.end_ms)
            _same_bars(got, expected, exact_volume=tk.symbol == "AAPL")
            assert await store.coverage(tk.symbol, Dataset.BARS, str(tf)) == RangeSet.of([rng])


async def test_run_stops_and_commits_fetched_when_stop_is_set(store: Store, sim_factory: object) -> None:
    """Setting stop mid-run ends it as interrupted; covered data is exact; a re-run completes the rest."""
    sim = await sim_factory(keys={"k": "unlimited"}, latency_ms=20)  # type: ignore[operator]
    spec = make_spec("AAPL,MSFT,NVDA,X:BTCUSD,X:ETHUSD,SPY", "1h,4h", "2024-02-01", "2024-02-20")
    stop = asyncio.Event()

    class StopAfterFirst:
        def planned(self, plan: Plan) -> None:
            return None

        def advanced(self, key: OutcomeKey, ok: bool, bars: int) -> None:
            stop.set()

    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("20/s", max_in_flight=2)) as c:
        report = await run_backfill(store, c, spec, progress=StopAfterFirst(), stop=stop)
        assert report.status == "interrupted" and report.exit_code == 130
        assert 1 <= sum(s.requests_done for s in report.series.values()) < report.planned_requests
        for tk in spec.tickers:
            for tf in spec.timeframes:
                for rng in await store.coverage(tk.symbol, Dataset.BARS, str(tf)):
                    got = await store.bars(tk.symbol, tf, rng.start_ms, rng.end_ms)
                    assert got.equals(sim.market.aggregates(tk.symbol, tf, rng.start_ms, rng.end_ms))
        remaining = (await plan_only(store, spec)).request_count
        before = served(sim)[0]
        rest = await run_backfill(store, c, spec)
    assert rest.status == "ok" and rest.requests == remaining == served(sim)[0] - before
    await assert_ground_truth(store, sim, spec)


async def test_writer_commits_a_whole_run_in_one_transaction_when_the_store_asks_for_large_groups(
    store: Store, sim: SimServer, client: PolygonClient
) -> None:
    """A store whose write size asks for more bars than the run fetches (and a wait longer than the
    run) gets every page in one transaction, committed when the fetchers are done; the data is
    exact and a second run asks for nothing."""
    assert isinstance(store, SqlStore)
    store.write_size = WriteSize(rows=10**8, writes=10**6, queued=64, min_rows=10**8, max_wait_s=600.0)
    spec = make_spec("AAPL,SPY,X:BTCUSD", "5m,1h", "2024-03-01", "2024-03-12")
    report = await run_backfill(store, client, spec)
    assert report.status == "ok"
    assert report.transactions == 1 < report.requests
    assert report.bars_fetched == await assert_ground_truth(store, sim, spec) == report.bars_inserted
    assert (await plan_only(store, spec)).request_count == 0


async def test_execute_request_fills_one_request_when_called_alone(
    store: Store, sim: SimServer, client: PolygonClient
) -> None:
    """The reusable unit commits a request's bars and coverage on its own (distributed workers)."""
    spec = make_spec("X:ETHUSD,QQQ", "30m", "2024-06-03", "2024-06-07")
    plan = await plan_only(store, spec)
    results = [await execute_request(client, store, req) for req in plan.requests]
    assert all(r.ok for r in results) and sum(r.bars for r in results) == sum(
        r.written.inserted for r in results
    )
    await assert_ground_truth(store, sim, spec)
    assert (await plan_only(store, spec)).request_count == 0
