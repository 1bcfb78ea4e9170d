"""The vendor boundary: the async Polygon/Massive client and its limiter, retries and breaker.

Import from here; the submodules are split by responsibility (limiter, breaker, retry, paging,
decode, http, stats, client). This package knows nothing about storage.
"""

from __future__ import annotations

from mdw.polygon.breaker import CircuitBreaker
from mdw.polygon.client import PolygonClient
from mdw.polygon.events import (
    BreakerState,
    BreakerTransitionEvent,
    RateLimitedEvent,
    RetryEvent,
    VendorEvent,
)
from mdw.polygon.limiter import Aimd, ArrivalTracking, LimiterBackend, RateLimiter, shared_limiter
from mdw.polygon.retry import Backoff, is_retryable, parse_retry_after
from mdw.polygon.stats import ClientStats, LatencyHistogram

__all__ = [
    "Aimd",
    "ArrivalTracking",
    "Backoff",
    "BreakerState",
    "BreakerTransitionEvent",
    "CircuitBreaker",
    "ClientStats",
    "LatencyHistogram",
    "LimiterBackend",
    "PolygonClient",
    "RateLimitedEvent",
    "RateLimiter",
    "RetryEvent",
    "VendorEvent",
    "is_retryable",
    "parse_retry_after",
    "shared_limiter",
]
