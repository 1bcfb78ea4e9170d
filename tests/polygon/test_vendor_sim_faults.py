"""The client against a misbehaving simulator: faults, 429 storms, outages, 4xx, and key hygiene."""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest

from mdw.domain import AssetClass, BarBatch, Timeframe, local_midnight_ms
from mdw.errors import (
    OutsidePlan,
    VendorAuthError,
    VendorError,
    VendorNotFound,
    VendorTransientError,
    VendorUnavailable,
)
from mdw.polygon import (
    BreakerPolicy,
    BreakerState,
    BreakerTransitionEvent,
    Pacing,
    PolygonClient,
    RetryEvent,
    RetryPolicy,
    Timeouts,
    VendorEvent,
)
from mdw.simulator import FaultConfig, SimConfig, start_simulator
from mdw.simulator.server import SimServer

TZ = AssetClass.STOCKS.tz
S_1H, E_1H = local_midnight_ms(date(2024, 3, 4), TZ), local_midnight_ms(date(2024, 3, 16), TZ)
H1 = Timeframe.parse("1h")
D1 = Timeframe.parse("1d")


def _client(sim: Any, key: str | None = None, pacing: Pacing = Pacing("unlimited"), **kw: Any
            ) -> PolygonClient:
    return PolygonClient(key or sim.key, sim.base_url, pacing=pacing, **kw)


@pytest.mark.parametrize(
    "fault",
    [{"error_rate": 0.3}, {"reset_rate": 0.3}, {"hang_rate": 0.2, "hang_s": 5.0}, {"truncate_rate": 0.3},
     {"status_error_rate": 0.3}, {"invalid_bar_rate": 0.002}],
    ids=["5xx", "reset", "hang", "truncate", "status-error", "invalid-bars"],
)
async def test_faults_are_recovered_and_result_exact_when_injected(fault: dict[str, float]) -> None:
    """Each injected fault type is retried away and the many-page result equals the ground truth."""
    config = SimConfig(seed=42, faults=FaultConfig(**fault))
    async with start_simulator(config, port=0) as sim, _client(
        sim, pacing=Pacing("unlimited", page_limit=1000), retry=RetryPolicy(attempts=12),
        breaker=BreakerPolicy(threshold=50), timeouts=Timeouts(request_s=0.3)
    ) as client:
        got = await client.aggregates("AAPL", H1, S_1H, E_1H)
        stats = client.stats()
        injected = sum(sim.stats()["faults"].values())
        truth = sim.market.aggregates("AAPL", H1, S_1H, E_1H)
    assert got.equals(truth)
    assert injected > 0 and stats.retries >= 1
    assert stats.total_requests == stats.pages + stats.retries
    assert sum(stats.failures_by_class.values()) == stats.retries
    assert stats.latency.count <= stats.total_requests


async def test_limiter_never_exceeds_the_vendor_window_when_set_to_its_limit() -> None:
    """With the limiter at the simulator's 10/s, 20 concurrent requests draw no 429 and no 1 s overrun."""
    config = SimConfig(seed=42, rate_limit="10/s", n_stocks=20)
    async with start_simulator(config, port=0) as sim, _client(sim, pacing=Pacing("10/s")) as client:
        days = [local_midnight_ms(date(2024, 1, 2), TZ) + i * 86_400_000 for i in range(20)]
        got = await asyncio.gather(*(client.aggregates("AAPL", D1, d, d + 3 * 86_400_000) for d in days))
        stats = sim.stats()
        truth = [sim.market.aggregates("AAPL", D1, d, d + 3 * 86_400_000) for d in days]
    assert all(g.equals(t) for g, t in zip(got, truth, strict=True))
    assert stats["requests"] == 20, stats
    assert stats["rate_limited"] == 0
    assert stats["max_requests_1s"] <= 10


@contextmanager
def _simulator_in_thread(config: SimConfig) -> Iterator[SimServer]:
    """A simulator on its own event loop in a thread, so a stall of its loop leaves the client's running."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: list[SimServer] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(SimServer(config, "127.0.0.1", 0).start())
        box.append(server)
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()

    thread = threading.Thread(target=run, name="simulator", daemon=True)
    thread.start()
    assert ready.wait(60), "the simulator did not start"
    try:
        yield box[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(60)


async def test_no_429_when_requests_time_out_at_a_stalled_vendor_and_are_counted_late() -> None:
    """The vendor's loop stalls 0.8 s on the first request (as a CPU-bound answer does): the five
    sent meanwhile wait unread, time out at the client (0.5 s), and are counted by the vendor when
    it reads them, after the client gave up. The limiter keeps each timed-out request counted until
    its give-up plus the request timeout, so the retries and the rest never overrun the vendor's
    6 per second (counting them at give-up put 7 in its window), and the data is exact."""
    config = SimConfig(seed=42, rate_limit="6/s", n_stocks=20)
    days = [local_midnight_ms(date(2024, 1, 2), TZ) + i * 86_400_000 for i in range(10)]
    with _simulator_in_thread(config) as sim:
        # The answers' data first (generating it is CPU work of its own), then the one stall.
        truth = [sim.market.aggregates("MSFT", D1, d, d + 2 * 86_400_000) for d in days]
        sim.set_faults(FaultConfig(stall_rate=1.0, stall_ms=800.0, stall_limit=1))
        async with _client(sim, pacing=Pacing("6/s"), timeouts=Timeouts(request_s=0.5),
                           retry=RetryPolicy(attempts=6, base_s=0.05, cap_s=0.2),
                           breaker=BreakerPolicy(threshold=100)) as client:
            got = await asyncio.gather(*(client.aggregates("MSFT", D1, d, d + 2 * 86_400_000) for d in days))
            stats = client.stats()
        sim_stats = sim.stats()
    assert all(g.equals(t) for g, t in zip(got, truth, strict=True))
    assert sim_stats["faults"] == {"stall": 1}, sim_stats["faults"]
    assert stats.failures_by_class.get("VendorTimeout", 0) >= 2, stats.failures_by_class  # counted late
    assert sim_stats["rate_limited"] == 0, sim_stats
    assert sim_stats["max_requests_plan_window_by_key"][sim.key] <= 6, sim_stats


@pytest.mark.parametrize("retry_after", [False, True], ids=["no-retry-after", "retry-after"])
async def test_429_storm_is_absorbed_when_limiter_starts_above_vendor_limit(retry_after: bool) -> None:
    """A limiter configured 4x too high meets 429s, cuts its rate, waits, and still returns exact data."""
    config = SimConfig(seed=42, rate_limit="10/s", retry_after=retry_after, n_stocks=20)
    events: list[VendorEvent] = []
    async with start_simulator(config, port=0) as sim, _client(
        sim, pacing=Pacing("40/s"), retry=RetryPolicy(attempts=10, base_s=0.05, cap_s=0.5),
        breaker=BreakerPolicy(threshold=100),
    ) as client:
        client.subscribe(events.append)
        days = [local_midnight_ms(date(2024, 1, 2), TZ) + i * 86_400_000 for i in range(16)]
        got = await asyncio.gather(*(client.aggregates("MSFT", D1, d, d + 2 * 86_400_000) for d in days))
        stats = client.stats()
        sim_stats = sim.stats()
        truth = [sim.market.aggregates("MSFT", D1, d, d + 2 * 86_400_000) for d in days]
    assert all(g.equals(t) for g, t in zip(got, truth, strict=True))
    assert stats.rate_limited_count == sim_stats["rate_limited"] > 0
    assert stats.limiter_rate < 40
    assert any(isinstance(e, RetryEvent) and e.error == "VendorRateLimited" for e in events)
    assert stats.breaker_state is BreakerState.CLOSED


async def test_breaker_opens_probes_once_per_cooldown_and_closes_when_vendor_returns() -> None:
    """During an outage the breaker opens, lets one probe per cool-down through, and closes on recovery."""
    config = SimConfig(seed=42, faults=FaultConfig(outage=True))
    events: list[VendorEvent] = []
    async with start_simulator(config, port=0) as sim, _client(
        sim, breaker=BreakerPolicy(threshold=3, cooldown_s=0.2, cooldown_cap_s=0.4, probes=1)
    ) as client:
        client.subscribe(events.append)
        fetch = [client.aggregates("AAPL", D1, S_1H, E_1H) for _ in range(8)]
        with pytest.raises(VendorUnavailable, match="circuit open"):
            await client.aggregates("AAPL", D1, S_1H, E_1H)
        assert sim.stats()["requests"] == 3 and client.breaker.state is BreakerState.OPEN
        results = await asyncio.gather(*fetch[:4], return_exceptions=True)
        assert all(isinstance(r, VendorUnavailable) for r in results)
        assert sim.stats()["requests"] == 3  # open: nothing reaches the vendor
        await asyncio.sleep(0.25)
        results = await asyncio.gather(*fetch[4:], return_exceptions=True)
        assert all(isinstance(r, VendorUnavailable) for r in results)
        assert sim.stats()["requests"] == 4  # exactly one probe, which failed
        assert client.breaker.cooldown_s == 0.4
        sim.set_faults(FaultConfig())
        await asyncio.sleep(0.2)
        with pytest.raises(VendorUnavailable):
            await client.aggregates("AAPL", D1, S_1H, E_1H)  # doubled cool-down not over yet
        await asyncio.sleep(0.25)
        got = await client.aggregates("AAPL", D1, S_1H, E_1H)
        assert got.equals(sim.market.aggregates("AAPL", D1, S_1H, E_1H))
        stats = client.stats()
    moves = [(f, t) for _, f, t in stats.breaker_transitions]
    o, h, c = BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED
    assert moves == [(c, o), (o, h), (h, o), (o, h), (h, c)]
    assert stats.breaker_transitions_total == 5
    assert [(e.from_state, e.to_state) for e in events if isinstance(e, BreakerTransitionEvent)] == moves
    assert stats.breaker_state is c and stats.failures_by_class["VendorUnavailable"] >= 9


@pytest.mark.parametrize(
    ("kind", "cls", "text"),
    [("bad-key", VendorAuthError, "unknown API key"), ("not-found", VendorNotFound, "not found"),
     ("plan", OutsidePlan, "outside_plan")],
)
async def test_4xx_is_not_retried_and_says_what_to_do(kind: str, cls: type[VendorError], text: str) -> None:
    """401, 404 and 403 raise their own class after exactly one request, with an actionable message."""
    config = SimConfig(seed=42, keys={"good-key-1": "unlimited", "free-key-22": "free"},
                       not_found_tickers=frozenset({"ZZZQ"}))
    key = {"bad-key": "wrong-key-333", "not-found": "good-key-1", "plan": "free-key-22"}[kind]
    ticker = "ZZZQ" if kind == "not-found" else "AAPL"
    async with start_simulator(config, port=0) as sim, _client(sim, key=key) as client:
        with pytest.raises(cls, match=text) as info:
            await client.aggregates(ticker, D1, local_midnight_ms(date(2010, 1, 4), TZ),
                                    local_midnight_ms(date(2010, 2, 1), TZ))
        assert sim.stats()["requests"] == 1
        assert client.stats().retries == 0
    assert not info.value.retryable and info.value.status in (401, 403, 404)
    assert key not in str(info.value)


async def test_max_in_flight_bounds_concurrent_requests_when_rate_is_unlimited() -> None:
    """Twelve requests through three slots never have more than three open at the vendor at once."""
    config = SimConfig(seed=42, latency_ms=100, n_stocks=20)
    async with start_simulator(config, port=0) as sim, _client(sim, pacing=Pacing("unlimited", 3)) as client:
        await asyncio.gather(*(client.aggregates("AAPL", D1, S_1H + i * 86_400_000, E_1H) for i in range(12)))
        stats = sim.stats()
    # Counted by the vendor as it answers, not timed: 100 ms each keeps the slots full, so all three
    # are used, and never a fourth.
    assert stats["requests"] == 12 and 2 <= stats["max_in_flight"] <= 3


def _all_text(exc: BaseException) -> str:
    parts = ["".join(traceback.format_exception(exc)), repr(exc)]
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen), str(getattr(seen, "url", "")), *getattr(seen, "__notes__", [])]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


async def test_key_never_appears_in_logs_or_errors_when_a_next_url_page_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failure on a follow-up page (and a bad key) leaves no trace of the key anywhere."""
    key, wrong = "sk-live-7f3a9c1e5b", "sk-live-WRONG-0d0d0d"
    config = SimConfig(seed=42, keys={key: "unlimited"})
    events: list[VendorEvent] = []
    caplog.set_level(logging.DEBUG)
    async with start_simulator(config, port=0) as sim, \
            _client(sim, key=key, pacing=Pacing("unlimited", page_limit=1000)) as client:
        client.subscribe(events.append)
        pages: list[BarBatch] = []
        # Five failures in a row exhaust the retries and, at the default threshold of five, open
        # the breaker: the caller sees VendorUnavailable chained from the last transient error.
        with pytest.raises(VendorUnavailable) as info:
            async for page in client.aggregate_pages("AAPL", H1, S_1H, E_1H):
                pages.append(page)
                sim.set_faults(FaultConfig(error_rate=1.0))
        assert isinstance(info.value.__cause__, VendorTransientError)
        assert len(pages) == 1
        assert "cursor=" in str(info.value.url)  # it was a next_url page that failed
        sim.set_faults(FaultConfig())
        async with _client(sim, key=wrong) as bad:
            with pytest.raises(VendorAuthError) as auth:
                await bad.aggregates("AAPL", H1, S_1H, E_1H)
    texts = [_all_text(info.value), _all_text(auth.value), caplog.text, repr(events),
             "\n".join(r.getMessage() for r in caplog.records)]
    assert caplog.records, "the retries must have been logged"
    for text in texts:
        assert key not in text and wrong not in text
