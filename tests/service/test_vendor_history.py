"""The per-minute vendor history behind /v1/overview's last-hour counts."""

from __future__ import annotations

from mdw.polygon.events import BreakerState
from mdw.polygon.stats import ClientStats, LatencyHistogram
from mdw.service.state import VendorHistory

MIN = 60_000


def _stats(requests: int, rate_limited: int = 0) -> ClientStats:
    return ClientStats(
        total_requests=requests, rate_limited_count=rate_limited, retries=0, failures_by_class={},
        bytes_received=0, bars_decoded=0,
        latency=LatencyHistogram(bounds=(float("inf"),), counts=(0,), sum_s=0.0, count=0),
        breaker_state=BreakerState.CLOSED, breaker_transitions=(), limiter_rate=5.0,
        limiter_period_s=60.0,
    )


def test_vendor_history_counts_requests_made_within_the_first_minute() -> None:
    """Requests made in the minute the history began are counted, not lost to a moving baseline."""
    history = VendorHistory()
    start = 1_700_000_000_000 - 1_700_000_000_000 % MIN
    history.record(_stats(0), start + 1_000)
    history.record(_stats(7, 1), start + 30_000)
    assert history.since(start + 40_000 - 3_600_000, _stats(7, 1))["requests"] == 7
    assert history.since(start + 40_000 - 3_600_000, _stats(7, 1))["rate_limited"] == 1


def test_vendor_history_uses_the_reading_before_the_window_as_baseline() -> None:
    """Only requests after the window start count once older readings exist."""
    history = VendorHistory()
    start = 1_700_000_000_000 - 1_700_000_000_000 % MIN
    history.record(_stats(10), start)
    history.record(_stats(25), start + 2 * MIN)
    history.record(_stats(40), start + 5 * MIN)
    assert history.since(start + 2 * MIN, _stats(50))["requests"] == 25
    assert history.since(start - 10 * MIN, _stats(50))["requests"] == 50
