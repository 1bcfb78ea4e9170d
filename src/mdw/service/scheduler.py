"""The scheduler inside ``mdw serve``: one leader, calendar-driven jobs, breaker-aware, no sleeps.

Every process runs this loop, but only the holder of the leader lock (see :mod:`leader`) fires
jobs; the others retry the lock every few seconds, so a crashed leader is replaced quickly. The
loop waits on the injected :class:`~mdw.clock.Clock`, so tests drive it on a simulated
clock. While the vendor's circuit breaker is open, due jobs are skipped with a logged reason
and stay due, so they fire on the first tick after it lets a probe through.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta

from mdw.backfill.plan import BackfillSpec
from mdw.backfill.settle_window import SettleWindow
from mdw.clock import Clock, sleep_until
from mdw.domain import MINUTE_MS, AssetClass, Ticker, Timeframe, from_ms, parse_ticker
from mdw.errors import MdwError, UsageError
from mdw.logs import get_logger
from mdw.polygon import BreakerState
from mdw.service.alerts import Alerter
from mdw.service.freshness import series_freshness
from mdw.service.leader import LeaderLock
from mdw.service.metrics import ServiceMetrics
from mdw.service.runs import RunManager
from mdw.service.schedule import Job, due_jobs, jobs_for
from mdw.store.base import RunKind, Store, SymbolInfo

log = get_logger(__name__)
DEFAULT_LOOKBACK_DAYS = {"intraday": 30, "daily": 365, "actions": 365}


@dataclass(frozen=True, slots=True)
class Firing:
    """One job fired (or skipped) at a tick: what the API and the tests look at."""

    at_ms: int
    job: str
    slot_ms: int
    run_id: str | None
    skipped: str | None = None


BreakerView = Callable[[], tuple[BreakerState, float]]  # (state, seconds until a probe is allowed)
ReferenceRefresh = Callable[[date], Awaitable[object]]  # refresh the reference data as of a day
DAY_MS = 86_400_000


class Scheduler:
    """Calendar-aware job loop; call :meth:`run` as a task, or :meth:`tick` directly in tests."""

    def __init__(
        self, *, store: Store, runs: RunManager, clock: Clock, lock: LeaderLock, metrics: ServiceMetrics,
        alerts: Alerter, breaker: BreakerView, interval_min: int, delay_min: int, stale_after_s: float,
        tick_ms: int = MINUTE_MS, lock_retry_ms: int = 5_000, reference: ReferenceRefresh | None = None,
        settle: SettleWindow | None = None,
    ) -> None:
        self._store = store
        self._reference = reference
        self._reference_at: int | None = None  # when this scheduler last refreshed (its clock)
        self._reference_task: asyncio.Task[None] | None = None
        self._runs = runs
        self._clock = clock
        self._lock = lock
        self._metrics = metrics
        self._alerts = alerts
        self._breaker = breaker
        self.interval_min = interval_min
        self.delay_min = delay_min
        self.stale_after_s = stale_after_s
        self.settle = settle if settle is not None and settle.sessions > 0 else None
        self.tick_ms = tick_ms
        self.lock_retry_ms = lock_retry_ms
        self.leader = False
        self.last_tick_ms: int | None = None
        self.last_skip: str | None = None
        self.history: deque[Firing] = deque(maxlen=500)
        self._last: dict[Job, int] = {}
        self._active: dict[Job, str] = {}
        self._ticked = asyncio.Event()

    # ------------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event) -> None:
        """Hold or seek leadership and tick until ``stop``; a failing tick is logged, never fatal."""
        try:
            while not stop.is_set():
                # The next wake-up is the minute boundary after the tick *started*: a tick that runs
                # past a boundary is followed at once by the one it overran, never skips it.
                started = self._clock.now_ms()
                await self._elect()
                if self.leader:
                    try:
                        await self.tick()
                    except MdwError as exc:
                        log.error("scheduler tick failed", action="scheduler.tick_failed", error=str(exc))
                    finally:
                        ticked, self._ticked = self._ticked, asyncio.Event()
                        ticked.set()
                wake = started - started % self.tick_ms + self.tick_ms
                if not self.leader:
                    wake = min(wake, started + self.lock_retry_ms)
                await sleep_until(self._clock, wake, stop)
        finally:
            if self.leader:
                await self._lock.release()
                self.leader = False
                self._metrics.leader.set(0)

    async def _elect(self) -> None:
        was = self.leader
        try:
            self.leader = await self._lock.held() or await self._lock.try_acquire()
        except MdwError as exc:
            log.warning("leader lock unavailable", action="scheduler.lock_error", error=str(exc))
            self.leader = False
        if self.leader != was:
            log.info("scheduler leadership " + ("acquired" if self.leader else "lost"),
                     action="scheduler.leader", leader=self.leader)
        self._metrics.leader.set(1 if self.leader else 0)

    # ------------------------------------------------------------------ one tick

    async def tick(self) -> list[Firing]:
        """Fire every due job (as few runs as possible) and check freshness; returns the firings."""
        now = self._clock.now_ms()
        self.last_tick_ms = now
        symbols = await self._store.symbols.all(active_only=True)
        jobs, starts = self._jobs(symbols, now)
        self._active = {j: rid for j, rid in self._active.items() if self._runs.running(rid)}
        due = {j: s for j, s in due_jobs(jobs, self._last, now, self.interval_min, self.delay_min,
                                         self.settle).items()
               if j not in self._active}
        fired: list[Firing] = []
        if due:
            state, wait_s = self._breaker()
            if state is BreakerState.HALF_OPEN or (state is BreakerState.OPEN and wait_s > 0):
                reason = f"vendor circuit breaker is {state}; next probe in {wait_s:.0f}s"
                self.last_skip = reason
                log.warning("skipping scheduled jobs", action="scheduler.skip", jobs=len(due), reason=reason)
                self._metrics.scheduled.labels("skipped").inc(len(due))
                fired = [Firing(now, str(j), s, None, reason) for j, s in due.items()]
            else:
                self.last_skip = None
                fired = self._fire(due, jobs, starts, now)
        fired += await self._refresh_reference(now)
        self.history.extend(fired)
        await self._check_freshness(now, jobs)
        return fired

    async def _refresh_reference(self, now: int) -> list[Firing]:
        """Once a day, while a universe is defined, refresh the reference data in the background
        (listings, delistings and renames move daily; a universe resolved on stale data would
        miss them). The first time, only when the store's last refresh is a day old or missing."""
        if self._reference is None or (self._reference_task is not None and not self._reference_task.done()):
            return []
        if self._reference_at is not None and now - self._reference_at < DAY_MS:
            return []
        if not await self._store.universes.all():
            return []
        if self._reference_at is None:
            from mdw.clock import now_ms

            last = next((r.refreshed_at_ms for r in await self._store.reference.refreshes()
                         if r.kind == "tickers"), None)
            if last is not None and now_ms() - last < DAY_MS:  # stored by a wall-clock refresh
                self._reference_at = now
                return []
        self._reference_at = now
        day = from_ms(now).date()
        self._reference_task = asyncio.create_task(self._run_reference(day), name="reference-refresh")
        return [Firing(now, "reference:refresh", now, None)]

    async def _run_reference(self, day: date) -> None:
        assert self._reference is not None
        try:
            await self._reference(day)
            log.info("reference data refreshed", action="scheduler.reference", day=day.isoformat())
        except MdwError as exc:
            log.error("reference refresh failed", action="scheduler.reference_failed", error=str(exc))
            self._reference_at = None  # try again at the next tick

    async def reference_idle(self) -> None:
        """Return once no reference refresh is running (tests and shutdown)."""
        if self._reference_task is not None:
            await asyncio.shield(self._reference_task)

    async def wait_for_tick(self, at_ms: int) -> None:
        """Return once a tick has run at or after ``at_ms`` on the scheduler's clock."""
        while self.last_tick_ms is None or self.last_tick_ms < at_ms:
            await self._ticked.wait()

    def _jobs(self, symbols: list[SymbolInfo], now: int) -> tuple[dict[Job, AssetClass], dict[Job, date]]:
        jobs: dict[Job, AssetClass] = {}
        starts: dict[Job, date] = {}
        today = from_ms(now).date()
        for info in symbols:
            try:
                ticker = parse_ticker(info.ticker)
                tfs = [Timeframe.parse(tf) for tf in info.timeframes]
                first = date.fromisoformat(info.start_date) if info.start_date else None
            except (UsageError, ValueError):
                log.warning("skipping a tracked symbol with bad settings", action="scheduler.bad_symbol",
                            ticker=info.ticker)
                continue
            for job in jobs_for(ticker, tfs, settle=self.settle is not None):
                jobs[job] = ticker.asset_class
                kind = job.kind
                if kind == "settle":  # a settle job runs with its series' own job: the same start
                    kind = "intraday" if job.timeframe and job.timeframe.intraday else "daily"
                starts[job] = first or today - timedelta(days=DEFAULT_LOOKBACK_DAYS[kind])
        return jobs, starts

    def _fire(self, due: dict[Job, int], jobs: dict[Job, AssetClass], starts: dict[Job, date],
              now: int) -> list[Firing]:
        # One run per (timeframe, start): the engine plans all its tickers together. A settle job
        # joins its series' other job when both are due, so one run settles and fills the series.
        groups: dict[tuple[Timeframe | None, date], list[Job]] = {}
        for job in due:
            groups.setdefault((job.timeframe, starts[job]), []).append(job)
        out = []
        def order(group_key: tuple[Timeframe | None, date]) -> tuple[tuple[int, int], date]:
            tf, start = group_key
            return (tf.sort_key() if tf else (-1, -1), start)

        for (tf, start), group in sorted(groups.items(), key=lambda g: order(g[0])):
            tickers = tuple(dict.fromkeys(Ticker(j.ticker, jobs[j]) for j in group))
            spec = BackfillSpec(tickers=tickers, timeframes=(tf,) if tf else (), start=start,
                                end=now, corporate_actions=not tf, kind=RunKind.SCHEDULED,
                                settle=any(j.kind == "settle" for j in group))
            run_id = self._runs.start(spec)
            for job in group:
                self._last[job] = due[job]
                self._active[job] = run_id
                out.append(Firing(now, str(job), due[job], run_id))
            log.info("scheduled run started", action="scheduler.fire", run_id=run_id, job=group[0].kind,
                     timeframe=str(tf) if tf else "actions", tickers=len(tickers))
        self._metrics.scheduled.labels("fired").inc(len(due))
        return out

    async def _check_freshness(self, now: int, jobs: dict[Job, AssetClass]) -> None:
        series = await series_freshness(self._store, now)
        self._metrics.set_freshness(series)
        tracked = {j.series for j in jobs}
        self._alerts.check_stale([s for s in series if s.series in tracked], self.stale_after_s)

    def status(self) -> dict[str, object]:
        """For ``/readyz`` and the dashboard."""
        return {
            "leader": self.leader, "last_tick_ms": self.last_tick_ms, "last_skip": self.last_skip,
            "interval_min": self.interval_min, "daily_delay_min": self.delay_min,
            "settle": ({"sessions": self.settle.sessions, "after": self.settle.after.isoformat("minutes")}
                       if self.settle else None),
            "jobs_running": sorted(str(j) for j in self._active),
            "recent": [{"at_ms": f.at_ms, "job": f.job, "slot_ms": f.slot_ms, "run_id": f.run_id,
                        "skipped": f.skipped} for f in list(self.history)[-50:]],
        }

