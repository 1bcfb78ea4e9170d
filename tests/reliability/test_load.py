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
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from mdw.backfill import BackfillSpec, run_backfill
from mdw.polygon import Pacing, PolygonClient
from mdw.service.auth import new_key
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


async def _httpx_phase(
    http: httpx.AsyncClient, base: str, seconds: float
) -> tuple[list[float], Counter[str]]:
    """CLIENTS loops of bar reads through one shared httpx pool for ``seconds``."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    stop_at = time.monotonic() + seconds

    async def client(i: int) -> None:
        rnd = random.Random(i)
        while time.monotonic() < stop_at:
            tk = rnd.choice(SEEDED.tickers).symbol
            day = rnd.randint(2, 20)
            path = f"/v1/bars/{tk}?timeframe=1h&start=2024-01-{day:02d}&end=2024-02-{day:02d}&limit=500"
            started = time.perf_counter()
            try:
                resp = await http.get(base + path)
                if resp.status_code != 200 or not resp.json()["bars"]:
                    errors[f"HTTP {resp.status_code}"] += 1
                    continue
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                continue
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    return sorted(latencies), errors


def _p99(values: list[float]) -> float:
    return 1000 * values[min(len(values) - 1, int(len(values) * 0.99))]


@pytest.mark.slow
async def test_httpx_clients_reusing_pooled_connections_see_no_errors_while_serve_backfills(
    sim_factory: Any, tmp_path: Path
) -> None:
    """Fifty clients sharing one httpx pool (idle connections kept up to its 5 s expiry) read bars for
    30 s, then for 30 s while ``mdw serve`` runs a backfill: no ReadError, because the server keeps an
    idle connection 75 s (MDW_KEEP_ALIVE_S), longer than any pooled client does; p99s printed."""
    sim = await sim_factory(keys={"k": "unlimited"}, n_stocks=30, latency_ms=30)
    url = f"sqlite:///{tmp_path / 'load.db'}"
    async with await open_store(url) as store, \
            PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as c:
        await run_backfill(store, c, SEEDED)
        admin, record = new_key("admin", "load", 0)
        await store.keys.add(record)
    port = _free_port()
    env = cli_env(sim.base_url, sim.key, url, MDW_PORT=str(port), MDW_SCHEDULER="false",
                  MDW_LOG_LEVEL="WARNING")
    server = await asyncio.create_subprocess_exec(MDW, "serve", env=env, stdout=asyncio.subprocess.DEVNULL,
                                                  stderr=asyncio.subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=60) as http:  # httpx's default pool
            for _ in range(600):
                try:
                    if (await http.get(f"{base}/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            quiet, quiet_errors = await _httpx_phase(http, base, 30.0)
            body = {"symbols": [t.symbol for t in WRITING.tickers], "timeframes": ["5m", "1h"],
                    "start": "2023-06-01", "end": "2024-02-29"}
            resp = await http.post(f"{base}/v1/backfills", json=body, headers={"X-API-Key": admin})
            assert resp.status_code == 202, resp.text
            busy, busy_errors = await _httpx_phase(http, base, 30.0)
            run = (await http.get(f"{base}/v1/backfills/{resp.json()['run_id']}")).json()
    finally:
        server.terminate()
        await server.wait()
    print(f"\n[httpx {CLIENTS} clients, one pool] quiet: {len(quiet)} answered, errors {dict(quiet_errors)}, "
          f"p50 {1000 * statistics.median(quiet):.0f} ms, p99 {_p99(quiet):.0f} ms | during the backfill "
          f"({run['status']}, {run.get('progress', {}).get('bars')} bars so far): {len(busy)} answered, "
          f"errors {dict(busy_errors)}, p50 {1000 * statistics.median(busy):.0f} ms, p99 {_p99(busy):.0f} ms "
          f"({_p99(busy) / _p99(quiet):.2f}x)")
    assert not quiet_errors and not busy_errors, (quiet_errors, busy_errors)
