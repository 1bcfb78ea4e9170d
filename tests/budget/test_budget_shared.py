"""The shared budget across processes, on SQLite and PostgreSQL: one window per key, one AIMD state."""

from __future__ import annotations

import asyncio
import math
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from mdw.budget import SharedLimiter, budget_name, enforced_rate
from mdw.budget.limiter import MAX_LOG
from mdw.config import RateLimit
from mdw.errors import ConfigError
from mdw.store import open_store
from mdw.store.budget import open_budget_store

_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from mdw.budget import SharedLimiter
    from mdw.config import RateLimit
    from mdw.store.budget import open_budget_store

    async def main(url, name, count):
        store = await open_budget_store(url)
        async with SharedLimiter(store, RateLimit(10, 0.4), name=name, owns_store=True) as lim:
            async def one():
                answered = await lim.start()
                print(repr(time.time()), flush=True)
                await asyncio.sleep(0.01)
                answered()
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


async def _migrate(url: str) -> None:
    store = await open_store(url)
    await store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def budget_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated warehouse of each backend (the budget table comes with the store's migrations)."""
    url = (f"sqlite:///{tmp_path / 'w.db'}" if request.param == "sqlite"
           else str(request.getfixturevalue("fresh_pg_url")))
    asyncio.run(_migrate(url))
    return url


async def _limiter(url: str, rate: RateLimit | str, name: str) -> SharedLimiter:
    store = await open_budget_store(url)
    assert store is not None
    return await SharedLimiter(store, rate, name=name, owns_store=True).open()


async def test_budget_never_exceeds_the_window_when_processes_share_it(budget_url: str) -> None:
    """Two limiters here and one in a child process, each request answered 10 ms after its start,
    never put 11 starts in one 0.4 s window."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    starts: list[float] = []
    limiters = [await _limiter(budget_url, RateLimit(10, 0.4), name) for _ in range(2)]
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, budget_url, name, "12", stdout=asyncio.subprocess.PIPE)

    async def request(lim: SharedLimiter) -> None:
        answered = await lim.start()
        starts.append(__import__("time").time())
        await asyncio.sleep(0.01)
        answered()

    try:
        await asyncio.gather(*(request(lim) for lim in limiters for _ in range(14)))
        out, _ = await child.communicate()
    finally:
        for lim in limiters:
            await lim.close()
    assert child.returncode == 0
    starts.extend(float(line) for line in out.decode().split())
    assert len(starts) == 28 + 12
    assert _max_in_window(starts, 0.4) <= 10
    assert max(starts) - min(starts) >= 3 * 0.4  # 40 starts at 10 per 0.4 s: the budget bound


async def test_budget_cuts_and_pauses_every_process_when_one_sees_a_429(budget_url: str) -> None:
    """A 429 with Retry-After seen by one limiter halves the shared rate and the other's next
    grant starts no earlier than the pause's end (both on the budget's own clock)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    a = await _limiter(budget_url, "100/s", name)
    b = await _limiter(budget_url, "100/s", name)
    try:
        await b.acquire()
        await a.on_rate_limited(0.3)
        await b.acquire()
        assert b.stats.last_grant_at >= a.stats.last_cut_at + 0.3
        assert b.current_rate.requests == pytest.approx(50.0)
        await b.on_rate_limited(None)  # within the cut interval: the same congestion signal
        assert b.current_rate.requests == pytest.approx(50.0)
    finally:
        await a.close()
        await b.close()


async def test_budget_refuses_a_process_when_its_rate_differs_from_the_active_one(budget_url: str) -> None:
    """A second process with another MDW_RATE_LIMIT is refused while the first uses the key."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    first = await _limiter(budget_url, "60/min", name)
    try:
        await first.acquire()
        store = await open_budget_store(budget_url)
        assert store is not None
        with pytest.raises(ConfigError, match="rate limit mismatch"):
            await SharedLimiter(store, "120/min", name=name).open()
        await store.close()
    finally:
        await first.close()


async def test_budget_takes_a_new_rate_when_the_previous_process_closed(budget_url: str) -> None:
    """Back-to-back runs with different rates: the second starts at once and still counts the
    first run's requests that are inside the window."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    first = await _limiter(budget_url, "2/10s", name)
    await first.acquire()
    await first.acquire()
    await first.close()
    second = await _limiter(budget_url, "3/10s", name)
    try:
        res = await second._reserve(5, [], 0)  # the grants of one reservation
        assert len(res.grants) == 1  # 3 per window, 2 of them still held by the first run
    finally:
        await second.close()


async def test_budget_refuses_then_takes_over_a_new_rate_when_the_old_holder_stays_idle(
    budget_url: str,
) -> None:
    """A holder with another rate blocks a newcomer until it has been idle for ``idle_s``; after the
    takeover the idle holder's next request fails loudly instead of pacing by its old plan."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    first = await _limiter(budget_url, "60/min", name)
    # A grant whose answer is never reported: no deferred flush touches the holder's entry later, so
    # "idle" below is exactly the time since this grant, however slowly a loaded host runs the test.
    await first.start()
    stores = [await open_budget_store(budget_url) for _ in range(2)]
    assert stores[0] is not None and stores[1] is not None
    try:
        with pytest.raises(ConfigError, match="rate limit mismatch"):
            await SharedLimiter(stores[0], "120/min", name=name, idle_s=600).open()
        await asyncio.sleep(0.1)
        newcomer = await SharedLimiter(stores[1], "120/min", name=name, idle_s=0.05).open()
        await newcomer.acquire()
        with pytest.raises(ConfigError, match="rate limit mismatch"):
            await first.acquire()
        await newcomer.close()
    finally:
        await first.close()
        for store in stores:
            await store.close()


async def test_budget_serves_many_acquirers_per_transaction_when_they_queue(budget_url: str) -> None:
    """Sixty-four concurrent acquirers cost far fewer than one transaction each."""
    lim = await _limiter(budget_url, "1000/s", f"t-{uuid.uuid4().hex[:8]}")
    try:
        trips = lim.stats.round_trips
        await asyncio.gather(*(lim.acquire() for _ in range(64)))
        assert lim.stats.grants == 64
        assert lim.stats.round_trips - trips <= 64 // 4
    finally:
        await lim.close()


async def test_budget_keeps_a_timed_out_slot_counted_until_the_late_bound_when_reported(
        budget_url: str) -> None:
    """answered(late_s) reaches the shared row: the slot's bound is the report time plus late_s (on
    the database's clock), while a plain answer's bound is its report time."""
    lim = await _limiter(budget_url, RateLimit(5, 1.0), f"t-{uuid.uuid4().hex[:8]}")
    try:
        timed_out = await lim.start()
        answered = await lim.start()
        timed_out(30.0)
        timed_out()
        answered()
        await lim.close()  # reports outstanding answers to the row
        lim = await _limiter(budget_url, RateLimit(5, 1.0), lim.name)
        state, now = await lim._update(lambda st, now: (st, (st, now)))
    finally:
        await lim.close()
    bounds = sorted(float(slot[1]) for slot in state["slots"])
    assert len(bounds) == 2
    assert bounds[0] <= now  # the plain answer: counted up to its report
    assert bounds[1] > now  # the timed-out one: still counted, up to its report + 30 s
    assert bounds[1] - bounds[0] == pytest.approx(30.0, abs=1.0)


def test_budget_enforced_rate_splits_a_large_plan_into_stricter_subwindows() -> None:
    """A plan above the log size becomes N/k per P/k, which can never exceed N per P."""
    big = RateLimit(6000, 60)
    sub = enforced_rate(big)
    assert sub.requests <= MAX_LOG
    k = big.period / sub.period
    assert math.isclose(k, round(k)) and sub.requests * round(k) <= big.requests
    assert enforced_rate(RateLimit(5, 60)) == RateLimit(5, 60)


def test_budget_name_is_a_digest_of_the_key_alone() -> None:
    """The row is named by a digest of the key (never the key), whatever URL spells the vendor."""
    name = budget_name("secret-key-123")
    assert "secret" not in name and name == budget_name("secret-key-123") != budget_name("other-key")
