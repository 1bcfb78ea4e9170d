"""A long paged request learns its series' density from its first page (issue #16, ADR 0018).

On a fresh store the planner knows no density, so a liquid series' year is one request following
``next_url``: its pages would come one after another. The first page, full with a ``next_url``,
tells the density; the rest of the range is then cut into as many pieces as pages it is expected
to need, and the pieces run in parallel, each following its own ``next_url``.
"""

from __future__ import annotations

from tests.backfill.helpers import make_spec
from tests.backfill.test_fewest_requests import LIMITS, NOW, vendor_pages

from mdw.backfill import plan_only, run_backfill
from mdw.backfill.planner import final_end
from mdw.polygon import Pacing, PolygonClient
from mdw.simulator.testing import SimFactory
from mdw.store.base import Dataset, Store


async def test_a_liquid_minute_year_on_a_fresh_store_is_paged_in_parallel_at_the_pager_cost(
    store: Store, sim_factory: SimFactory,
) -> None:
    """BTC's 1m bars of 2024 (11 pager pages) on a fresh store: one planned request, yet more than
    one request in flight for it, no more than 1.02x the pager's pages, every bar exact, fully
    covered, and a second run sends nothing."""
    # latency: the in-process simulator answers inside one event loop; a wait lets requests overlap
    sim = await sim_factory(now_ms=NOW, rate_limit="unlimited", latency_ms=20)
    spec = make_spec("X:BTCUSD", "1m", "2024-01-01", "2024-12-31", grouped_daily=False)
    minimal = await vendor_pages(sim.base_url, spec, sim)
    assert minimal >= 5
    async with PolygonClient("test-key", sim.base_url, pacing=Pacing("unlimited")) as client:
        plan = await plan_only(store, spec, now=NOW, limits=LIMITS)
        assert len(plan.requests) == 1  # the store knows no density: one paged request
        sim.reset_stats()
        report = await run_backfill(store, client, spec, now=NOW, limits=LIMITS)
        stats = sim.stats()
        sent = int(stats["requests"])  # type: ignore[call-overload]
        assert report.status == "ok" and stats["rate_limited"] == 0
        assert sent <= 1.02 * minimal, (sent, minimal)
        assert int(stats["max_in_flight"]) > 1, stats  # type: ignore[call-overload]
        tk = spec.tickers[0]
        tf = spec.timeframes[0]
        rng = spec.wanted_for(tk)
        end = min(rng.end_ms, final_end(tk.asset_class, tf, NOW))
        got = await store.bars(tk.symbol, tf, rng.start_ms, end)
        assert got.equals(sim.market.aggregates(tk.symbol, tf, rng.start_ms, end))
        held = await store.coverage(tk.symbol, Dataset.BARS, str(tf))
        assert len(held.ranges) == 1
        assert held.ranges[0].start_ms <= rng.start_ms and held.ranges[-1].end_ms >= end
        again = await run_backfill(store, client, spec, now=NOW, limits=LIMITS)
        assert again.requests == 0
