"""The vendor boundary: the async Polygon/Massive client and its limiter, retries and breaker.

Import from here; the submodules are split by responsibility (limiter, breaker, retry, paging,
decode, http, stats, client). This package knows nothing about storage.
"""

from __future__ import annotations

from mdw.vendor.breaker import CircuitBreaker
from mdw.vendor.client import PolygonClient
from mdw.vendor.clock import Clock, SystemClock
from mdw.vendor.events import (
    BreakerState,
    BreakerTransitionEvent,
    RateLimitedEvent,
    RetryEvent,
    VendorEvent,
)
from mdw.vendor.limiter import Aimd, ArrivalTracking, LimiterBackend, RateLimiter, shared_limiter
from mdw.vendor.retry import Backoff, is_retryable, parse_retry_after
from mdw.vendor.stats import ClientStats, LatencyHistogram

__all__ = [
    "Aimd",
    "ArrivalTracking",
    "Backoff",
    "BreakerState",
    "BreakerTransitionEvent",
    "CircuitBreaker",
    "ClientStats",
    "Clock",
    "LatencyHistogram",
    "LimiterBackend",
    "PolygonClient",
    "RateLimitedEvent",
    "RateLimiter",
    "RetryEvent",
    "SystemClock",
    "VendorEvent",
    "is_retryable",
    "parse_retry_after",
    "shared_limiter",
]
