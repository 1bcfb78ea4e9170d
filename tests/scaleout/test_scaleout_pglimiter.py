"""The PostgreSQL-backed limiter: one sliding-window budget and one AIMD state across processes."""

from __future__ import annotations

import asyncio
import math
import sys
import textwrap
import time
import uuid

import pytest

from mdw.config import RateLimit
from mdw.scaleout.pglimiter import MAX_LOG, PgRateLimiter, enforced_rate, limiter_name
from mdw.scaleout.schema import ensure_schema

pytestmark = pytest.mark.postgres

_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from mdw.config import RateLimit
    from mdw.scaleout.pglimiter import PgRateLimiter

    async def main(url, name, count):
        async with PgRateLimiter(url, RateLimit(10, 0.2), name=name) as lim:
            async def one():
                await lim.acquire()
                print(repr(time.time()), flush=True)
            await asyncio.gather(*(one() for _ in range(count)))

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


def _max_in_window(starts: list[float], window: float) -> int:
    """The most starts in any half-open window of ``window`` seconds."""
    s = sorted(starts)
    best, lo = 0, 0
    for hi, t in enumerate(s):
        while t - s[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_pglimiter_never_exceeds_the_window_when_processes_share_the_row(module_pg_url: str) -> None:
    """Three limiters in this process and one in a child process never put 11 starts in 0.2 s."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    starts: list[float] = []
    limiters = [PgRateLimiter(module_pg_url, RateLimit(10, 0.2), name=name) for _ in range(3)]
    for lim in limiters:
        await lim.open()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, module_pg_url, name, "15", stdout=asyncio.subprocess.PIPE
    )

    async def worker(lim: PgRateLimiter) -> None:
        for _ in range(5):
            await lim.acquire()
            starts.append(time.time())

    try:
        await asyncio.gather(*(worker(lim) for lim in limiters for _ in range(3)))
        out, _ = await child.communicate()
    finally:
        for lim in limiters:
            await lim.close()
    assert child.returncode == 0
    starts.extend(float(line) for line in out.decode().split())
    assert len(starts) == 45 + 15
    assert _max_in_window(starts, 0.2) <= 10
    # The budget binds: 60 starts at 10 per 0.2 s need at least 5 full windows.
    assert max(starts) - min(starts) >= 5 * 0.2


async def test_pglimiter_cuts_every_worker_when_one_sees_a_429(module_pg_url: str) -> None:
    """A 429 with Retry-After in one limiter halves the shared rate and pauses the other limiter."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    async with PgRateLimiter(module_pg_url, "100/s", name=name) as a, \
            PgRateLimiter(module_pg_url, "100/s", name=name) as b:
        await b.acquire()
        await a.on_rate_limited(0.3)
        t0 = time.monotonic()
        await b.acquire()
        assert time.monotonic() - t0 >= 0.3 - 0.02
        assert b.current_rate.requests == pytest.approx(50.0)
        # A second 429 within the cut interval counts as the same congestion signal.
        await b.on_rate_limited(None)
        assert b.current_rate.requests == pytest.approx(50.0)


async def test_pglimiter_recovers_the_rate_when_successes_accumulate(module_pg_url: str) -> None:
    """Successes reported by any worker ride along with reservations and raise the shared rate back."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    async with PgRateLimiter(module_pg_url, RateLimit(20, 0.1), name=name) as lim:
        await lim.on_rate_limited(None)
        assert lim.current_rate.requests == pytest.approx(10.0)
        for _ in range(25):
            await lim.acquire()
            await lim.on_success()
        await lim.acquire()
        assert lim.current_rate.requests > 10.0


async def test_pglimiter_serves_many_acquirers_per_round_trip_when_they_queue(module_pg_url: str) -> None:
    """Sixty-four concurrent acquirers cost far fewer than one database round trip each."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    async with PgRateLimiter(module_pg_url, "1000/s", name=name) as lim:
        trips = lim.stats.round_trips
        await asyncio.gather(*(lim.acquire() for _ in range(64)))
        assert lim.stats.grants == 64
        assert lim.stats.round_trips - trips <= 64 // 8


async def test_pglimiter_unlimited_plan_acquires_without_the_database(module_pg_url: str) -> None:
    """An unlimited plan grants locally: no round trip per request."""
    async with PgRateLimiter(module_pg_url, "unlimited", name=f"t-{uuid.uuid4().hex[:8]}") as lim:
        trips = lim.stats.round_trips
        for _ in range(100):
            await lim.acquire()
        assert lim.stats.round_trips == trips
        assert lim.stats.grants == 100


async def test_ensure_schema_is_idempotent_when_workers_start_together(module_pg_url: str) -> None:
    """Five concurrent schema preparations all succeed and leave one procrastinate schema."""
    await asyncio.gather(*(ensure_schema(module_pg_url) for _ in range(5)))
    await ensure_schema(module_pg_url)


def test_enforced_rate_splits_a_large_plan_into_stricter_subwindows() -> None:
    """A plan above the log size becomes N/k per P/k, which can never exceed N per P."""
    big = RateLimit(6000, 60)
    sub = enforced_rate(big)
    assert sub.requests <= MAX_LOG
    k = big.period / sub.period
    assert math.isclose(k, round(k)) and sub.requests * round(k) <= big.requests
    assert enforced_rate(RateLimit(5, 60)) == RateLimit(5, 60)


def test_limiter_name_never_contains_the_key() -> None:
    """The shared row is named by a digest, so the vendor key never lands in the database."""
    name = limiter_name("http://x", "secret-key-123")
    assert "secret" not in name and name == limiter_name("http://x/", "secret-key-123")

