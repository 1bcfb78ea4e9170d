"""Retry policy: which vendor errors are retried, and how long to back off between attempts.

Shaped like stamina (an explicit ``on=`` predicate, capped exponential backoff with full jitter,
and the test suite's ``stamina.set_testing`` switch turns waiting off), but written as a plain
loop so waits go through an injectable sleep and the shared rate limiter keeps pacing for real.
Retry-After is honoured by the limiter, which pauses every task, not just the one that was told.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import stamina

from mdw.errors import VendorError

Sleep = Callable[[float], Awaitable[None]]


def is_retryable(exc: BaseException) -> bool:
    """The retry predicate: decided by the error's class, never by its message."""
    return isinstance(exc, VendorError) and exc.retryable


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with full jitter: attempt k waits U(0, min(cap, base * 2**(k-1))).

    Args:
        attempts: total attempts including the first (so ``attempts - 1`` retries).
        base_s: the first backoff ceiling.
        cap_s: the largest backoff ceiling.
    """

    attempts: int = 5
    base_s: float = 1.0
    cap_s: float = 300.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.cap_s, self.base_s * 2.0 ** max(0, attempt - 1)))

    def delay(self, attempt: int) -> float:
        """A full-jitter wait after failed attempt ``attempt``; spreads retries of many tasks apart."""
        return self.rng.uniform(0.0, self.ceiling(attempt))


async def default_sleep(seconds: float) -> None:
    """``asyncio.sleep``, except that it only yields while stamina's testing mode is on."""
    await asyncio.sleep(0.0 if stamina.is_testing() else seconds)


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
