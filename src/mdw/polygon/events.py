"""Frozen event objects the client emits, and the hub that logs and metrics subscribe to.

Retries, rate limiting and breaker transitions are reported here rather than logged ad hoc, so the
service can turn them into metrics and health without parsing log lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    """Circuit breaker states: calls flow (closed), fail fast (open), or one probe is allowed."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """An attempt failed with a retryable error and another attempt is scheduled after ``delay_s``."""

    attempt: int
    delay_s: float
    error: str
    status: int | None
    url: str


@dataclass(frozen=True, slots=True)
class RateLimitedEvent:
    """The vendor answered 429; the limiter now allows ``rate`` requests per ``period_s``."""

    retry_after_s: float | None
    rate: float
    period_s: float
    url: str


@dataclass(frozen=True, slots=True)
class BreakerTransitionEvent:
    """The circuit breaker changed state at ``at_ms`` (UTC epoch ms)."""

    at_ms: int
    from_state: BreakerState
    to_state: BreakerState
    cooldown_s: float


VendorEvent = RetryEvent | RateLimitedEvent | BreakerTransitionEvent
Subscriber = Callable[[VendorEvent], None]


class EventHub:
    """Synchronous fan-out of vendor events to subscribers."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Register ``callback``; returns a function that unsubscribes it."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def emit(self, event: VendorEvent) -> None:
        """Deliver ``event`` to every subscriber.

        A failing subscriber (a metrics bug) is logged and skipped: observing a request must never
        be able to fail it.
        """
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("vendor event subscriber failed", extra={"action": "vendor.event_hook"})
