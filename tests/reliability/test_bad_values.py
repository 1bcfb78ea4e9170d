"""Malformed vendor values are data errors about their page, never an outage (#23 items 1-3).

For each malformed value the simulator can serve (``FaultConfig.bad_value``), a backfill with the
real client into a real store: the breaker never counts it (a threshold of 2 would open on the
first page otherwise), nothing is retried as an unreadable body, the bad bars are quarantined with
their reasons, the report names the reason, and what was stored equals the ground truth. Values
that are kept (``vw`` outside ``[l, h]``) or dropped (bars outside the requested range) are counted
in the report instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mdw.backfill import run_backfill
from mdw.domain import MISSING_N
from mdw.polygon import BreakerPolicy, Pacing, PolygonClient, RetryPolicy
from mdw.polygon import screen as scr
from mdw.simulator import FaultConfig, SimConfig, start_simulator
from mdw.store import Store

from .conftest import assert_exact, assert_stored_subset_exact, duplicate_bars, raw_rows, spec_of

SPEC = spec_of("AAPL,MSFT", "1h", "2024-03-04", "2024-03-15", grouped_daily=False)

# the malformed value -> the reason the report and the quarantine give
REFUSED = {
    "null_price": "c is null",
    "nan_price": "h is not a finite number",
    "inf_price": "h is not a finite number",
    "string_price": "o is not a number",
    "null_volume": "v is null",
    "float_t": "t is not an integer",
    "missing_t": "t is missing",
    "huge_n": "n is out of range",
    "zero_price": "price is zero or negative",
    "negative_price": "price is zero or negative",
    "duplicate_t": "duplicate timestamp with different values",
}


def _client(sim: Any) -> PolygonClient:
    # A breaker threshold of 2 with 3 attempts: one page counted as a vendor failure would open it.
    return PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited"),
                         retry=RetryPolicy(attempts=3, base_s=0.01, cap_s=0.02),
                         breaker=BreakerPolicy(threshold=2, cooldown_s=600.0))


def _params() -> list[Any]:
    out = [pytest.param(k, "sqlite", id=f"sqlite-{k}") for k in REFUSED]
    for k in REFUSED:  # PostgreSQL: one case in make test, the rest in make soak
        marks = () if k == "huge_n" else (pytest.mark.slow,)
        out.append(pytest.param(k, "postgres", id=f"postgres-{k}", marks=marks))
    return out


@pytest.mark.parametrize(("kind", "backend"), _params())
async def test_bad_value_is_quarantined_with_reason_when_vendor_serves_it_without_opening_breaker(
    kind: str, backend: str, backend_url: str
) -> None:
    """Every served malformed value ends quarantined and named; the breaker stays closed."""
    from mdw.store import open_store

    faults = FaultConfig(bad_value=kind, bad_value_rate=0.02)
    async with (await open_store(backend_url) as store,
                start_simulator(SimConfig(seed=5, faults=faults, n_stocks=30)) as sim,
                _client(sim) as client):
        report = await run_backfill(store, client, SPEC)
        stats = client.stats()
        injected = sim.stats()["faults"].get("bad_value", 0)
        kept = await store.quarantine.recent(limit=10_000)
        print(f"\n[bad value {kind} {backend}] injected={injected} quarantined={report.quarantined} "
              f"reasons={report.quarantine_reasons} failures={stats.failures_by_class} "
              f"requests={report.requests} status={report.status}")
        assert injected > 0
        # a data error, not an outage: the breaker never moved, nothing was "unreadable"
        assert stats.breaker_transitions_total == 0 and stats.breaker_state.value == "closed"
        assert set(stats.failures_by_class) <= {"InvalidBarsError"}
        assert report.quarantined == len(kept) > 0
        reasons = report.quarantine_reasons
        assert any(why.startswith(REFUSED[kind]) for why in reasons), reasons
        assert all(REFUSED[kind] in q.reason and q.run_id == report.run_id for q in kept)
        for s in report.failed_series:
            assert "invalid bar" in s.reason and REFUSED[kind] in s.reason and "quarantined" in s.reason, s
        assert report.exit_code == 1 and report.status in ("partial", "failed")
        # nothing wrong stored: what is stored is exact, no wrapped count, no duplicate
        await assert_stored_subset_exact(store, sim, SPEC)
        [[wrong]] = await raw_rows(backend_url, "SELECT count(*) FROM bars WHERE n < 0 OR o <= 0 OR l <= 0")
        assert wrong == 0
        assert await duplicate_bars(backend_url) == 0
        # the refused ranges stay uncovered: a clean re-run fills exactly them
        sim.set_faults(FaultConfig())
        again = await run_backfill(store, client, SPEC)
        assert again.status == "ok" and again.quarantined == 0
        await assert_exact(store, sim, SPEC)


async def test_bars_outside_range_are_dropped_and_counted_when_vendor_adds_them(store: Store) -> None:
    """Extra bars outside the requested range are dropped, counted in the report, and the run is ok."""
    faults = FaultConfig(bad_value="outside_range", bad_value_rate=0.05)
    async with start_simulator(SimConfig(seed=5, faults=faults, n_stocks=30)) as sim, _client(sim) as client:
        report = await run_backfill(store, client, SPEC)
        injected = sim.stats()["faults"]["bad_value"]
        assert injected > 0 and report.status == "ok" and report.quarantined == 0
        assert report.data_notes == {scr.OUTSIDE_RANGE: injected}
        assert report.to_dict()["data_notes"] == {scr.OUTSIDE_RANGE: injected}
        await assert_exact(store, sim, SPEC)


async def test_vw_outside_high_low_is_kept_and_counted_when_vendor_serves_it(store: Store) -> None:
    """A vw outside [l, h] is kept as the vendor sent it (its vw may count trades its high and low
    leave out) and counted in the report; the run is ok."""
    faults = FaultConfig(bad_value="vw_outside", bad_value_rate=0.05)
    async with start_simulator(SimConfig(seed=5, faults=faults, n_stocks=30)) as sim, _client(sim) as client:
        report = await run_backfill(store, client, SPEC)
        injected = sim.stats()["faults"]["bad_value"]
        assert injected > 0 and report.status == "ok" and report.quarantined == 0
        assert report.data_notes == {scr.VW_OUTSIDE: injected}
        bars = await store.bars("AAPL", SPEC.timeframes[0], 0, 2**53)
        stored = int(((bars.vw > bars.h) | (bars.vw < bars.l)).sum())
        bars = await store.bars("MSFT", SPEC.timeframes[0], 0, 2**53)
        stored += int(((bars.vw > bars.h) | (bars.vw < bars.l)).sum())
        assert stored == injected


async def test_missing_n_is_stored_as_null_and_counted_when_vendor_leaves_it_out(
    store: Store, store_url: str
) -> None:
    """Bars without n are kept with n missing (NULL in the row, never 0) and counted in the report."""
    faults = FaultConfig(bad_value="missing_n", bad_value_rate=0.05)
    async with start_simulator(SimConfig(seed=5, faults=faults, n_stocks=30)) as sim, _client(sim) as client:
        report = await run_backfill(store, client, SPEC)
        injected = sim.stats()["faults"]["bad_value"]
        assert injected > 0 and report.status == "ok" and report.quarantined == 0
        assert report.data_notes == {scr.N_MISSING: injected}
        [[nulls]] = await raw_rows(store_url, "SELECT count(*) FROM bars WHERE n IS NULL")
        [[zeros]] = await raw_rows(store_url, "SELECT count(*) FROM bars WHERE n = 0")
        assert (nulls, zeros) == (injected, 0)
        for ticker in ("AAPL", "MSFT"):
            got = await store.bars(ticker, SPEC.timeframes[0], 0, 2**53)
            truth = sim.market.aggregates(ticker, SPEC.timeframes[0], int(got.t[0]), int(got.t[-1]) + 1)
            missing = got.n == MISSING_N
            assert np.array_equal(got.n[~missing], truth.n[~missing]) and np.array_equal(got.c, truth.c)
