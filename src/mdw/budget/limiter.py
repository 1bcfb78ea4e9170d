"""One rate budget per API key shared by every process that uses the key, on SQLite or PostgreSQL.

:class:`SharedLimiter` is a :class:`~mdw.polygon.limiter.LimiterBackend` with arrival tracking:
each request holds a slot in the shared row from its grant until its answer is reported (see
:mod:`mdw.budget.policy`). Cost: one transaction serves every acquirer queued in this process at
that moment (up to ``batch_max``), answers and successes ride along with the next one (or a
flush of their own when nobody waits), and when the budget is spent the wait is computed from
the row, not polled, unless requests elsewhere are still in flight.

Times in the row are on the database's clock; a start is slept for on the local wall clock
through a safe lower bound of the offset (:class:`ClockOffset`), so it is never early.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import structlog

from mdw.budget import policy
from mdw.clock import SYSTEM_CLOCK, Clock
from mdw.config import RateLimit
from mdw.errors import ConfigError, StoreError
from mdw.polygon.limiter import Aimd, Answered
from mdw.store.budget import BudgetPlan, BudgetStore, Step, leave, touch

T = TypeVar("T")

log = structlog.get_logger(__name__)

# The slot log is JSON in one row; above this many slots a plan is enforced as the equivalent
# stricter plan N/k per P/k (any P-window is k such windows, so still <= N).
MAX_LOG = 1000


def budget_name(api_key: str) -> str:
    """The row shared by every process using ``api_key``: a digest of the key alone, never the key.

    The vendor's URL is left out on purpose: the vendor counts per key, so two spellings of one
    vendor URL must not get two budgets.
    """
    return "polygon:" + hashlib.sha256(api_key.encode()).hexdigest()[:24]


def enforced_rate(rate: RateLimit) -> RateLimit:
    """The plan as the row enforces it: unchanged, or split into k equal sub-windows if N is large."""
    if rate.unlimited or rate.requests <= MAX_LOG:
        return rate
    k = math.ceil(rate.requests / MAX_LOG)
    return RateLimit(float(math.floor(rate.requests / k)), rate.period / k)


class ClockOffset:
    """A safe lower bound of (database clock - local wall clock), from the best recent round trip.

    While the database read its clock, the local clock showed at most ``received``, so
    ``db_now - received`` can only underestimate the true offset; starting at local time
    ``grant - bound`` therefore never starts before the grant on the database clock. The largest
    recent sample is the tightest; a local clock that stepped by more than a second resets them.
    """

    def __init__(self, keep: int = 32) -> None:
        self._samples: deque[float] = deque(maxlen=keep)

    def sample(self, db_now: float, received: float) -> float:
        bound = db_now - received
        if self._samples and abs(bound - self._samples[-1]) > 1.0:
            self._samples.clear()
        self._samples.append(bound)
        return max(self._samples)


@dataclass(slots=True)
class BudgetStats:
    """What the shared limiter did and cost (bench and metrics)."""

    grants: int = 0
    round_trips: int = 0
    db_seconds: float = 0.0
    rate_limited: int = 0
    wasted: int = 0
    last_grant_at: float = 0.0  # database clock
    last_cut_at: float = 0.0  # database clock of this process's last 429 report


class SharedLimiter:
    """A sliding-window limiter with AIMD whose state lives in the ``rate_budget`` row.

    Args:
        store: the budget's storage (PostgreSQL or SQLite).
        rate: the plan; every process sharing ``name`` must use the same (checked on open).
        name: the row; see :func:`budget_name`.
        margin_s: window extension (default 0.2% of the period, as the in-process limiter).
        lease_s: a request not reported answered after this long stops counting as in flight
            (its process died); at least the client's request timeout.
        horizon_s: grants are reserved at most this far ahead, so a cut reaches everyone fast.
        lead_s: grants start at least this far after the reservation, so the start is on time.
        spacing_cap_s: consecutive grants at least ``min(window / rate, spacing_cap_s)`` apart.
        batch_max: most grants reserved in one transaction.
        idle_s: a process that has not reserved for this long no longer holds the row's plan
            (default: a period plus the lease), so another plan may take the row over; a process
            with another plan is refused while a holder remains (:func:`mdw.store.budget.join`).
    """

    def __init__(
        self,
        store: BudgetStore,
        rate: RateLimit | str,
        *,
        name: str,
        aimd: Aimd | None = None,
        margin_s: float | None = None,
        lease_s: float = 65.0,
        horizon_s: float = 1.0,
        lead_s: float = 0.01,
        spacing_cap_s: float = 0.05,
        batch_max: int = 64,
        idle_s: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
        wall: Callable[[], float] = time.time,
        owns_store: bool = False,
    ) -> None:
        self.configured = RateLimit.parse(rate)
        if self.configured.unlimited:
            raise StoreError("an unlimited plan has no shared budget; use the in-process limiter")
        self.enforced = enforced_rate(self.configured)
        period = self.enforced.period
        self.rules = policy.Rules(
            self.enforced.requests, period, aimd or Aimd(),
            margin_s=period * 0.002 if margin_s is None else margin_s, lease_s=lease_s, lead_s=lead_s,
            horizon_s=horizon_s, spacing_cap_s=spacing_cap_s)
        self.name = name
        self._store = store
        self._owns_store = owns_store
        self._idle_s = period + lease_s if idle_s is None else idle_s
        self._plan = BudgetPlan(self.enforced.requests, period)
        self.holder = uuid.uuid4().hex[:12]  # this process's entry in the row's holders
        self._clock = clock
        self._wall = wall
        self._offset = ClockOffset()
        self.batch_max = max(1, batch_max)
        self._rate = self.enforced.requests
        self._waiters: deque[asyncio.Future[tuple[int, float]]] = deque()
        self._answered: list[int] = []
        self._late: dict[int, float] = {}  # answered slots the vendor may still count, and how long
        self._successes = 0
        self._kick: asyncio.Event | None = None  # an answer or a new acquirer here
        self._wanted: asyncio.Event | None = None  # a new acquirer here
        self._flush_s = min(0.1, self.rules.window_s * 0.01)
        self._task: asyncio.Task[None] | None = None
        self.stats = BudgetStats()

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> SharedLimiter:
        """Join the row (or create it) and tighten the clock offset before the first grant.

        Raises:
            ConfigError: another live process uses this key with a different plan.
            StoreError: the database is unreachable or lacks the table.
        """
        joined = await self._store.register(self.name, self._plan, self.holder, idle_s=self._idle_s)
        if joined.previous is not None:
            log.warning("shared rate budget: plan changed; no process with the old plan is left",
                        budget=self.name, previous=joined.previous.describe(), plan=self._plan.describe(),
                        action="budget.plan_changed")
        for _ in range(3):
            db_now = await self._update(lambda st, now: (st, now))
            self._offset.sample(db_now, self._wall())
        return self

    async def close(self) -> None:
        """Report outstanding answers, stop the background task, close an owned store."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._answered:
            answered, self._answered = self._answered, []
            late, self._late = self._late, {}
            with contextlib.suppress(StoreError, ConfigError):
                await self._reserve(0, answered, 0, late)
        with contextlib.suppress(StoreError):
            await self._update(lambda st, now: (leave(st, self.holder), None))
        if self._owns_store:
            await self._store.close()

    async def __aenter__(self) -> SharedLimiter:
        return await self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- the LimiterBackend seam -----------------------------------------------------------------

    @property
    def current_rate(self) -> RateLimit:
        return RateLimit(self._rate, self.enforced.period)

    async def start(self) -> Answered:
        """Wait for a grant; the returned callable reports the answer (idempotent).

        ``answered(late_s)`` (a request that timed out after it was sent) keeps the slot counted
        until ``late_s`` after the report reaches the row.
        """
        slot = await self._grant()
        reported = False

        def answered(late_s: float = 0.0) -> None:
            nonlocal reported
            if reported:
                return
            reported = True
            self._answered.append(slot)
            if late_s > 0:
                self._late[slot] = late_s
            self._wake()

        return answered

    async def acquire(self) -> None:
        """A grant without an answer signal: counted until the next flush after the start."""
        (await self.start())()

    async def on_rate_limited(self, retry_after_s: float | None) -> None:
        self.stats.rate_limited += 1
        self._successes = 0
        pause = retry_after_s if retry_after_s is not None and retry_after_s > 0 else 0.0

        def step(st: policy.State, now: float) -> tuple[policy.State, tuple[float, float]]:
            new, rate = policy.throttle(st, now, self.rules, pause)
            return new, (rate, now)

        self._rate, self.stats.last_cut_at = await self._update(step)
        log.warning("rate limited: shared rate cut", budget=self.name, rate=round(self._rate, 2),
                    period_s=self.enforced.period, retry_after_s=retry_after_s, action="budget.cut")

    async def on_success(self) -> None:
        if self._rate < self.enforced.requests:
            self._successes += 1  # reported with the next reservation: no extra round trip

    # -- internals -------------------------------------------------------------------------------

    async def _update(self, step: Step[T]) -> T:
        t0 = time.perf_counter()
        try:
            return await self._store.update(self.name, step)
        finally:
            self.stats.round_trips += 1
            self.stats.db_seconds += time.perf_counter() - t0

    async def _reserve(self, want: int, answered: list[int], successes: int,
                       late: dict[int, float] | None = None) -> policy.Reservation:
        def step(st: policy.State, now: float) -> tuple[policy.State, policy.Reservation]:
            st = touch(st, self.holder, self._plan, now, self.name, self._idle_s)
            return policy.reserve(st, now, self.rules, want=want, answered=answered, successes=successes,
                                  late=late)

        res: policy.Reservation = await self._update(step)
        self._rate = res.rate
        return res

    def _wake(self, wanted: bool = False) -> None:
        if self._kick is not None:
            self._kick.set()
        if wanted and self._wanted is not None:
            self._wanted.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._sync(), name=f"budget-{self.name}")

    def _live_waiters(self) -> int:
        while self._waiters and self._waiters[0].done():
            self._waiters.popleft()
        return sum(1 for w in self._waiters if not w.done())

    async def _grant(self) -> int:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[int, float]] = loop.create_future()
        self._waiters.append(waiter)
        self._wake(wanted=True)
        slot, deadline = await waiter
        delay = deadline - self._wall()
        if delay > 0:
            await self._clock.sleep(delay)
        self.stats.grants += 1
        return slot

    async def _sync(self) -> None:
        """Serve queued acquirers and report answers, FIFO, with as few transactions as possible."""
        if self._kick is None or self._wanted is None:
            self._kick, self._wanted = asyncio.Event(), asyncio.Event()
        try:
            while True:
                want = self._live_waiters()
                if want == 0 and not self._answered:
                    return
                if want == 0:
                    # Only answers to report: gather a few more (or ride with the next reservation).
                    # A slot counts until the flush, so this delay is kept to 1% of the window.
                    self._wanted.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wanted.wait(), timeout=self._flush_s)
                    want = self._live_waiters()
                self._kick.clear()
                answered, self._answered = self._answered, []
                late, self._late = self._late, {}
                successes, self._successes = self._successes, 0
                res = await self._reserve(min(want, self.batch_max), answered, successes, late)
                offset = self._offset.sample(res.now, self._wall())
                for slot, at in res.grants:
                    self.stats.last_grant_at = at
                    self._hand(slot, at - offset)
                if len(res.grants) < min(want, self.batch_max):
                    # Spent until a slot ages out (computed), or until an answer here frees one.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._kick.wait(), timeout=max(res.retry_in, 0.001))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = (exc if isinstance(exc, StoreError | ConfigError)
                     else StoreError(f"rate budget failed: {exc}"))
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(error)

    def _hand(self, slot: int, deadline: float) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result((slot, deadline))
                return
        self.stats.wasted += 1
        self._answered.append(slot)  # the acquirer was cancelled meanwhile: free the slot at once
