"""Per-key rate limiting as the vendor enforces it, and the request statistics behind /_sim/stats.

Every request that reaches the limiter with a valid key counts, one per page. Only requests
that were served count against the limit (a 429 does not extend the penalty).
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from mdw.config import RateLimit


@dataclass(slots=True)
class _KeyWindow:
    served: deque[float] = field(default_factory=deque)
    bucket: int = -1
    bucket_count: int = 0


class RateLimiter:
    """``sliding``: at most N served requests in any window of the period; ``fixed``: at most N per
    calendar-aligned period (for ``N/min``: per wall-clock minute)."""

    def __init__(self, window: str, clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self.clock = clock
        self._keys: dict[str, _KeyWindow] = {}

    def acquire(self, key: str, rate: RateLimit) -> float | None:
        """Count a request; None when it may be served, else the seconds until it could be."""
        if rate.unlimited:
            return None
        now = self.clock()
        state = self._keys.setdefault(key, _KeyWindow())
        limit = int(rate.requests)
        if self.window == "fixed":
            bucket = math.floor(now / rate.period)
            if bucket != state.bucket:
                state.bucket, state.bucket_count = bucket, 0
            if state.bucket_count >= limit:
                return (bucket + 1) * rate.period - now
            state.bucket_count += 1
            return None
        served = state.served
        while served and served[0] <= now - rate.period:
            served.popleft()
        if len(served) >= limit:
            return served[0] + rate.period - now
        served.append(now)
        return None

    def reset(self) -> None:
        self._keys.clear()


class _MaxWindow:
    """The most events seen in any window of ``span`` seconds (windows ending at an event)."""

    def __init__(self, span: float) -> None:
        self.span = span
        self.times: deque[float] = deque()
        self.max = 0

    def add(self, now: float) -> None:
        self.times.append(now)
        while self.times and self.times[0] <= now - self.span:
            self.times.popleft()
        self.max = max(self.max, len(self.times))


class Stats:
    """Counters for /_sim/stats."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.by_key: Counter[str] = Counter()
        self.by_endpoint: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.rate_limited = 0
        self.faults: Counter[str] = Counter()
        self.bars_served = 0
        self.pages_served = 0
        self.flatfile_bytes = 0  # flat-file body bytes sent
        self.in_flight = 0  # vendor requests being answered now
        self.max_in_flight = 0  # the most ever answered at once: what a client's concurrency cap shows
        self.delayed_s = 0.0  # latency the simulator added on purpose (config and fault latency)
        self._all60, self._all1 = _MaxWindow(60.0), _MaxWindow(1.0)
        self._key60: dict[str, _MaxWindow] = {}
        self._key1: dict[str, _MaxWindow] = {}
        self._served60: dict[str, _MaxWindow] = {}
        self._key_plan: dict[str, _MaxWindow] = {}

    def request(self, endpoint: str) -> None:
        now = self.clock()
        self.requests += 1
        self.by_endpoint[endpoint] += 1
        self._all60.add(now)
        self._all1.add(now)

    def keyed(self, key: str, period_s: float | None = None) -> None:
        """A request that named ``key``; ``period_s`` is its plan's window (unlimited: None)."""
        now = self.clock()
        self.by_key[key] += 1
        self._key60.setdefault(key, _MaxWindow(60.0)).add(now)
        self._key1.setdefault(key, _MaxWindow(1.0)).add(now)
        if period_s is not None:
            self._key_plan.setdefault(key, _MaxWindow(period_s)).add(now)

    def served(self, key: str) -> None:
        self._served60.setdefault(key, _MaxWindow(60.0)).add(self.clock())

    def snapshot(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "requests_by_key": dict(self.by_key),
            "requests_by_endpoint": dict(self.by_endpoint),
            "responses_by_status": dict(self.by_status),
            "rate_limited": self.rate_limited,
            "max_in_flight": self.max_in_flight,
            "delayed_s": round(self.delayed_s, 6),
            "max_requests_60s": self._all60.max,
            "max_requests_1s": self._all1.max,
            "max_requests_60s_by_key": {k: w.max for k, w in self._key60.items()},
            "max_requests_1s_by_key": {k: w.max for k, w in self._key1.items()},
            "max_served_60s_by_key": {k: w.max for k, w in self._served60.items()},
            # Arrivals (served or refused) in any window of the key's own plan period.
            "max_requests_plan_window_by_key": {k: w.max for k, w in self._key_plan.items()},
            "faults": dict(self.faults),
            "bars_served": self.bars_served,
            "pages_served": self.pages_served,
            "flatfile_bytes": self.flatfile_bytes,
        }
