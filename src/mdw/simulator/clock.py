"""The simulator's data clock: frozen at a moment, the wall clock, or faster than real time.

Bars exist only for minutes completed before the clock, and the stream emits each minute's
events when the clock passes the minute's end, so REST answers and the stream always agree on
what "now" is. A clock that runs at 60x lets an hour of market pass in a minute of wall time;
tests that need exact control freeze it and move it by hand (``set``/``advance``, or
``POST /_sim/clock``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from mdw.errors import ConfigError


class SimClock:
    """``now = start + (wall - wall_at_start) * speed``, re-anchored whenever it is set.

    Args:
        start_ms: the clock's reading now (None: the wall clock's reading).
        speed: how many simulated seconds pass per wall second; 0 freezes the clock. None means
            frozen when ``start_ms`` is given and the wall clock (speed 1) when it is not, which
            is how the simulator's ``now_ms`` setting has always behaved.
        wall: the wall-clock source in seconds (tests may pass their own).
    """

    def __init__(self, start_ms: int | None = None, speed: float | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        if speed is None:
            speed = 0.0 if start_ms is not None else 1.0
        _check_speed(speed)
        self._wall = wall
        self._anchor_wall = wall()
        self._anchor_ms = int(self._anchor_wall * 1000) if start_ms is None else int(start_ms)
        self._speed = float(speed)
        self._moved = asyncio.Event()

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def frozen(self) -> bool:
        return self._speed == 0.0

    def now_ms(self) -> int:
        """The simulated time, UTC epoch ms."""
        if self._speed == 0.0:
            return self._anchor_ms
        return self._anchor_ms + int((self._wall() - self._anchor_wall) * 1000 * self._speed)

    def set(self, now_ms: int | None = None, speed: float | None = None) -> None:
        """Jump to ``now_ms`` and/or change the speed, and wake everyone waiting on the clock.

        The clock may jump backwards here on purpose (a test resetting its scene); the stream
        only ever emits minutes after the last one it emitted.
        """
        if speed is not None:
            _check_speed(speed)
        current = self.now_ms()
        self._anchor_wall = self._wall()
        self._anchor_ms = current if now_ms is None else int(now_ms)
        if speed is not None:
            self._speed = float(speed)
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def advance(self, delta_ms: int) -> None:
        """Move the clock forward by ``delta_ms``."""
        self.set(self.now_ms() + int(delta_ms))

    def wall_seconds_until(self, at_ms: int) -> float | None:
        """Wall seconds until the clock reads ``at_ms`` (0 when past; None when frozen before it)."""
        now = self.now_ms()
        if now >= at_ms:
            return 0.0
        if self._speed == 0.0:
            return None
        return (at_ms - now) / 1000 / self._speed

    async def wait_until(self, at_ms: int, wake: asyncio.Event | None = None,
                         max_wait_s: float = 1.0) -> None:
        """Return when the clock reaches ``at_ms``, it is set, ``wake`` is set, or ``max_wait_s``
        passes, whichever is first (callers loop and re-check)."""
        delay = self.wall_seconds_until(at_ms)
        if delay == 0.0:
            return
        timeout = max_wait_s if delay is None else min(delay, max_wait_s)
        waits = [asyncio.ensure_future(self._moved.wait())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def to_dict(self) -> dict[str, float | int]:
        return {"now_ms": self.now_ms(), "speed": self._speed}


def _check_speed(speed: float) -> None:
    if not 0.0 <= speed <= 100_000.0:
        raise ConfigError(f"clock speed must be between 0 and 100000, got {speed}")
