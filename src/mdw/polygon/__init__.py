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
from mdw.polygon.options import BreakerPolicy, Pacing, RetryPolicy, options_from_settings
from mdw.polygon.retry import Tries, is_retryable, parse_retry_after
from mdw.polygon.stats import ClientStats, LatencyHistogram
from mdw.polygon.transport import AiohttpTransport, Request, Response, Timeouts, Transport

__all__ = [
    "Aimd",
    "AiohttpTransport",
    "ArrivalTracking",
    "BreakerPolicy",
    "BreakerState",
    "BreakerTransitionEvent",
    "CircuitBreaker",
    "ClientStats",
    "LatencyHistogram",
    "LimiterBackend",
    "Pacing",
    "PolygonClient",
    "RateLimitedEvent",
    "RateLimiter",
    "Request",
    "Response",
    "RetryEvent",
    "RetryPolicy",
    "Timeouts",
    "Transport",
    "Tries",
    "VendorEvent",
    "is_retryable",
    "options_from_settings",
    "parse_retry_after",
    "shared_limiter",
]
