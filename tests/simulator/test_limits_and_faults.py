"""The rate limiter never serves more than N per window; every fault type appears at its rate."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from mdw.config import RateLimit
from mdw.domain import BarBatch, Timeframe
from mdw.simulator import FaultConfig, SimServer
from mdw.simulator.faults import FaultInjector
from mdw.simulator.limiter import RateLimiter
from mdw.simulator.testing import SimFactory

N = 600  # requests in the fault-rate test


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("window", ["sliding", "fixed"])
def test_rate_limiter_never_serves_more_than_n_when_requests_keep_coming(window: str) -> None:
    """Over 10 simulated minutes of a request every 0.7 s, no window holds more than N served ones."""
    clock = FakeClock()
    limiter = RateLimiter(window, clock)
    rate = RateLimit.parse("5/min")
    served: list[float] = []
    for _ in range(860):
        if limiter.acquire("k", rate) is None:
            served.append(clock.now)
        clock.now += 0.7
    if window == "sliding":
        assert max(sum(1 for s in served if t - 60 < s <= t) for t in served) == 5
    else:
        minutes = [int(s // 60) for s in served]
        assert max(minutes.count(m) for m in set(minutes)) == 5
    assert len(served) >= 5 * 9  # and it does serve up to the limit every minute


def test_rate_limiter_reports_the_wait_when_a_request_is_refused() -> None:
    """The returned wait is when the oldest request leaves the sliding window."""
    clock = FakeClock()
    limiter = RateLimiter("sliding", clock)
    rate = RateLimit.parse("2/min")
    assert limiter.acquire("k", rate) is None
    clock.now += 10
    assert limiter.acquire("k", rate) is None
    assert limiter.acquire("k", rate) == pytest.approx(50.0)
    assert limiter.acquire("other", rate) is None  # keys are independent


def test_fault_draws_are_reproducible_when_the_seed_is_the_same() -> None:
    """The same seed gives the same fault sequence; a different seed a different one."""
    cfg = FaultConfig(error_rate=0.2, reset_rate=0.1, truncate_rate=0.1)
    a = [FaultInjector(5, cfg).draw() for _ in range(1)]
    seq = lambda seed: [inj.draw() for inj in [FaultInjector(seed, cfg)] for _ in range(300)]  # noqa: E731
    assert seq(5) == seq(5) and seq(5) != seq(6) and len(a) == 1


def test_fault_invalid_bars_appear_at_their_rate_when_corrupting_a_page() -> None:
    """About invalid_bar_rate of the bars get h < l, which BarBatch.problems() catches."""
    n = 20_000
    batch = BarBatch(
        "AAPL",
        Timeframe(1, "m"),
        t=[i * 60_000 for i in range(n)],
        o=[10.0] * n,
        h=[11.0] * n,
        l=[9.0] * n,
        c=[10.5] * n,
        v=[100.0] * n,
        vw=[10.2] * n,
        n=[3] * n,
    )
    corrupted, count = FaultInjector(1, FaultConfig(invalid_bar_rate=0.05)).corrupt(batch)
    problems = corrupted.problems()
    assert count == len(problems) and all(p.reason == "high is below low" for p in problems)
    assert 0.04 * n < count < 0.06 * n


async def _hit(host: str, port: int, path: str, gate: asyncio.Semaphore, wait: float = 1.0) -> str:
    """One raw HTTP request on its own connection (HTTP clients retry resets silently)."""
    async with gate:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            raw = await asyncio.wait_for(reader.read(), timeout=wait)
            writer.close()
        except TimeoutError:
            writer.close()
            return "hang"
        except ConnectionError:
            return "reset"
    if not raw:
        return "reset"
    head, _, body = raw.partition(b"\r\n\r\n")
    if int(head.split()[1]) >= 500:
        return "error"
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return "truncate"
    return "status_error" if data.get("status") == "ERROR" else "ok"


async def test_faults_appear_at_their_configured_rates_when_requests_are_many(
    sim_factory: SimFactory,
) -> None:
    """600 requests: each fault type is seen (by the client and in /_sim/stats) at about its rate."""
    faults = FaultConfig(
        error_rate=0.10,
        reset_rate=0.05,
        hang_rate=0.03,
        hang_s=20.0,  # far beyond the client's 8 s wait: a slow answer on a loaded host is not a hang
        truncate_rate=0.05,
        status_error_rate=0.07,
    )
    sim: SimServer = await sim_factory(seed=3, faults=faults)
    path = f"/v2/aggs/ticker/AAPL/range/1/day/2024-01-02/2024-01-12?apiKey={sim.key}"
    gate = asyncio.Semaphore(100)
    sim.set_faults(FaultConfig())
    assert (
        await _hit(sim.host, sim.port, path, gate, wait=30.0) == "ok"
    )  # warm the caches so no reply is slow
    sim.set_faults(faults)
    sim.reset_stats()
    seen = await asyncio.gather(*(_hit(sim.host, sim.port, path, gate, wait=8.0) for _ in range(N)))
    counts = {kind: seen.count(kind) for kind in ("error", "reset", "hang", "truncate", "status_error")}
    served = sim.stats()["faults"]
    for kind, rate in (
        ("error", 0.10),
        ("reset", 0.05),
        ("hang", 0.03),
        ("truncate", 0.05),
        ("status_error", 0.07),
    ):
        assert served[kind] == counts[kind], kind
        assert abs(counts[kind] - rate * N) < 4 * (rate * N) ** 0.5 + 3, (kind, counts[kind])
    assert seen.count("ok") == N - sum(counts.values())


async def test_faults_latency_delays_every_request_when_configured(sim_factory: SimFactory) -> None:
    """A fixed latency (the server's plus the fault's) is held before each answer, and counted."""
    sim = await sim_factory(latency_ms=80.0, faults=FaultConfig(latency_ms=20.0))
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.get(f"{sim.base_url}/v1/marketstatus/now?apiKey={sim.key}") as r:
                assert r.status == 200
    assert sim.stats()["delayed_s"] == pytest.approx(3 * 0.1)


async def test_faults_outage_window_fails_every_request_when_it_is_open(sim_factory: SimFactory) -> None:
    """An outage window that has started fails every request, with a 5xx, counted as an outage."""
    sim = await sim_factory(faults=FaultConfig(outage_start_s=0.0, outage_duration_s=600.0))
    url = f"{sim.base_url}/v1/marketstatus/now?apiKey={sim.key}"
    async with aiohttp.ClientSession() as http:
        during = [(await http.get(url)).status for _ in range(5)]
        sim.set_faults(FaultConfig())
        after = (await http.get(url)).status
    assert all(s in (500, 502, 503, 504) for s in during) and after == 200
    assert sim.stats()["faults"]["outage"] == 5


def test_faults_outage_window_opens_and_closes_on_the_injected_clock() -> None:
    """The window is [start, start + duration) seconds after the faults were set, on the injector's clock."""
    now = [100.0]
    faults = FaultInjector(7, FaultConfig(outage_start_s=2.0, outage_duration_s=3.0), clock=lambda: now[0])
    seen = []
    for t in (100.0, 101.9, 102.0, 104.9, 105.0, 200.0):
        now[0] = t
        seen.append(faults.in_outage())
    assert seen == [False, False, True, True, False, False]
    faults.set(FaultConfig(outage_start_s=0.0, outage_duration_s=1.0))  # a new window starts at 200 s
    assert faults.in_outage()
    now[0] = 201.0
    assert not faults.in_outage()
