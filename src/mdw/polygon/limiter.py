"""Plan-aware request pacing: a sliding-window log with AIMD on 429 and a global Retry-After pause.

Why a sliding-window log and not a token/leaky bucket: the vendor's window algorithm is unknown, and
a bucket that starts full lets 2N requests into one window of the period (measured for aiolimiter).
"No more than N starts in ANY window of the period" satisfies a fixed-window, sliding-window or
bucket vendor alike. Every page counts, so every HTTP request acquires once.

The seam is :class:`LimiterBackend`: a PostgreSQL-backed limiter that shares one budget across
processes implements the same three calls; :class:`RateLimiter` is the in-process backend.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import weakref
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from mdw.clock import SYSTEM_CLOCK, Clock
from mdw.config import RateLimit


@runtime_checkable
class LimiterBackend(Protocol):
    """What the client needs from a rate limiter; one instance is shared by every task.

    ``acquire`` is called immediately before each HTTP request is sent (after the in-flight
    semaphore), so a grant is a request start. ``on_rate_limited`` and ``on_success`` feed the
    adaptive control loop with the outcome of each response.
    """

    async def acquire(self) -> None:
        """Wait until one more request may start without exceeding the budget, and claim it."""
        ...

    async def on_rate_limited(self, retry_after_s: float | None) -> None:
        """The vendor answered 429: slow down; pause every caller for ``retry_after_s`` if given."""
        ...

    async def on_success(self) -> None:
        """A request was answered without a 429: count it toward additive recovery."""
        ...

    @property
    def current_rate(self) -> RateLimit:
        """The budget in force now (after AIMD cuts); for stats and health."""
        ...


@dataclass(frozen=True, slots=True)
class Aimd:
    """The additive-increase / multiplicative-decrease policy, reusable by any backend.

    Args:
        decrease: factor applied to the rate on a 429 (0.5 halves it).
        increase_fraction: share of the configured rate added back after each run of successes.
        recover_after: successes needed per increase; ``None`` means one configured window's worth.
        min_fraction: floor of the rate as a share of the configured one (never below 1 per period).
        cut_interval_s: at most one cut per this many seconds, so a burst of 429s from requests that
            were already in flight counts as one congestion signal, not many.
    """

    decrease: float = 0.5
    increase_fraction: float = 0.1
    recover_after: int | None = None
    min_fraction: float = 1 / 32
    cut_interval_s: float = 1.0

    def floor(self, configured: float) -> float:
        return max(1.0, configured * self.min_fraction)

    def cut(self, rate: float, configured: float) -> float:
        return max(self.floor(configured), rate * self.decrease)

    def grow(self, rate: float, configured: float) -> float:
        return min(configured, rate + max(1.0, configured * self.increase_fraction))

    def run_length(self, configured: float) -> int:
        return self.recover_after or max(1, math.ceil(configured))


class Answered(Protocol):
    """Reports that a granted request's answer (or its failure) arrived; idempotent.

    ``late_s`` > 0 when the request was sent and then given up on (a timeout): the vendor may
    still read and count it, so it stays counted until ``late_s`` after the call.
    """

    def __call__(self, late_s: float = 0.0) -> None: ...


@runtime_checkable
class ArrivalTracking(Protocol):
    """Optional richer seam: a grant whose vendor-side arrival is bounded when the answer comes.

    The vendor stamps a request somewhere between our send and its response headers. A limiter
    that learns when the headers arrived can count each request at that upper bound instead of
    at its grant, which makes the window guarantee hold as the vendor sees it, whatever the
    network or server queueing delay.
    """

    async def start(self) -> Answered:
        """Like ``acquire``; returns ``answered()`` to call when response headers (or an error) arrive.

        A request that timed out after it was sent is reported as ``answered(late_s)``.
        """
        ...


class RateLimiter:
    """In-process sliding-window-log limiter with AIMD, shared by all tasks of one event loop.

    Guarantee: the vendor sees at most ``floor(rate)`` requests in any window of the period, where
    ``rate`` starts at the plan's count and never exceeds it. Each request is counted at the latest
    moment the vendor can have stamped it: its answer time when granted through :meth:`start`
    (in flight = counted until answered; a request that timed out after it was sent, until
    ``late_s`` after we gave up, see :class:`Answered`), its grant time plus ``margin_s`` through
    :meth:`acquire`.
    Grants are FIFO and spaced at least ``min(period / rate, spacing_cap_s)`` apart, so a window's
    budget is not fired as one burst that queues at the vendor.

    Args:
        rate: the plan, e.g. ``RateLimit.parse("5/min")``; unlimited plans only honour Retry-After.
        clock: time source (tests pass a fake one).
        aimd: the adaptive policy.
        margin_s: extra window length; defaults to 0.2% of the period (clock granularity).
        spacing_cap_s: the largest enforced gap between consecutive grants (0 disables spacing).
    """

    def __init__(
        self,
        rate: RateLimit | str = "5/min",
        *,
        clock: Clock = SYSTEM_CLOCK,
        aimd: Aimd | None = None,
        margin_s: float | None = None,
        spacing_cap_s: float = 0.05,
    ) -> None:
        self.configured = RateLimit.parse(rate)
        self._clock = clock
        self._aimd = aimd or Aimd()
        period = self.configured.period
        self._window = period + (period * 0.002 if margin_s is None else margin_s)
        self._spacing_cap = max(0.0, spacing_cap_s)
        self._rate = self.configured.requests
        # Upper bounds of when the vendor counted each recent request (inf while in flight).
        self._bounds: list[float] = []
        self._next_slot = -math.inf
        self._paused_until = -math.inf
        self._last_cut = -math.inf
        self._successes = 0
        self._lock: asyncio.Lock | None = None
        self._answered: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.grants = 0

    @property
    def current_rate(self) -> RateLimit:
        return RateLimit(self._rate, self.configured.period)

    @property
    def window_s(self) -> float:
        """The window length enforced (the period plus the margin)."""
        return self._window

    @property
    def paused_for(self) -> float:
        """Seconds left of a Retry-After pause (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock.monotonic())

    @property
    def in_flight(self) -> int:
        """Granted requests whose answer has not arrived yet."""
        return sum(1 for b in self._bounds if b == math.inf)

    def _sync(self) -> tuple[asyncio.Lock, asyncio.Event]:
        # asyncio primitives bind to the loop they first wait on; a limiter reused by a later loop
        # (another asyncio.run in the same process) gets fresh ones instead of a RuntimeError.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._answered is None or self._loop is not loop:
            self._lock, self._answered, self._loop = asyncio.Lock(), asyncio.Event(), loop
        return self._lock, self._answered

    def _allowed(self) -> int:
        return max(1, math.floor(self._rate + 1e-9))

    def _delay(self, now: float) -> float:
        """Seconds until a grant is possible at ``now``: 0 = now, inf = when an answer arrives."""
        if now < self._paused_until:
            return self._paused_until - now
        if self.configured.unlimited:
            return 0.0
        gap = self._next_slot - now
        horizon = now - self._window
        self._bounds = [b for b in self._bounds if b > horizon]
        excess = len(self._bounds) - self._allowed() + 1
        if excess <= 0:
            return max(0.0, gap)
        finite = sorted(b for b in self._bounds if b != math.inf)
        if len(finite) < excess:
            return math.inf
        return max(gap, finite[excess - 1] + self._window - now)

    async def _grant(self) -> None:
        """Wait for a grant and record it as in flight."""
        lock, answered = self._sync()
        # The lock makes grants FIFO and keeps the check-then-append atomic across tasks.
        async with lock:
            while True:
                now = self._clock.monotonic()
                delay = self._delay(now)
                if delay <= 0:
                    # Slots advance on schedule, not from the (possibly late) wake-up, so timer
                    # lateness is caught up instead of accumulating; after idle at most two
                    # grants go back to back.
                    spacing = min(self.configured.period / self._rate, self._spacing_cap)
                    self._next_slot = max(self._next_slot, now - spacing) + spacing
                    self.grants += 1
                    if not self.configured.unlimited:
                        self._bounds.append(math.inf)
                    return
                if delay == math.inf:
                    # Budget held by requests still in flight: wake when one is answered.
                    answered.clear()
                    await answered.wait()
                else:
                    # Re-check after waking: a Retry-After pause may have arrived meanwhile.
                    await self._clock.sleep(delay)

    def _answer(self, marker: list[float], late_s: float) -> None:
        # Replace one in-flight bound by the answer time (plus how late a request given up on may
        # still be counted); bounds are unordered, so any inf will do as long as each ticket
        # replaces exactly one.
        if marker:
            return
        marker.append(1.0)
        bound = self._clock.monotonic() + max(0.0, late_s)
        for i, b in enumerate(self._bounds):
            if b == math.inf:
                self._bounds[i] = bound
                break
        if self._answered is not None:
            self._answered.set()

    async def acquire(self) -> None:
        await self._grant()
        if self.configured.unlimited:
            return
        # Counted at its grant time: without an answer signal the margin must absorb the delay.
        for i in range(len(self._bounds) - 1, -1, -1):
            if self._bounds[i] == math.inf:
                self._bounds[i] = self._clock.monotonic()
                break

    async def start(self) -> Answered:
        await self._grant()
        if self.configured.unlimited:
            return not_tracked
        marker: list[float] = []

        def answered(late_s: float = 0.0) -> None:
            self._answer(marker, late_s)

        return answered

    async def on_rate_limited(self, retry_after_s: float | None) -> None:
        now = self._clock.monotonic()
        self._successes = 0
        if retry_after_s is not None and retry_after_s > 0:
            self._paused_until = max(self._paused_until, now + retry_after_s)
        if self.configured.unlimited or now - self._last_cut < self._aimd.cut_interval_s:
            return
        self._last_cut = now
        self._rate = self._aimd.cut(self._rate, self.configured.requests)

    async def on_success(self) -> None:
        if self.configured.unlimited or self._rate >= self.configured.requests:
            return
        self._successes += 1
        if self._successes >= self._aimd.run_length(self.configured.requests):
            self._successes = 0
            self._rate = self._aimd.grow(self._rate, self.configured.requests)


def not_tracked(late_s: float = 0.0) -> None:
    """The :class:`Answered` of a grant nothing needs to hear about (unlimited, or ``acquire``)."""
    return None


_SHARED: weakref.WeakValueDictionary[tuple[str, str, RateLimit], RateLimiter] = (
    weakref.WeakValueDictionary()
)


def shared_limiter(base_url: str, api_key: str, rate: RateLimit) -> RateLimiter:
    """The process-wide limiter for one (vendor, key, plan), so separate clients share one budget.

    The key is stored only as a digest. The limiter lives as long as some client holds it.
    """
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    ident = (base_url.rstrip("/"), digest, rate)
    limiter = _SHARED.get(ident)
    if limiter is None:
        limiter = RateLimiter(rate)
        _SHARED[ident] = limiter
    return limiter
