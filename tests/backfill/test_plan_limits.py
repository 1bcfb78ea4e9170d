"""A key's plan against the simulator: a delayed plan never marks unpublished minutes covered."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from mdw.backfill import run_backfill
from mdw.backfill.boundary import PlanReach, plan_reach
from mdw.backfill.status import series_status, with_plan
from mdw.domain import NEW_YORK, RangeSet, SeriesKey, Timeframe, TimeRange
from mdw.plans import Limits, Plan
from mdw.polygon import Pacing, PolygonClient
from mdw.simulator.testing import SimFactory
from mdw.store import Dataset, Store, SymbolInfo

from .helpers import make_spec

# Wednesday 2025-03-05, 14:30 New York: mid-session.
NOW_MS = int(datetime(2025, 3, 5, 14, 30, tzinfo=NEW_YORK).timestamp() * 1000)
DAY_START = int(datetime(2025, 3, 5, tzinfo=NEW_YORK).timestamp() * 1000)
M1 = Timeframe(1, "m")
MINUTE = 60_000


async def test_delayed_plan_update_stores_every_minute_when_run_behind_by_the_delay(
    store: Store, sim_factory: SimFactory,
) -> None:
    """A 15-minute key: covered stops at now - delay - margin; a later update fills exactly the rest."""
    sim = await sim_factory(keys={"k": "starter"}, now_ms=NOW_MS)
    limits = Limits(Plan.parse("starter"), margin_ms=MINUTE)
    spec = make_spec("AAPL", "1m", "2025-03-05", "2025-03-05")
    async with PolygonClient("k", sim.base_url, pacing=Pacing("unlimited")) as client:
        report = await run_backfill(store, client, spec, now=NOW_MS, limits=limits)
        assert report.status == "ok"
        cut = NOW_MS - 16 * MINUTE  # 14:14 New York
        assert await store.coverage("AAPL", Dataset.BARS, "1m") == RangeSet.of([TimeRange(DAY_START, cut)])
        got = await store.bars("AAPL", M1, DAY_START, NOW_MS)
        assert got.equals(sim.market.aggregates("AAPL", M1, DAY_START, cut)) and len(got) > 0
        later = NOW_MS + 90 * MINUTE
        sim.clock.set(later)
        report = await run_backfill(store, client, spec, now=later, limits=limits)
        cut = later - 16 * MINUTE
        assert await store.coverage("AAPL", Dataset.BARS, "1m") == RangeSet.of([TimeRange(DAY_START, cut)])
        got = await store.bars("AAPL", M1, DAY_START, later)
        assert got.equals(sim.market.aggregates("AAPL", M1, DAY_START, cut))



async def test_free_plan_backfill_stores_the_last_two_years_when_asked_from_2015(
    store: Store, sim_factory: SimFactory,
) -> None:
    """With the plan known, nothing before its history is asked: no 403, exactly the allowed years."""
    sim = await sim_factory(keys={"free": "free"}, now_ms=NOW_MS, rate_limit="unlimited")
    limits = Limits(Plan.parse("free"), margin_ms=MINUTE)
    spec = make_spec("AAPL,MSFT", "1d,1h", "2015-01-01", "2025-03-05")
    first = int(datetime(2023, 3, 5, tzinfo=NEW_YORK).timestamp() * 1000)
    async with PolygonClient("free", sim.base_url, pacing=Pacing("unlimited")) as client:
        report = await run_backfill(store, client, spec, now=NOW_MS, limits=limits)
        assert report.status == "ok" and report.exit_code == 0
        assert sim.stats()["requests"] == report.requests > 0
        for ticker in ("AAPL", "MSFT"):
            for tf in (Timeframe(1, "d"), Timeframe(1, "h")):
                got = await store.bars(ticker, tf, 0, NOW_MS)
                assert got.equals(sim.market.aggregates(ticker, tf, first, DAY_START)), f"{ticker} {tf}"
                held = await store.coverage(ticker, Dataset.BARS, str(tf))
                assert held.ranges[0].start_ms == first
                outcome = report.series[SeriesKey(ticker, tf)]
                assert outcome.status == "ok" and outcome.outside_plan == "2015-01-01..2023-03-04"
        again = await run_backfill(store, client, spec, now=NOW_MS, limits=limits)
        assert again.requests == 0 and again.status == "ok"


def _refused(sim: object) -> int:
    by_status = sim.stats()["responses_by_status"]  # type: ignore[attr-defined]
    return int(by_status.get("403", 0))


@pytest.mark.parametrize("straddle", ["refuse", "clip"])
async def test_unknown_plan_learns_the_boundary_once_when_the_vendor_refuses_the_history(
    store: Store, sim_factory: SimFactory, straddle: str,
) -> None:
    """Plan unset, free key: refusals teach the boundary (fewer than one per series), the allowed
    part is stored exactly, the rest is outside_plan, and a re-run spends no refused request."""
    sim = await sim_factory(keys={"free": "free"}, now_ms=NOW_MS, rate_limit="unlimited", straddle=straddle)
    spec = make_spec("AAPL,MSFT", "1d,1h", "2015-01-01", "2025-03-05")
    first = int(datetime(2023, 3, 5, tzinfo=NEW_YORK).timestamp() * 1000)
    async with PolygonClient("free", sim.base_url, pacing=Pacing("unlimited")) as client:
        report = await run_backfill(store, client, spec, now=NOW_MS)
        assert report.status == "ok" and report.exit_code == 0
        assert 0 < _refused(sim) <= 4
        for ticker in ("AAPL", "MSFT"):
            for tf in (Timeframe(1, "d"), Timeframe(1, "h")):
                got = await store.bars(ticker, tf, 0, DAY_START)  # the key is end-of-day: today is withheld
                assert got.equals(sim.market.aggregates(ticker, tf, first, DAY_START)), f"{ticker} {tf}"
                outcome = report.series[SeriesKey(ticker, tf)]
                assert outcome.status == "ok" and outcome.outside_plan.startswith("2015-01-01..")
        assert (await store.plan_facts.learned("unset"))["history"].value == "2y"
        refused = _refused(sim)
        again = await run_backfill(store, client, spec, now=NOW_MS)
        assert again.status == "ok" and _refused(sim) == refused


async def test_plan_reach_is_configured_or_learned_and_status_shows_the_earlier_days_outside_plan(
    store: Store, sim_factory: SimFactory,
) -> None:
    """The first day the plan sells: the configured history's, else what a refusal taught; status
    marks the wanted days before it outside_plan, not missing."""
    free = Limits(Plan.parse("free"), margin_ms=MINUTE)
    assert await plan_reach(store, free, NOW_MS) == PlanReach("free", date(2023, 3, 5), "configured")
    assert (await plan_reach(store, None, NOW_MS)).source == "none"
    sim = await sim_factory(keys={"free": "free"}, now_ms=NOW_MS, rate_limit="unlimited")
    spec = make_spec("AAPL", "1d", "2015-01-01", "2025-03-05")
    async with PolygonClient("free", sim.base_url, pacing=Pacing("unlimited")) as client:
        report = await run_backfill(store, client, spec, now=NOW_MS)
    assert report.status == "ok"
    reach = await plan_reach(store, None, NOW_MS)
    assert reach == PlanReach("unset", date(2023, 3, 5), "learned")
    [row] = await with_plan(store, await series_status(store), reach)
    assert row.outside_plan == "2015-01-01..2023-03-04" and row.gaps == 0
    assert row.to_dict()["outside_plan"] == "2015-01-01..2023-03-04"


async def test_status_takes_a_tracked_symbols_start_as_its_wanted_start_without_any_run_report(
    store: Store, sim_factory: SimFactory,
) -> None:
    """A tracked symbol's persisted start date is its series' wanted start: status marks the days
    before the plan outside_plan although no run report says so (runs are pruned, a tracked
    symbol is not); an untracked timeframe and an inactive symbol are left alone."""
    sim = await sim_factory(now_ms=NOW_MS, rate_limit="unlimited")
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as client:
        spec = make_spec("AAPL,MSFT", "1d,1h", "2025-03-03", "2025-03-04")
        assert (await run_backfill(store, client, spec, now=NOW_MS)).status == "ok"
    await store.symbols.upsert(SymbolInfo("AAPL", "stocks", timeframes=("1d",), start_date="2016-06-01"))
    await store.symbols.upsert(SymbolInfo("MSFT", "stocks", active=False, timeframes=("1d",),
                                          start_date="2016-06-01"))
    reach = PlanReach("free", date(2023, 3, 5), "configured")
    rows = {f"{r.ticker} {r.timeframe}": r.outside_plan
            for r in await with_plan(store, await series_status(store), reach)}
    assert rows == {"AAPL 1d": "2016-06-01..2023-03-04", "AAPL 1h": None, "MSFT 1d": None, "MSFT 1h": None}

