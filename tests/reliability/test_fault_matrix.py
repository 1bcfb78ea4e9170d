"""The fault matrix: the backfill engine with the real client into a real store, against a faulty vendor.

Each case ends with the stored bars equal to the simulator's ground truth, no duplicate rows, and
every failed attempt accounted in the run report (and its copy in the ``runs`` table).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from mdw.backfill import plan_only, run_backfill
from mdw.backfill.plan import OutcomeKey
from mdw.domain import SeriesKey, Timeframe
from mdw.polygon import BreakerPolicy, Pacing, PolygonClient, RetryPolicy, Timeouts
from mdw.simulator import FaultConfig, SimConfig, start_simulator
from mdw.store import Dataset, QuarantinedBar, Store, open_store

from .conftest import (
    assert_exact,
    assert_stored_subset_exact,
    duplicate_bars,
    spec_of,
    total_bars,
)

# Three asset shapes, three timeframes, two weeks; small pages so one run makes ~30 requests.
SPEC = spec_of("AAPL,MSFT,X:BTCUSD", "15m,1h,1d", "2024-03-04", "2024-03-15", grouped_daily=False)
PAGE_LIMIT = 5000
REQUEST_FAULTS = ("error", "reset", "hang", "truncate", "status_error")

CASES: dict[str, dict[str, Any]] = {
    "5xx-10pct": {"faults": FaultConfig(error_rate=0.10)},
    "5xx-30pct": {"faults": FaultConfig(error_rate=0.30)},
    "429-storm-no-retry-after": {"rate_limit": "8/s", "retry_after": False, "client_rate": "100/s"},
    "429-storm-retry-after": {"rate_limit": "8/s", "retry_after": True, "client_rate": "100/s"},
    "latency-spikes": {"faults": FaultConfig(latency_ms=5, jitter_ms=350), "timeout": 0.25},
    "hung-connections": {"faults": FaultConfig(hang_rate=0.15, hang_s=3.0), "timeout": 0.25},
    "connection-resets": {"faults": FaultConfig(reset_rate=0.2)},
    "truncated-json": {"faults": FaultConfig(truncate_rate=0.2)},
    "200-status-error": {"faults": FaultConfig(status_error_rate=0.2)},
    "everything-at-once": {"faults": FaultConfig(error_rate=0.05, reset_rate=0.05, hang_rate=0.05, hang_s=3.0,
                                                 truncate_rate=0.05, status_error_rate=0.05,
                                                 invalid_bar_rate=0.0005), "timeout": 0.25},
}


def _client(sim: Any, case: dict[str, Any]) -> PolygonClient:
    # Timeouts short enough that a hang or a latency spike costs a fraction of a second (elsewhere
    # long enough that a busy machine adds no timeouts of its own); a breaker threshold above any
    # plausible run of random faults (outages have their own test).
    return PolygonClient(sim.key, sim.base_url,
                         pacing=Pacing(case.get("client_rate", "unlimited"), 8, PAGE_LIMIT),
                         retry=RetryPolicy(attempts=15, base_s=0.02, cap_s=0.2),
                         timeouts=Timeouts(connect_s=2.0, request_s=case.get("timeout", 5.0)),
                         breaker=BreakerPolicy(threshold=60))


QUICK_ON_POSTGRES = {"5xx-30pct", "connection-resets", "everything-at-once"}


def _matrix() -> list[Any]:
    """Every case on SQLite; on PostgreSQL three in ``make test`` and the rest in ``make soak``."""
    out = []
    for name in CASES:
        out.append(pytest.param(name, "sqlite", id=f"sqlite-{name}"))
        marks = () if name in QUICK_ON_POSTGRES else (pytest.mark.slow,)
        out.append(pytest.param(name, "postgres", id=f"postgres-{name}", marks=marks))
    return out


@pytest.mark.parametrize(("name", "backend"), _matrix())
async def test_fault_matrix_stores_exact_ground_truth_when_vendor_misbehaves(
    name: str, backend: str, backend_url: str
) -> None:
    """The run ends ok, the data equals the ground truth with no duplicates, every fault is reported."""
    case = CASES[name]
    async with await open_store(backend_url) as store:
        await _run_case(name, case, store, backend_url)


async def _run_case(name: str, case: dict[str, Any], store: Store, store_url: str) -> None:
    config = SimConfig(seed=7, faults=case.get("faults", FaultConfig()), rate_limit=case.get("rate_limit"),
                       retry_after=case.get("retry_after", False), n_stocks=30)
    plan = await plan_only(store, SPEC)
    async with start_simulator(config) as sim, _client(sim, case) as client:
        started = time.perf_counter()
        report = await run_backfill(store, client, SPEC)
        wall = time.perf_counter() - started
        stats = sim.stats()
        client_stats = client.stats()
        bars = await assert_exact(store, sim, SPEC)
    injected = sum(stats["faults"].get(k, 0) for k in REQUEST_FAULTS)
    print(f"\n[fault {name} {store_url.split(':')[0]}] planned={plan.request_count} "
          f"requests={report.requests} retries={report.retries} 429s={report.rate_limited} "
          f"injected={stats['faults']} failures={client_stats.failures_by_class} bars={bars} "
          f"wall={wall:.2f}s")
    assert report.status == "ok" and report.exit_code == 0, report.to_dict()["series"]
    assert await duplicate_bars(store_url) == 0
    assert await total_bars(store_url) == bars
    # every request the vendor saw is in the report, and every failed one is a counted retry
    assert report.requests == stats["requests"]
    assert report.retries == client_stats.retries == client_stats.total_requests - client_stats.pages
    if "rate_limit" in case:
        assert report.rate_limited == stats["rate_limited"] > 0
        assert report.retries >= report.rate_limited
    elif name == "latency-spikes":
        assert report.retries > 0  # some answers took longer than the client's timeout
    elif "invalid_bar_rate" in str(case) and case["faults"].invalid_bar_rate:
        assert injected > 0 and report.retries >= injected
    else:
        assert injected > 0 and report.retries == injected
    [row] = [r for r in await store.runs.recent() if r.id == report.run_id]
    assert row.status == "ok" and row.report["retries"] == report.retries
    assert row.report["requests"] == report.requests
    # a clean retry quarantines nothing
    assert report.quarantined == 0 and await store.quarantine.recent() == []


async def test_invalid_bars_are_reported_and_never_stored_when_vendor_keeps_serving_them(
    store: Store, store_url: str
) -> None:
    """Bars with h < l on every attempt fail their series loudly and are quarantined, never stored."""
    config = SimConfig(seed=11, faults=FaultConfig(invalid_bar_rate=0.02), n_stocks=30)
    async with start_simulator(config) as sim:
        async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited", page_limit=PAGE_LIMIT),
                                 retry=RetryPolicy(attempts=3)) as client:
            report = await run_backfill(store, client, SPEC)
        corrupted = sim.stats()["faults"]["invalid_bar"]
        failed = {s.series: s for s in report.failed_series}
        print(f"\n[invalid bars {store_url.split(':')[0]}] corrupted={corrupted} "
              f"failed={sorted(map(str, failed))} retries={report.retries}")
        assert corrupted > 0 and failed and report.exit_code == 1
        assert len(failed) < len(report.series)  # some pages came back clean on a retry
        for s in failed.values():
            assert "invalid bar" in s.reason and s.requests_failed >= 1, s
        bad = await _raw_invalid(store_url)
        assert bad == 0
        await assert_stored_subset_exact(store, sim, SPEC)
        kept = await _assert_quarantined_as_served(store, sim, report.run_id, set(failed))
        assert report.quarantined == len(kept)
        for key in failed:
            assert isinstance(key, SeriesKey)
            rng = SPEC.wanted(next(t for t in SPEC.tickers if t.symbol == key.ticker).asset_class)
            held = (await store.coverage(key.ticker, Dataset.BARS, str(key.timeframe))).clip(rng)
            assert held.total_ms < rng.end_ms - rng.start_ms
        [row] = [r for r in await store.runs.recent() if r.id == report.run_id]
        assert row.status == "partial" and {s["series"] for s in row.report["series"]
                                            if s["status"] != "ok"} == {str(k) for k in failed}
        assert row.report["quarantined"] == len(kept)
        # the failed ranges were left uncovered, so a clean re-run fills exactly them
        sim.set_faults(FaultConfig())
        async with PolygonClient(sim.key, sim.base_url,
                                 pacing=Pacing("unlimited", page_limit=PAGE_LIMIT)) as client:
            again = await run_backfill(store, client, SPEC)
        assert again.status == "ok" and again.quarantined == 0
        await assert_exact(store, sim, SPEC)
        assert len(await store.quarantine.recent(limit=100_000)) == len(kept)  # the evidence stays
    assert await duplicate_bars(store_url) == 0


async def _assert_quarantined_as_served(
    store: Store, sim: Any, run_id: str, failed: set[OutcomeKey]
) -> list[QuarantinedBar]:
    """The quarantine holds, for every failed series, the vendor's bars with high and low swapped.

    That is the simulator's corruption (new high = old low * 0.999, new low = old high), so every
    entry is a bar the vendor really served on the last attempt, broken, named, and not in ``bars``.
    """
    kept = await store.quarantine.recent(limit=100_000)
    assert kept and {SeriesKey(q.ticker, Timeframe.parse(q.timeframe)) for q in kept} == failed
    for q in kept:
        assert q.h < q.l and q.reason == "high is below low" and q.run_id == run_id, q
        assert q.url.startswith(f"{sim.base_url}/v2/aggs/ticker/{q.ticker}/") and sim.key not in q.url
        tf = Timeframe.parse(q.timeframe)
        truth = sim.market.aggregates(q.ticker, tf, q.t, q.t + 1)
        assert len(truth) == 1, q
        assert (q.l, q.h) == (truth.h[0], truth.l[0] * 0.999), q
        assert (q.o, q.c, q.n) == (truth.o[0], truth.c[0], truth.n[0]), q
        stored = await store.bars(q.ticker, tf, q.t, q.t + 1)
        assert not len(stored) or (stored.h[0], stored.l[0]) == (truth.h[0], truth.l[0])
    return kept


async def _raw_invalid(url: str) -> int:
    from .conftest import raw_rows

    rows = await raw_rows(url, "SELECT count(*) FROM bars WHERE h < l OR o > h OR c > h OR o < l OR c < l")
    return int(rows[0][0])
