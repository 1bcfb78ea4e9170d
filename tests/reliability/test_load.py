"""Load: 50 concurrent API clients read bars for a while as a backfill writes; no errors, p50/p99 reported.

The service runs in a process of its own (``mdw serve``), as in production, so its event loop is
not shared with the 50 clients or the simulator.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mdw.backfill import BackfillSpec, run_backfill
from mdw.polygon import Pacing, PolygonClient
from mdw.simulator import SimServer
from mdw.store import open_store

from .conftest import MDW, assert_exact, cli_env, spec_of

CLIENTS = 50
SEEDED = spec_of("AAPL,MSFT,X:BTCUSD", "1h", "2024-01-02", "2024-02-29", grouped_daily=False)
WRITING = spec_of("NVDA,JPM,V,WMT,X:ETHUSD,X:SOLUSD", "5m,1h", "2023-06-01", "2024-02-29",
                  grouped_daily=False)
WRITING_QUICK = spec_of("NVDA,X:ETHUSD", "5m", "2024-01-02", "2024-02-29", grouped_daily=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load(sim: SimServer, tmp_path: Path, seconds: float, writing: BackfillSpec) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path / 'load.db'}"
    async with await open_store(url) as store, \
            PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as c:
        await run_backfill(store, c, SEEDED)
    port = _free_port()
    env = cli_env(sim.base_url, sim.key, url, MDW_PORT=str(port), MDW_SCHEDULER="false",
                  MDW_LOG_LEVEL="WARNING")
    server = await asyncio.create_subprocess_exec(MDW, "serve", env=env, stdout=asyncio.subprocess.DEVNULL,
                                                  stderr=asyncio.subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    errors: list[str] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as http:
            for _ in range(200):
                try:
                    async with http.get(f"{base}/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            writer = asyncio.create_task(_write(url, sim, writing))
            stop_at = time.monotonic() + seconds

            async def client(i: int) -> None:
                rnd = random.Random(i)
                while time.monotonic() < stop_at:
                    tk = rnd.choice(SEEDED.tickers).symbol
                    day = rnd.randint(2, 20)
                    path = (f"/v1/bars/{tk}?timeframe=1h&start=2024-01-{day:02d}"
                            f"&end=2024-02-{day:02d}&limit=500")
                    started = time.perf_counter()
                    try:
                        async with http.get(base + path) as resp:
                            body = await resp.json()
                            if resp.status != 200 or not body["bars"]:
                                errors.append(f"{resp.status} {path}")
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        errors.append(f"{type(exc).__name__} {path}")
                    latencies.append(time.perf_counter() - started)

            await asyncio.gather(*(client(i) for i in range(CLIENTS)))
            written = await writer
    finally:
        server.terminate()
        await server.wait()
    async with await open_store(url) as store:
        await assert_exact(store, sim, writing)
    latencies.sort()
    figures = {
        "requests": len(latencies), "errors": len(errors), "rps": len(latencies) / seconds,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max_ms": 1000 * latencies[-1], "bars_written": written,
    }
    print(f"\n[load {CLIENTS} clients x {seconds:g}s, backfill writing] " +
          " ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()))
    assert not errors, errors[:5]
    assert written > 0
    return figures


async def _write(url: str, sim: SimServer, writing: BackfillSpec) -> int:
    """The backfill that writes while the API is read (its own store connection, like a separate job)."""
    async with await open_store(url) as store, \
            PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited", 4)) as c:
        report = await run_backfill(store, c, writing)
    assert report.status == "ok"
    return report.bars_inserted


async def test_api_serves_50_clients_without_errors_while_backfill_writes_briefly(
    sim_factory: Any, tmp_path: Path
) -> None:
    """Fifty clients for a few seconds against ``mdw serve`` while a backfill writes: no errors."""
    sim = await sim_factory(keys={"k": "unlimited"}, n_stocks=30, latency_ms=30)
    await _load(sim, tmp_path, float(os.environ.get("MDW_LOAD_QUICK_S", "5")), WRITING_QUICK)


@pytest.mark.slow
async def test_api_serves_50_clients_without_errors_while_backfill_writes_for_a_minute(
    sim_factory: Any, tmp_path: Path
) -> None:
    """Fifty clients for 60 s against ``mdw serve`` while a backfill writes: no errors, p50/p99 printed."""
    sim = await sim_factory(keys={"k": "unlimited"}, n_stocks=30, latency_ms=400)
    await _load(sim, tmp_path, 60.0, WRITING)
