"""Time for the service: a ``Clock`` seam so the scheduler can run on a simulated clock in tests.

Production uses :class:`SystemClock`. Tests use :class:`ManualClock` and move time forward by
hand; a sleeper wakes as soon as the clock reaches its deadline, so no test ever sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    """Where the scheduler and the freshness checks get "now" from, and how they wait."""

    def now_ms(self) -> int:
        """UTC epoch milliseconds."""

    async def sleep_until(self, deadline_ms: int, stop: asyncio.Event) -> None:
        """Return when the clock reaches ``deadline_ms`` or ``stop`` is set, whichever is first."""


class SystemClock:
    """The wall clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep_until(self, deadline_ms: int, stop: asyncio.Event) -> None:
        delay = max(0.0, (deadline_ms - self.now_ms()) / 1000)
        # Waiting on the stop event (not a bare sleep) makes shutdown immediate.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)


class ManualClock:
    """A clock that moves only when told to; sleepers wake when it passes their deadline."""

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms
        self._moved = asyncio.Event()

    def now_ms(self) -> int:
        return self._now

    def set(self, ms: int) -> None:
        """Move the clock to ``ms`` (never backwards) and wake every sleeper to re-check."""
        self._now = max(self._now, ms)
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def advance(self, delta_ms: int) -> None:
        self.set(self._now + delta_ms)

    async def sleep_until(self, deadline_ms: int, stop: asyncio.Event) -> None:
        while self._now < deadline_ms and not stop.is_set():
            waits = {asyncio.ensure_future(self._moved.wait()), asyncio.ensure_future(stop.wait())}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
