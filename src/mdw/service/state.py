"""What the routes share: settings, the store, the vendor client and the service's own parts."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from mdw.clock import Clock
from mdw.config import Settings
from mdw.domain import MINUTE_MS
from mdw.polygon import BreakerState, ClientStats, PolygonClient
from mdw.service.alerts import Alerter
from mdw.service.metrics import ServiceMetrics
from mdw.service.runs import DistributedLauncher, RunManager
from mdw.store.base import Store
from mdw.stream.live import LiveBars

if TYPE_CHECKING:
    from mdw.service.scheduler import Scheduler
    from mdw.stream.runner import LiveStream


@dataclass(frozen=True, slots=True)
class Sample:
    """Cumulative vendor counters at the start of a minute."""

    minute_ms: int
    requests: int
    rate_limited: int
    retries: int
    failures: int


@dataclass(slots=True)
class VendorHistory:
    """Per-minute samples of the client's counters, so the API can chart the last hours."""

    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=24 * 60 + 1))

    def record(self, stats: ClientStats, now_ms: int) -> None:
        """Keep the first reading of each minute: the counters as the minute began."""
        minute = now_ms - now_ms % MINUTE_MS
        if not self.samples or self.samples[-1].minute_ms < minute:
            self.samples.append(Sample(minute, stats.total_requests, stats.rate_limited_count,
                                       stats.retries, sum(stats.failures_by_class.values())))

    def per_minute(self, since_ms: int) -> list[dict[str, int]]:
        """Counts per minute (differences of consecutive samples) from ``since_ms`` on."""
        out = []
        for prev, cur in itertools.pairwise(self.samples):
            if cur.minute_ms <= since_ms:
                continue
            out.append({"minute_ms": prev.minute_ms, "requests": cur.requests - prev.requests,
                        "rate_limited": cur.rate_limited - prev.rate_limited,
                        "retries": cur.retries - prev.retries, "failures": cur.failures - prev.failures})
        return out

    def since(self, since_ms: int, stats: ClientStats) -> dict[str, int]:
        """Totals from ``since_ms`` up to ``stats`` (now).

        The baseline is the last reading taken at or before ``since_ms``; when the window starts
        before the first reading, it is zero, because the client's counters started at zero.
        """
        base = None
        for sample in self.samples:
            if sample.minute_ms > since_ms:
                break
            base = sample
        b_req, b_429, b_retry, b_fail = (
            (base.requests, base.rate_limited, base.retries, base.failures) if base else (0, 0, 0, 0)
        )
        return {"requests": stats.total_requests - b_req,
                "rate_limited": stats.rate_limited_count - b_429,
                "retries": stats.retries - b_retry,
                "failures": sum(stats.failures_by_class.values()) - b_fail}


@dataclass(slots=True)
class ServiceState:
    """Everything one app instance holds; routes reach it through :func:`get_state`."""

    settings: Settings
    store: Store
    client: PolygonClient | None
    clock: Clock
    metrics: ServiceMetrics
    alerts: Alerter
    runs: RunManager
    history: VendorHistory
    started_at_ms: int
    scheduler: Scheduler | None = None
    distributed: DistributedLauncher | None = None
    stream: LiveStream | None = None  # the vendor's WebSocket, when MDW_STREAM is on
    live: LiveBars = field(default_factory=LiveBars)  # stored stream bars, for /v1/stream/bars
    # When /metrics last counted the bars of every series (a costly query, run once a minute).
    bars_counted_ms: int | None = None

    def breaker(self) -> tuple[BreakerState, float]:
        """The vendor breaker's state and seconds until it lets a probe through."""
        if self.client is None:
            return BreakerState.CLOSED, 0.0
        return self.client.breaker.state, self.client.breaker.retry_in()

    def vendor_degraded(self) -> bool:
        """True while the breaker is not closed: new data cannot be relied on to arrive."""
        return self.breaker()[0] is not BreakerState.CLOSED

    def stats(self) -> ClientStats | None:
        return self.client.stats() if self.client is not None else None


def get_state(request: Request) -> ServiceState:
    state = request.app.state.mdw
    assert isinstance(state, ServiceState)
    return state
