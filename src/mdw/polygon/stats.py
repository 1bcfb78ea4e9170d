"""Request accounting: counters, a latency histogram and breaker history, read as frozen snapshots.

The service exports :class:`ClientStats` to Prometheus; the backfill report quotes it. Counting
happens on the event loop only, so plain integers suffice.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

from mdw.polygon.events import BreakerState

# Upper bounds (seconds) of the latency buckets; the last bucket is +Inf.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, float("inf"),
)


@dataclass(frozen=True, slots=True)
class LatencyHistogram:
    """Non-cumulative counts per bucket: ``counts[i]`` requests took at most ``bounds[i]`` seconds
    and more than ``bounds[i-1]``."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum_s: float
    count: int

    def cumulative(self) -> tuple[int, ...]:
        """Prometheus-style cumulative counts per upper bound."""
        out: list[int] = []
        total = 0
        for c in self.counts:
            total += c
            out.append(total)
        return tuple(out)


@dataclass(frozen=True, slots=True)
class ClientStats:
    """A frozen snapshot of a client's accounting since it was created."""

    total_requests: int
    rate_limited_count: int
    retries: int
    failures_by_class: dict[str, int]
    bytes_received: int
    bars_decoded: int
    latency: LatencyHistogram
    breaker_state: BreakerState
    breaker_transitions: tuple[tuple[int, BreakerState, BreakerState], ...]
    limiter_rate: float
    limiter_period_s: float
    pages: int = 0
    breaker_transitions_total: int = 0  # breaker_transitions keeps only the most recent 100
    data_notes: dict[str, int] = field(default_factory=dict)  # kept or dropped vendor values, by what

    @property
    def limiter_per_second(self) -> float:
        """The limiter's current rate in requests per second."""
        return self.limiter_rate / self.limiter_period_s if self.limiter_period_s else 0.0


@dataclass(slots=True)
class StatsRecorder:
    """Mutable counters behind :class:`ClientStats`."""

    total_requests: int = 0
    rate_limited_count: int = 0
    retries: int = 0
    bytes_received: int = 0
    bars_decoded: int = 0
    pages: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latency_counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_S))
    latency_sum_s: float = 0.0
    data_notes: Counter[str] = field(default_factory=Counter)

    def note(self, notes: dict[str, int]) -> None:
        """Count what pages held that was kept or dropped without refusing them (for the report)."""
        self.data_notes.update(notes)

    def observe_latency(self, seconds: float) -> None:
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.latency_sum_s += seconds

    def failure(self, exc: BaseException) -> None:
        self.failures[type(exc).__name__] += 1

    def snapshot(
        self,
        breaker_state: BreakerState,
        transitions: list[tuple[int, BreakerState, BreakerState]],
        limiter_rate: float,
        limiter_period_s: float,
        transitions_total: int = 0,
    ) -> ClientStats:
        return ClientStats(
            total_requests=self.total_requests,
            rate_limited_count=self.rate_limited_count,
            retries=self.retries,
            failures_by_class=dict(self.failures),
            bytes_received=self.bytes_received,
            bars_decoded=self.bars_decoded,
            latency=LatencyHistogram(
                LATENCY_BUCKETS_S, tuple(self.latency_counts), self.latency_sum_s, sum(self.latency_counts)
            ),
            breaker_state=breaker_state,
            breaker_transitions=tuple(transitions),
            limiter_rate=limiter_rate,
            limiter_period_s=limiter_period_s,
            pages=self.pages,
            breaker_transitions_total=max(transitions_total, len(transitions)),
            data_notes=dict(self.data_notes),
        )
