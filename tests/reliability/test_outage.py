"""Vendor outage mid-run: the breaker opens, probes once per cool-down, the run waits it out and completes,
while ``mdw serve`` keeps answering reads from the store, flagged stale.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mdw.config import load_settings
from mdw.polygon import BreakerPolicy, BreakerState, PolygonClient
from mdw.service.app import create_app
from mdw.service.auth import new_key
from mdw.simulator import FaultConfig, SimConfig, start_simulator
from mdw.store import open_store

from .conftest import assert_exact, duplicate_bars, spec_of
from .serving import serve

SERVED = spec_of("AAPL", "1h", "2024-01-02", "2024-01-31", grouped_daily=False)
# one request per (ticker, timeframe, month): many small requests so the outage lands mid-run
SPEC = spec_of("MSFT,X:BTCUSD", "1h,1d", "2023-01-02", "2023-12-29", grouped_daily=False)


async def _outage_case(outage_s: float, cooldown_s: float, tmp_path: Path) -> dict[str, Any]:
    """Run a backfill through ``mdw serve`` while the vendor goes down for ``outage_s``; poll reads."""
    url = f"sqlite:///{tmp_path / 'outage.db'}"
    config = SimConfig(seed=5, latency_ms=40, n_stocks=30)
    async with start_simulator(config) as sim:
        settings = load_settings(None, database_url=url, polygon_api_key=sim.key,
                                 polygon_base_url=sim.base_url, rate_limit="unlimited", scheduler=False,
                                 max_in_flight=2, retry_attempts=8,
                                 breaker_threshold=3, breaker_cooldown_s=cooldown_s,
                                 breaker_cooldown_cap_s=cooldown_s, request_timeout_s=5.0)
        store = await open_store(url)
        client = PolygonClient.from_settings(settings, page_limit=50_000)
        admin, record = new_key("admin", "reliability", 0)
        await store.keys.add(record)
        async with client, serve(create_app(settings, store=store, client=client)) as base, \
                aiohttp.ClientSession() as http:
            run = await _post(http, base, admin, SERVED)
            await _wait_run(http, base, run)
            sim.reset_stats()
            run = await _post(http, base, admin, SPEC)
            while sim.stats()["requests"] < 6:
                await asyncio.sleep(0.02)
            sim.set_faults(FaultConfig(outage_start_s=0.0, outage_duration_s=outage_s))
            started = time.monotonic()
            reads = await _poll_reads(http, base, sim, started, outage_s, run)
            record_ = await _wait_run(http, base, run)
            stats = sim.stats()
            moves = [(str(f), str(t), at) for at, f, t in client.stats().breaker_transitions]
            await assert_exact(store, sim, SPEC)
            await assert_exact(store, sim, SERVED)
        await store.close()
    assert await duplicate_bars(url) == 0
    return {"run": record_, "reads": reads, "stats": stats, "moves": moves, "client": client}


async def _post(http: aiohttp.ClientSession, base: str, admin: str, spec: Any) -> str:
    body = {"symbols": [t.symbol for t in spec.tickers], "timeframes": [str(t) for t in spec.timeframes],
            "start": str(spec.start), "end": str(spec.end)}
    async with http.post(f"{base}/v1/backfills", json=body, headers={"X-API-Key": admin}) as resp:
        assert resp.status == 202, await resp.text()
        return str((await resp.json())["run_id"])


async def _wait_run(http: aiohttp.ClientSession, base: str, run_id: str) -> dict[str, Any]:
    while True:
        async with http.get(f"{base}/v1/backfills/{run_id}") as resp:
            run = await resp.json()
        if run["status"] not in ("running", "queued"):
            return dict(run)
        await asyncio.sleep(0.1)


async def _poll_reads(http: aiohttp.ClientSession, base: str, sim: Any, started: float, outage_s: float,
                      run_id: str) -> list[tuple[float, int, str, int]]:
    """GET the stored series every 100 ms during the outage and a little after it."""
    reads: list[tuple[float, int, str, int]] = []
    path = f"{base}/v1/bars/AAPL?timeframe=1h&start=2024-01-02&end=2024-01-31&limit=50000"
    while time.monotonic() - started < outage_s + 0.5:
        async with http.get(path) as resp:
            body = await resp.json()
            reads.append((time.monotonic() - started, resp.status, resp.headers.get("X-Stale", ""),
                          len(body.get("bars", body.get("results", [])))))
        await asyncio.sleep(0.1)
    return reads


def _check(result: dict[str, Any], outage_s: float, cooldown_s: float) -> None:
    run, reads, stats, moves = result["run"], result["reads"], result["stats"], result["moves"]
    outage_requests = stats["faults"].get("outage", 0)
    opened = [m for m in moves if m[1] == "open"]
    probes = [m for m in moves if m[1] == "half_open"]
    print(f"\n[outage {outage_s:g}s cooldown {cooldown_s:g}s] run={run['status']} "
          f"requests={stats['requests']} "
          f"failed-during-outage={outage_requests} breaker-opens={len(opened)} probes={len(probes)} "
          f"reads={len(reads)} stale-reads={sum(1 for r in reads if r[2] == 'true')}")
    assert run["status"] == "ok", run
    assert opened, "the breaker never opened"
    # at most one half-open spell per cool-down, and nothing else reaches the vendor while the
    # circuit is open: the 3 failures that open it (2 more may already be in flight), then only the
    # probes (up to BreakerPolicy.probes a spell, one at a time)
    assert len(probes) <= outage_s / cooldown_s + 1, probes
    assert outage_requests <= 3 + 2 + BreakerPolicy().probes * len(probes), outage_requests
    assert moves[-1][1] == str(BreakerState.CLOSED)
    assert all(status == 200 for _, status, _, _ in reads)
    truth_len = {n for _, _, _, n in reads}
    assert len(truth_len) == 1 and truth_len.pop() > 0  # the stored series, whole, every time
    assert any(stale == "true" for _, _, stale, _ in reads), "reads during the outage were not flagged stale"


async def test_outage_breaker_opens_probes_and_run_completes_when_vendor_down_for_seconds(
    tmp_path: Path,
) -> None:
    """A 3 s outage: the breaker opens, probes once per 0.5 s cool-down, the run completes, reads go on."""
    result = await _outage_case(3.0, 0.5, tmp_path)
    _check(result, 3.0, 0.5)


@pytest.mark.slow
async def test_outage_breaker_opens_probes_and_run_completes_when_vendor_down_for_a_minute(
    tmp_path: Path,
) -> None:
    """A 60 s outage with a 5 s cool-down: the same guarantees over a minute of downtime."""
    result = await _outage_case(60.0, 5.0, tmp_path)
    _check(result, 60.0, 5.0)
