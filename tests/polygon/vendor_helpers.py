"""Helpers for the vendor tests: a fake clock that advances instead of sleeping, window counting."""

from __future__ import annotations

import asyncio


class FakeClock:
    """A manual clock: ``sleep`` advances time at once (and yields), so pacing tests never wait."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def now_ms(self) -> int:
        return int(self.now * 1000)

    async def sleep(self, seconds: float, stop: asyncio.Event | None = None) -> None:
        self.slept.append(seconds)
        if stop is None or not stop.is_set():
            self.now += max(0.0, seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


def max_in_window(times: list[float], window: float) -> int:
    """The most grant times that fall in any half-open window ``[x, x + window)``."""
    ts = sorted(times)
    best = lo = 0
    for hi, t in enumerate(ts):
        while ts[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
