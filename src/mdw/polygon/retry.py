"""Retries of vendor requests, on stamina: which errors are tried again, and how long to wait.

stamina is mdw's one retry primitive (the client here, the service's webhook alerts). Each
logical request runs in a ``stamina.retry_context`` whose ``on=`` backoff hook is a
:class:`Tries`: it decides by the error's class (never its message), spends the attempts of the
:class:`~mdw.polygon.options.RetryPolicy` (429s have a budget of their own), and returns the wait
(full jitter under a capped exponential ceiling, or the vendor's Retry-After when longer).
stamina waits it, runs its on-retry instrumentation hooks (mdw's log line, its Prometheus counter)
and, in the test suite's ``stamina.set_testing`` mode, waits nothing. Retry-After of a 429 is
honoured by the limiter too, which pauses every task, not just the one that was told.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from mdw.errors import VendorError, VendorRateLimited
from mdw.polygon.options import RetryPolicy

RATE_LIMITED_RETRIES = 4
"""429s a request may meet, per configured attempt, before they count against its attempts."""


def is_retryable(exc: BaseException) -> bool:
    """The retry predicate: decided by the error's class, never by its message."""
    return isinstance(exc, VendorError) and exc.retryable


class Tries:
    """The backoff hook of one logical request (stamina's ``on=``), counting what it spent.

    A 429 says "slower", not "broken": the limiter has already slowed every caller and the answer
    comes once the window drains, so 429s spend a budget of their own (``RATE_LIMITED_RETRIES``
    times the attempts) before they count as failed attempts.

    Args:
        policy: attempts and backoff.
        on_retry: called with (attempt number, wait, error) each time a retry is decided.
        rng: the jitter's random source; by default the process's shared one (``random``'s own,
            re-seeded in a forked child), not a new ``Random()`` per request, whose seeding from
            ``os.urandom`` costs more than the rest of a request's retry bookkeeping.
    """

    def __init__(self, policy: RetryPolicy, on_retry: Callable[[int, float, VendorError], None] | None = None,
                 rng: random.Random | None = None) -> None:
        self.policy = policy
        self.attempts = max(1, policy.attempts)
        self.on_retry = on_retry
        self.rng = rng
        self.failed = 0  # attempts that ended in a retryable error
        self.limited = 0  # of which 429s

    @property
    def most(self) -> int:
        """The largest number of attempts this request may make (stamina's ``attempts=``)."""
        return self.attempts * (1 + RATE_LIMITED_RETRIES)

    @property
    def spent(self) -> int:
        """Failed attempts that count against ``policy.attempts`` (429s beyond their budget)."""
        return self.failed - min(self.limited, self.attempts * RATE_LIMITED_RETRIES)

    def delay(self, attempt: int) -> float:
        """A full-jitter wait after failed attempt ``attempt``: spreads retries of many tasks apart."""
        return (self.rng or random).uniform(0.0, self.policy.ceiling(attempt))

    def __call__(self, exc: Exception) -> bool | float:
        if not is_retryable(exc):
            return False
        assert isinstance(exc, VendorError)
        self.failed += 1
        if isinstance(exc, VendorRateLimited):
            self.limited += 1
        if self.spent >= self.attempts:
            return False
        wait = self.delay(self.failed)
        if exc.retry_after is not None and not isinstance(exc, VendorRateLimited):
            wait = max(wait, min(exc.retry_after, self.policy.cap_s))  # a 503 that says when
        if self.on_retry is not None:
            self.on_retry(self.failed, wait, exc)
        return wait


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    text = value.strip()
    try:
        secs = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        secs = (when - (now or datetime.now(UTC))).total_seconds()
    if secs != secs or secs < 0:  # NaN or in the past
        return 0.0 if secs == secs else None
    return min(secs, 86_400.0)
