"""One rate budget for every worker on every machine, kept in one PostgreSQL row.

:class:`PgRateLimiter` implements the vendor client's :class:`~mdw.polygon.limiter.LimiterBackend`.
The row holds the last ``N`` grant times on the database clock (one clock for all machines). A
reservation takes the row lock and appends grants that obey ``g >= grants[-n] + window``; the
caller sleeps until each grant on its own wall clock, converted through a safe lower bound of the
clock offset (see :class:`ClockOffset`), so a start is never early and, thanks to a small lead,
rarely late.

Cost: one round trip serves every acquirer queued in this process at that moment (up to
``batch_max``), successes ride along with the next reservation, and when the budget is exhausted
the wait is computed from the deficit rather than polled. AIMD state (the rate in force, the
Retry-After pause) lives in the same row, so a 429 seen by one worker slows all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType

import psycopg

from mdw.config import RateLimit
from mdw.errors import StoreError
from mdw.polygon.clock import SYSTEM_CLOCK, Clock
from mdw.polygon.limiter import Aimd
from mdw.scaleout.schema import ensure_schema, libpq_url

log = logging.getLogger(__name__)

# The grant log is an array in one row; above this many entries a plan is enforced as the
# equivalent stricter plan N/k per P/k (any P-window is k such windows, so still <= N).
MAX_LOG = 1000


def limiter_name(base_url: str, api_key: str) -> str:
    """The row name shared by every worker using one (vendor, key); the key is only digested."""
    digest = hashlib.sha256(f"{base_url.rstrip('/')}\x00{api_key}".encode()).hexdigest()
    return f"polygon:{digest[:24]}"


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
    ``grant - bound`` therefore never starts before the grant on the database clock. Every sample
    is such a bound, so the largest recent one is the tightest; samples age out, and a local clock
    that stepped by more than a second discards them.
    """

    def __init__(self, keep: int = 32) -> None:
        self._samples: deque[float] = deque(maxlen=keep)

    def sample(self, db_now: float, received: float) -> float:
        """Add the bound from one answer (``received`` = local time it arrived); return the best."""
        bound = db_now - received
        if self._samples and abs(bound - self._samples[-1]) > 1.0:
            self._samples.clear()  # the local clock stepped: old samples mean nothing now
        self._samples.append(bound)
        return max(self._samples)


@dataclass(slots=True)
class LimiterStats:
    """Counters that make the limiter's own cost visible (bench and metrics)."""

    grants: int = 0
    round_trips: int = 0
    db_seconds: float = 0.0
    rate_limited: int = 0
    wasted: int = 0
    late: int = 0  # grants given up because this process woke past its slot by more than the margin


class PgRateLimiter:
    """A sliding-window-log limiter with AIMD whose state is shared through PostgreSQL.

    Guarantee: across all processes using the same ``name``, at most ``floor(rate)`` request starts
    in any window of ``period + margin`` seconds, where ``rate`` never exceeds the plan.

    Args:
        url: the warehouse's PostgreSQL URL.
        rate: the plan (every worker must be configured with the same plan).
        name: the shared row; see :func:`limiter_name`.
        aimd: the adaptive policy (shared with the in-process limiter).
        margin_s: window extension absorbing jitter between our grant and the vendor's arrival
            stamp; default 1% of the period, at least 10 ms.
        horizon_s: grants are reserved at most this far ahead, so a cut reaches all workers fast.
        lead_s: grants start at least this far after the reservation, so the answer arrives before
            the start and the start happens on time instead of one round trip (plus loop lag)
            late; default the margin.
        spacing_cap_s: consecutive grants are at least ``min(window / rate, spacing_cap_s)``
            apart, so a window's budget does not hit the vendor as one burst (0 disables).
        batch_max: most grants reserved in one round trip.
    """

    def __init__(
        self,
        url: str,
        rate: RateLimit | str,
        *,
        name: str = "default",
        aimd: Aimd | None = None,
        margin_s: float | None = None,
        horizon_s: float = 1.0,
        lead_s: float | None = None,
        spacing_cap_s: float = 0.05,
        batch_max: int = 64,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.url = libpq_url(url)
        self.configured = RateLimit.parse(rate)
        self.enforced = enforced_rate(self.configured)
        self.name = name
        self._aimd = aimd or Aimd()
        period = self.enforced.period
        self.margin_s = max(0.01 * period, 0.010) if margin_s is None else margin_s
        self.window_s = period + self.margin_s
        self.horizon_s = horizon_s
        self.lead_s = self.margin_s if lead_s is None else lead_s
        self.spacing_cap_s = spacing_cap_s
        self._offset = ClockOffset()
        self.batch_max = max(1, batch_max)
        self._clock = clock
        self._rate = self.enforced.requests
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._conn_lock: asyncio.Lock | None = None
        self._waiters: deque[asyncio.Future[float]] = deque()
        self._refiller: asyncio.Task[None] | None = None
        self._successes = 0
        self._paused_until = -math.inf  # local pause for unlimited plans (no row traffic)
        self.stats = LimiterStats()

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the table if missing and register this plan in the shared row.

        Raises:
            StoreError: the database is unreachable.
        """
        await ensure_schema(self.url, queue=False)
        await self._execute(
            """
            INSERT INTO mdw_rate_limiter (name, configured, period_s, window_s, rate)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (name) DO UPDATE
               SET rate = CASE WHEN mdw_rate_limiter.configured = EXCLUDED.configured
                                AND mdw_rate_limiter.period_s = EXCLUDED.period_s
                               THEN least(mdw_rate_limiter.rate, EXCLUDED.configured)
                               ELSE EXCLUDED.configured END,
                   configured = EXCLUDED.configured, period_s = EXCLUDED.period_s,
                   window_s = EXCLUDED.window_s
            """,
            (self.name, self._row_configured(), self.enforced.period, self.window_s,
             self._row_configured()),
        )
        # A few quick clock readings tighten the offset bound before the first grant; without
        # them the first grants would start up to one (connection-warming) round trip late.
        for _ in range(3):
            row = await self._execute("SELECT extract(epoch FROM clock_timestamp())::float8", ())
            received = time.time()
            if row is not None and isinstance(row[0], float):
                self._offset.sample(row[0], received)

    async def close(self) -> None:
        if self._refiller is not None:
            self._refiller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refiller
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def __aenter__(self) -> PgRateLimiter:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _row_configured(self) -> float:
        # An unlimited plan still gets a row (for the shared pause); its count is never consulted.
        return 0.0 if self.enforced.unlimited else self.enforced.requests

    # -- the LimiterBackend seam ----------------------------------------------------------------

    @property
    def current_rate(self) -> RateLimit:
        return RateLimit(self._rate, self.enforced.period)

    async def acquire(self) -> None:
        if self.enforced.unlimited:
            pause = self._paused_until - self._clock.monotonic()
            if pause > 0:
                await self._clock.sleep(pause)
            self.stats.grants += 1
            return
        loop = asyncio.get_running_loop()
        while True:
            waiter: asyncio.Future[float] = loop.create_future()
            self._waiters.append(waiter)
            if self._refiller is None or self._refiller.done():
                self._refiller = asyncio.create_task(self._refill(), name=f"pglimiter-refill-{self.name}")
            deadline = await waiter  # local wall-clock time at which this start is granted
            delay = deadline - time.time()
            if delay > 0:
                await self._clock.sleep(delay)
            # The window guarantee holds for starts within ``margin`` of their logged slot. A start
            # later than that (a slow reservation answer, a starved event loop) could crowd the
            # next window, so the slot is given up (it stays counted) and another is reserved.
            if time.time() - deadline <= self.margin_s:
                self.stats.grants += 1
                return
            self.stats.late += 1

    async def on_rate_limited(self, retry_after_s: float | None) -> None:
        self.stats.rate_limited += 1
        self._successes = 0
        pause = retry_after_s if retry_after_s is not None and retry_after_s > 0 else 0.0
        if pause:
            self._paused_until = max(self._paused_until, self._clock.monotonic() + pause)
        configured = self.enforced.requests
        floor = 0.0 if self.enforced.unlimited else self._aimd.floor(configured)
        decrease = 1.0 if self.enforced.unlimited else self._aimd.decrease
        row = await self._execute(
            "SELECT mdw_limiter_throttle(%s, %s, %s, %s, %s)",
            (self.name, pause, decrease, floor, max(self._aimd.cut_interval_s, self.enforced.period)),
        )
        if row and isinstance(row[0], float) and not self.enforced.unlimited:
            self._rate = row[0]
        log.warning("rate limited: shared rate now %.2f per %.3gs", self._rate, self.enforced.period,
                    extra={"action": "pglimiter.cut", "retry_after_s": retry_after_s})

    async def on_success(self) -> None:
        # Reported with the next reservation: recovery costs no extra round trip.
        if not self.enforced.unlimited and self._rate < self.enforced.requests:
            self._successes += 1

    # -- internals -------------------------------------------------------------------------------

    def _live_waiters(self) -> int:
        while self._waiters and self._waiters[0].done():
            self._waiters.popleft()
        return sum(1 for w in self._waiters if not w.done())

    async def _refill(self) -> None:
        """Serve every queued acquirer with as few round trips as possible, FIFO."""
        try:
            while (want := self._live_waiters()) > 0:
                successes, self._successes = self._successes, 0
                configured = self.enforced.requests
                row = await self._execute(
                    "SELECT out_grants, out_retry_in, out_rate, out_now"
                    " FROM mdw_limiter_reserve(%s, %s, %s, %s, %s, %s, %s, %s)",
                    (self.name, min(want, self.batch_max), self.horizon_s, successes,
                     self._aimd.run_length(configured), max(1.0, configured * self._aimd.increase_fraction),
                     self.lead_s, self.spacing_cap_s),
                )
                received = time.time()
                if row is None:
                    raise StoreError(f"rate limiter row {self.name!r} vanished")
                grants, retry_in, rate, db_now = row
                assert isinstance(grants, list) and isinstance(retry_in, float)
                assert isinstance(rate, float) and isinstance(db_now, float)
                self._rate = rate
                offset = self._offset.sample(db_now, received)
                for grant in grants:
                    self._grant(float(grant) - offset)
                if not grants:
                    # The budget is spent until the oldest grant in the window ages out.
                    await self._clock.sleep(retry_in)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc if isinstance(exc, StoreError) else StoreError(f"rate limiter failed: {exc}")
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(error)

    def _grant(self, deadline: float) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(deadline)
                return
        self.stats.wasted += 1  # the acquirer was cancelled meanwhile; the slot stays spent

    async def _connection(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        return self._conn

    async def _execute(self, sql: str, params: tuple[object, ...]) -> tuple[object, ...] | None:
        if self._conn_lock is None:
            self._conn_lock = asyncio.Lock()
        t0 = time.perf_counter()
        try:
            async with self._conn_lock:
                conn = await self._connection()
                try:
                    cur = await conn.execute(sql.encode(), params)
                except psycopg.OperationalError:
                    # One reconnect: a restarted server or a dropped idle connection.
                    await conn.close()
                    conn = await self._connection()
                    cur = await conn.execute(sql.encode(), params)
                return await cur.fetchone() if cur.description is not None else None
        except psycopg.Error as exc:
            raise StoreError(f"rate limiter database error: {exc}") from exc
        finally:
            self.stats.round_trips += 1
            self.stats.db_seconds += time.perf_counter() - t0
