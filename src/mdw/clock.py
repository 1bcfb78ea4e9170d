"""The one time source of mdw: a ``Clock`` protocol that every timer takes, and ``now_ms()``.

The limiter's pacing, the breaker's cool-down, the engine's wait through a vendor outage, the
retry backoff and the service's scheduler all read time and wait through a :class:`Clock`, so a
test drives them on a :class:`ManualClock` (or any other implementation) and never sleeps or
asserts on wall-clock time. Production uses :data:`SYSTEM_CLOCK`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


def now_ms() -> int:
    """UTC epoch milliseconds on the system clock (for stamps outside any injected clock)."""
    return time.time_ns() // 1_000_000


class Clock(Protocol):
    """Monotonic seconds for durations, wall milliseconds for stamps, and a stoppable sleep."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for durations and deadlines)."""
        ...

    def now_ms(self) -> int:
        """UTC epoch milliseconds (for timestamps that people, metrics and schedules read)."""
        ...

    async def sleep(self, seconds: float, stop: asyncio.Event | None = None) -> None:
        """Wait ``seconds`` on this clock, or until ``stop`` is set, whichever comes first."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time_ns`` and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now_ms(self) -> int:
        return now_ms()

    async def sleep(self, seconds: float, stop: asyncio.Event | None = None) -> None:
        delay = max(0.0, seconds)
        if stop is None:
            await asyncio.sleep(delay)
            return
        # Waiting on the stop event (not a bare sleep) makes shutdown immediate.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when told to; sleepers wake as soon as it passes their deadline.

    Tests move it with :meth:`set` or :meth:`advance`; ``monotonic`` is the same instant in seconds.
    """

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms
        self._moved = asyncio.Event()

    def now_ms(self) -> int:
        return self._now

    def monotonic(self) -> float:
        return self._now / 1000

    def set(self, ms: int) -> None:
        """Move the clock to ``ms`` (never backwards) and wake every sleeper to re-check."""
        self._now = max(self._now, ms)
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def advance(self, delta_ms: int) -> None:
        self.set(self._now + delta_ms)

    async def sleep(self, seconds: float, stop: asyncio.Event | None = None) -> None:
        deadline = self._now + seconds * 1000 - 1e-6  # ms stamps are whole; absorb float rounding
        while self._now < deadline and not (stop is not None and stop.is_set()):
            waits = {asyncio.ensure_future(self._moved.wait())}
            if stop is not None:
                waits.add(asyncio.ensure_future(stop.wait()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()


async def sleep_until(clock: Clock, deadline_ms: int, stop: asyncio.Event | None = None) -> None:
    """Wait on ``clock`` until its wall time reaches ``deadline_ms`` (or ``stop`` is set)."""
    await clock.sleep((deadline_ms - clock.now_ms()) / 1000, stop)
