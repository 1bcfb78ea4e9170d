"""The scheduler on a simulated clock: jobs fire at the right session times, and only then."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mdw.backfill.plan import BackfillSpec
from mdw.backfill.report import RunReport
from mdw.backfill.settle_window import SettleWindow
from mdw.clock import ManualClock
from mdw.domain import AssetClass, Timeframe, to_ms
from mdw.polygon import BreakerState
from mdw.service.alerts import Alerter
from mdw.service.leader import LocalLock
from mdw.service.metrics import ServiceMetrics
from mdw.service.runs import RunManager
from mdw.service.schedule import Job, daily_slot, intraday_slot
from mdw.service.scheduler import Scheduler
from mdw.simulator.server import SimServer
from mdw.store import open_store
from mdw.store.base import SymbolInfo

ServiceFactory = Callable[..., Awaitable[Any]]


def test_slots_follow_the_nyse_calendar_and_early_closes() -> None:
    """Intraday slots exist only in extended hours; the daily slot comes delay minutes after the final bar."""
    assert intraday_slot(AssetClass.STOCKS, to_ms("2024-07-03T13:02:00Z"), 5) == to_ms("2024-07-03T13:00:00Z")
    assert intraday_slot(AssetClass.STOCKS, to_ms("2024-07-03T21:03:00Z"), 5) == to_ms("2024-07-03T21:00:00Z")
    assert intraday_slot(AssetClass.STOCKS, to_ms("2024-07-03T21:06:00Z"), 5) is None  # early close 17:00 ET
    assert intraday_slot(AssetClass.STOCKS, to_ms("2024-07-04T15:00:00Z"), 5) is None  # Independence Day
    assert intraday_slot(AssetClass.CRYPTO, to_ms("2024-07-04T15:07:00Z"), 5) == to_ms("2024-07-04T15:05:00Z")
    assert daily_slot(AssetClass.STOCKS, to_ms("2024-07-03T21:29:00Z"), 30) == to_ms("2024-07-03T00:30:00Z")
    assert daily_slot(AssetClass.STOCKS, to_ms("2024-07-03T21:30:00Z"), 30) == to_ms("2024-07-03T21:30:00Z")
    assert daily_slot(AssetClass.STOCKS, to_ms("2024-07-08T12:00:00Z"), 30) == to_ms("2024-07-06T00:30:00Z")
    assert daily_slot(AssetClass.CRYPTO, to_ms("2024-07-08T00:10:00Z"), 30) == to_ms("2024-07-07T00:30:00Z")


async def test_scheduler_fires_jobs_at_session_times_on_a_simulated_clock(
    sim: SimServer, service_factory: ServiceFactory
) -> None:
    """Driven by a manual clock, the running scheduler fires intraday, daily and actions jobs when due."""
    clock = ManualClock(to_ms("2024-07-03T13:00:00Z"))
    svc = await service_factory(sim, clock=clock, scheduler=True, lock=LocalLock(), daily_delay_min=30,
                                schedule_interval_min=5, settle_sessions=0)  # settle: its own test
    store = svc.state.store
    await store.symbols.upsert(SymbolInfo("AAPL", "stocks", "", True, ("1d", "5m"), "2024-07-01"))
    await store.symbols.upsert(SymbolInfo("X:BTCUSD", "crypto", "", True, ("1h",), "2024-07-02"))
    sched = svc.state.scheduler
    seen = 0

    async def at(when: str) -> set[str]:
        nonlocal seen
        async with asyncio.timeout(60):
            await svc.state.runs.wait_idle()
            clock.set(to_ms(when))  # the loop wakes at minute boundaries: each time here passes one
            await sched.wait_for_tick(to_ms(when))
        fired = list(sched.history)[seen:]
        seen = len(sched.history)
        assert all(f.skipped is None for f in fired)
        return {f.job for f in fired}

    # The first tick after tracking (13:01Z, 09:01 ET) sees everything due: one gap-filling run each.
    first = {str(Job("intraday", "AAPL", Timeframe(5, "m"))),
             str(Job("intraday", "X:BTCUSD", Timeframe(1, "h"))),
             str(Job("daily", "AAPL", Timeframe(1, "d"))), str(Job("actions", "AAPL"))}
    assert await at("2024-07-03T13:01:00Z") == first
    assert await at("2024-07-03T13:03:00Z") == set()
    assert await at("2024-07-03T13:05:00Z") == {"intraday:AAPL:5m", "intraday:X:BTCUSD:1h"}
    assert await at("2024-07-03T21:29:00Z") == {"intraday:X:BTCUSD:1h"}  # AAPL closed at 17:00 ET
    assert await at("2024-07-03T21:30:00Z") == {"daily:AAPL:1d", "actions:AAPL", "intraday:X:BTCUSD:1h"}
    assert await at("2024-07-04T15:00:00Z") == {"intraday:X:BTCUSD:1h"}  # a holiday for AAPL
    await svc.state.runs.wait_idle()
    runs = await store.runs.recent(50)
    assert runs and all(r.kind == "scheduled" and r.status == "ok" for r in runs)
    status, bars, _ = await svc.get("/v1/bars/AAPL?timeframe=5m&start=2024-07-03&end=2024-07-03")
    assert status == 200 and bars["count"] > 0


async def test_scheduler_ticks_the_overrun_minute_when_a_tick_runs_past_a_boundary(tmp_path: Path) -> None:
    """A tick that ends after the next minute boundary is followed at once by that minute's tick."""
    clock = ManualClock(to_ms("2024-07-03T13:00:30Z"))
    store = await open_store(f"sqlite:///{tmp_path / 'mdw.db'}")
    await store.symbols.upsert(SymbolInfo("X:BTCUSD", "crypto", "", True, ("1h",), "2024-07-02"))
    metrics = ServiceMetrics(lambda: None)
    alerts = Alerter(None, metrics, clock)
    overran: list[int] = []

    def breaker() -> tuple[BreakerState, float]:
        # Called inside the tick (jobs are due): the first tick "takes" 70 s on the clock.
        if not overran:
            overran.append(clock.now_ms())
            clock.advance(70_000)
        return BreakerState.OPEN, 600.0  # due jobs are skipped, so no run is started

    runs = RunManager(_no_runner, clock, metrics, alerts)
    sched = Scheduler(store=store, runs=runs, clock=clock, lock=LocalLock(), metrics=metrics, alerts=alerts,
                      breaker=breaker, interval_min=5, delay_min=30, stale_after_s=3600)
    stop = asyncio.Event()
    loop = asyncio.create_task(sched.run(stop))
    try:
        async with asyncio.timeout(60):  # a guard against a hang, not a timing assertion
            await sched.wait_for_tick(to_ms("2024-07-03T13:01:40Z"))  # the clock is never moved again
    finally:
        stop.set()
        await loop
        await store.close()
    assert overran == [to_ms("2024-07-03T13:00:30Z")]
    assert [f.at_ms for f in sched.history][-1] == to_ms("2024-07-03T13:01:40Z")


async def test_scheduler_settles_each_series_once_a_day_after_eleven_with_its_own_run(tmp_path: Path) -> None:
    """A settle job per series comes due at 11:00 ET the day after each session; it joins the series'
    other due job in one run whose spec settles (specs are recorded, not run)."""
    clock = ManualClock(to_ms("2024-07-03T15:30:00Z"))  # Wednesday 11:30 ET
    store = await open_store(f"sqlite:///{tmp_path / 'mdw.db'}")
    await store.symbols.upsert(SymbolInfo("ABBV", "stocks", "", True, ("1d",), "2024-06-03"))
    metrics = ServiceMetrics(lambda: None)
    alerts = Alerter(None, metrics, clock)
    specs: list[BackfillSpec] = []

    async def record(spec: BackfillSpec, *_: Any) -> Any:
        specs.append(spec)
        return RunReport("r", spec.kind)

    runs = RunManager(record, clock, metrics, alerts)
    sched = Scheduler(store=store, runs=runs, clock=clock, lock=LocalLock(), metrics=metrics, alerts=alerts,
                      breaker=lambda: (BreakerState.CLOSED, 0.0), interval_min=5, delay_min=30,
                      stale_after_s=3600, settle=SettleWindow())
    try:
        fired = {f.job for f in await sched.tick()}
        assert fired == {"daily:ABBV:1d", "settle:ABBV:1d", "actions:ABBV"}
        await runs.wait_idle()
        assert [s.settle for s in specs if s.timeframes] == [True]
        clock.set(to_ms("2024-07-03T21:31:00Z"))  # the close of the 3rd (early): daily only
        assert {f.job for f in await sched.tick()} == {"daily:ABBV:1d", "actions:ABBV"}
        clock.set(to_ms("2024-07-04T14:59:00Z"))
        assert await sched.tick() == []
        clock.set(to_ms("2024-07-04T15:00:00Z"))  # 11:00 ET on the holiday: the 3rd settles
        assert {f.job for f in await sched.tick()} == {"settle:ABBV:1d"}
        await runs.wait_idle()
        assert specs[-1].settle and specs[-1].timeframes == (Timeframe(1, "d"),)
        assert sched.status()["settle"] == {"sessions": 2, "after": "11:00"}
    finally:
        await store.close()


async def _no_runner(*_: Any) -> Any:
    raise AssertionError("no run is started while the breaker is open")


async def test_scheduler_refreshes_reference_data_once_a_day_while_a_universe_is_defined(
    sim: SimServer, service_factory: ServiceFactory
) -> None:
    """No universe: no refresh. With one: a refresh at the next tick, none an hour later, one a day later."""
    from mdw.backfill.universe import UniverseSpec

    clock = ManualClock(to_ms("2024-07-03T13:00:00Z"))
    svc = await service_factory(sim, clock=clock, scheduler=True, lock=LocalLock())
    store = svc.state.store
    sched = svc.state.scheduler

    async def at(when: str) -> list[str]:
        before = len(sched.history)
        async with asyncio.timeout(60):
            clock.set(to_ms(when))
            await sched.wait_for_tick(to_ms(when))
            await sched.reference_idle()
        return [f.job for f in list(sched.history)[before:] if f.job.startswith("reference")]

    assert await at("2024-07-03T13:01:00Z") == []
    assert not await store.reference.refreshes()
    await store.universes.save("us", UniverseSpec(types=("CS", "ETF")).to_json())
    assert await at("2024-07-03T13:02:00Z") == ["reference:refresh"]
    assert [r.kind for r in await store.reference.refreshes()] == ["tickers"]
    assert await at("2024-07-03T14:02:00Z") == []
    assert await at("2024-07-04T13:03:00Z") == ["reference:refresh"]
