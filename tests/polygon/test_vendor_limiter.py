"""The sliding-window AIMD rate limiter, on a fake clock (no sockets, no sleeping)."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from vendor_helpers import FakeClock, max_in_window

from mdw.config import RateLimit
from mdw.polygon import Aimd, ArrivalTracking, LimiterBackend, RateLimiter, shared_limiter


async def _grant_times(limiter: RateLimiter, clock: FakeClock, n: int) -> list[float]:
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        times.append(clock.monotonic())

    await asyncio.gather(*(one() for _ in range(n)))
    return times


async def test_limiter_never_exceeds_n_in_any_window_when_many_tasks_acquire(clock: FakeClock) -> None:
    """Fifty concurrent acquirers at 5/min never get more than 5 starts into any 60 s window."""
    limiter = RateLimiter("5/min", clock=clock, margin_s=0.0, spacing_cap_s=0.0)
    times = await _grant_times(limiter, clock, 50)
    assert len(times) == 50
    assert max_in_window(times, 60.0) == 5
    # Ten windows' worth: the first five start at once, the last five 9 periods later.
    assert times[-1] - times[0] == pytest.approx(9 * 60.0)


async def test_limiter_does_not_burst_twice_the_rate_across_a_window_edge(clock: FakeClock) -> None:
    """Unlike a full leaky bucket, the window log gives no 2N burst around a period boundary."""
    limiter = RateLimiter("10/s", clock=clock, margin_s=0.0, spacing_cap_s=0.0)
    await _grant_times(limiter, clock, 10)
    clock.advance(0.99)
    times = await _grant_times(limiter, clock, 10)
    assert min(times) >= 1001.0  # all ten wait for the first batch to leave the window


async def test_limiter_margin_widens_the_window_when_given(clock: FakeClock) -> None:
    """A margin spaces window refills by the period plus the margin."""
    limiter = RateLimiter("2/s", clock=clock, margin_s=0.01, spacing_cap_s=0.0)
    times = await _grant_times(limiter, clock, 4)
    assert limiter.window_s == pytest.approx(1.01)
    assert times[2] - times[0] == pytest.approx(1.01)


async def test_limiter_spaces_grants_when_a_window_budget_would_burst(clock: FakeClock) -> None:
    """Grants follow slots min(period/N, cap) apart (100/s: 10 ms, 5/min: the 50 ms cap); after idle,
    two go back to back, which lets a late wake-up catch up instead of losing rate."""
    fast = RateLimiter("100/s", clock=clock)
    times = await _grant_times(fast, clock, 5)
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [0.0] + [0.01] * 3
    slow = RateLimiter("5/min", clock=clock)
    times = await _grant_times(slow, clock, 5)
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [0.0] + [0.05] * 3


async def test_limiter_counts_a_request_until_its_answer_when_tracking_arrivals(clock: FakeClock) -> None:
    """Through start(), an unanswered request holds its slot, and the window runs from its answer."""
    limiter = RateLimiter("2/s", clock=clock, margin_s=0.0, spacing_cap_s=0.0)
    first = await limiter.start()
    second = await limiter.start()
    assert limiter.in_flight == 2
    waiter = asyncio.create_task(limiter.start())
    clock.advance(5.0)  # long past the period, but both still in flight: no grant
    await asyncio.sleep(0)
    assert not waiter.done()
    first()
    first()  # answering twice is harmless
    answered_at = clock.monotonic()
    third = await waiter
    assert clock.monotonic() == pytest.approx(answered_at + 1.0)  # one period after the answer
    second()
    third()
    assert limiter.in_flight == 0 and limiter.grants == 3


async def test_limiter_counts_a_timed_out_request_until_the_late_bound_when_given_up_on(
        clock: FakeClock) -> None:
    """A request given up on after it was sent (answered(late_s)) holds its slot until late_s after
    the give-up, as the vendor may still read it until then; a plain answer frees it a period on."""
    for late_s, frees_after in ((0.0, 1.0), (3.0, 4.0)):
        limiter = RateLimiter("1/s", clock=clock, margin_s=0.0, spacing_cap_s=0.0)
        first = await limiter.start()
        clock.advance(0.5)
        gave_up = clock.monotonic()
        first(late_s)
        first()  # the plain report that follows (the client's finally) changes nothing
        second = await limiter.start()
        assert clock.monotonic() == pytest.approx(gave_up + frees_after)
        second()
        assert limiter.in_flight == 0 and limiter.grants == 2


async def test_limiter_cuts_rate_multiplicatively_when_rate_limited(clock: FakeClock) -> None:
    """A 429 halves the rate once; 429s inside the cut interval are one congestion signal."""
    limiter = RateLimiter("100/s", clock=clock)
    await limiter.on_rate_limited(None)
    assert limiter.current_rate.requests == 50
    await limiter.on_rate_limited(None)
    assert limiter.current_rate.requests == 50
    clock.advance(1.5)
    await limiter.on_rate_limited(None)
    assert limiter.current_rate.requests == 25


async def test_limiter_rate_never_drops_below_its_floor_when_429s_persist(clock: FakeClock) -> None:
    """Repeated 429s stop at the floor: one request per period at least."""
    limiter = RateLimiter("5/min", clock=clock)
    for _ in range(10):
        await limiter.on_rate_limited(None)
        clock.advance(2)
    assert limiter.current_rate.requests == 1


async def test_limiter_cut_rate_is_enforced_in_the_window(clock: FakeClock) -> None:
    """After a cut to 5/s, grants respect 5 per window."""
    limiter = RateLimiter("10/s", clock=clock, margin_s=0.0, spacing_cap_s=0.0)
    await limiter.on_rate_limited(None)
    times = await _grant_times(limiter, clock, 20)
    assert max_in_window(times, 1.0) == 5


async def test_limiter_recovers_additively_but_never_above_the_plan(clock: FakeClock) -> None:
    """Runs of successes add back a tenth of the plan each, capped at the configured rate."""
    limiter = RateLimiter("100/s", clock=clock, aimd=Aimd(recover_after=10))
    await limiter.on_rate_limited(None)
    assert limiter.current_rate.requests == 50
    for _ in range(10):
        await limiter.on_success()
    assert limiter.current_rate.requests == 60
    for _ in range(200):
        await limiter.on_success()
    assert limiter.current_rate.requests == 100


async def test_limiter_pauses_every_caller_when_retry_after_is_given(clock: FakeClock) -> None:
    """A Retry-After of 7 s delays the next grant by 7 s even with budget left."""
    limiter = RateLimiter("100/s", clock=clock)
    await limiter.acquire()
    start = clock.monotonic()
    await limiter.on_rate_limited(7.0)
    assert limiter.paused_for == pytest.approx(7.0)
    times = await _grant_times(limiter, clock, 3)
    assert min(times) - start == pytest.approx(7.0)


async def test_limiter_unlimited_plan_grants_at_once_but_honours_retry_after(clock: FakeClock) -> None:
    """An unlimited plan never waits on the window, yet a Retry-After still pauses it."""
    limiter = RateLimiter("unlimited", clock=clock)
    times = await _grant_times(limiter, clock, 500)
    assert set(times) == {1000.0}
    await limiter.on_rate_limited(2.0)
    assert limiter.current_rate.unlimited
    assert (await _grant_times(limiter, clock, 1)) == [1002.0]


async def test_limiter_cancelled_waiter_does_not_claim_a_slot() -> None:
    """A task cancelled while waiting leaves the budget to the next caller and re-raises."""
    real = RateLimiter("1/min", margin_s=0.0, spacing_cap_s=0.0)
    await real.acquire()
    waiter = asyncio.create_task(real.acquire())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert real.grants == 1


def test_limiter_is_the_backend_protocol_when_checked_structurally() -> None:
    """RateLimiter satisfies the LimiterBackend seam a Postgres limiter will implement."""
    assert isinstance(RateLimiter("5/min"), LimiterBackend)
    assert isinstance(RateLimiter("5/min"), ArrivalTracking)


def test_shared_limiter_is_one_per_vendor_key_and_plan_when_clients_ask() -> None:
    """Clients of one key share one budget; another key or plan gets its own."""
    rate = RateLimit.parse("5/min")
    a = shared_limiter("http://x", "key-one", rate)
    assert shared_limiter("http://x/", "key-one", rate) is a
    assert shared_limiter("http://x", "key-two", rate) is not a
    assert shared_limiter("http://x", "key-one", RateLimit.parse("6/min")) is not a


def test_limiter_works_in_a_later_event_loop_when_reused() -> None:
    """A limiter first used under one asyncio.run keeps working under the next."""
    limiter = RateLimiter("1000/s")

    async def burst() -> None:
        await asyncio.gather(*(limiter.acquire() for _ in range(5)))

    asyncio.run(burst())
    asyncio.run(burst())
    assert limiter.grants == 10


async def test_limiter_keeps_full_rate_when_wakeups_are_late() -> None:
    """Timers that fire 5 ms late (a busy loop) still yield the plan's rate, not a slower one."""

    class LateClock(FakeClock):
        async def sleep(self, seconds: float) -> None:
            await super().sleep(seconds + 0.005)

    clock = LateClock()
    limiter = RateLimiter("100/s", clock=clock, margin_s=0.0)
    times = await _grant_times(limiter, clock, 1000)
    assert max_in_window(times, 1.0) <= 100
    refill = [b - a for a, b in zip(times, times[100:], strict=False)]  # g[k+N] - g[k] >= P
    assert 100 / (sum(refill) / len(refill)) > 99
