"""One budget per key on the host: separate mdw processes on one SQLite warehouse share the plan.

The simulator enforces a short plan (10 requests per 2 s) so the budget binds within seconds, and
its own counter (``max_requests_plan_window_by_key``: arrivals in any window of the plan's
period, served or refused) is the judge, with its 429 count.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from mdw.simulator.names import REAL_STOCKS
from mdw.simulator.testing import SimFactory
from mdw.store import SymbolInfo, open_store

MDW = str(Path(sys.executable).with_name("mdw"))
PLAN = "10/2s"
LIMIT = 10

STOCKS = list(REAL_STOCKS[:30])


def _env(key: str, base_url: str, db_url: str) -> dict[str, str]:
    return {**os.environ, "POLYGON_API_KEY": key, "POLYGON_BASE_URL": base_url, "MDW_DATABASE_URL": db_url,
            "MDW_RATE_LIMIT": PLAN, "MDW_LOG_LEVEL": "WARNING"}


async def _backfill(env: dict[str, str], tickers: list[str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        MDW, "backfill", "-s", ",".join(tickers), "-t", "1d", "--start", "2024-03-04", "--end", "2024-03-06",
        "--no-grouped", env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    return proc.returncode or 0, err.decode(errors="replace")[-2000:]


async def _two_backfills(env: dict[str, str]) -> None:
    results = await asyncio.gather(_backfill(env, STOCKS[:15]), _backfill(env, STOCKS[15:]))
    assert all(code == 0 for code, _ in results), results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_budget_holds_the_plan_when_two_backfills_share_a_key(
    sim_factory: SimFactory, tmp_path: Path,
) -> None:
    """Two `mdw backfill` processes started together on one SQLite file: at most 10 arrivals in
    any 2 s window at the simulator, no 429."""
    sim = await sim_factory(seed=42, keys={"host-key": "unlimited"}, rate_limit=PLAN)
    env = _env(sim.key, sim.base_url, f"sqlite:///{tmp_path / 'w.db'}")
    await _two_backfills(env)
    stats = sim.stats()
    assert stats["requests_by_key"][sim.key] >= 30  # 2 x 15 windows: the plan binds
    assert stats["rate_limited"] == 0, stats
    assert stats["max_requests_plan_window_by_key"][sim.key] <= LIMIT, stats


async def test_budget_holds_the_plan_when_serve_runs_its_scheduler_beside_two_backfills(
    sim_factory: SimFactory, tmp_path: Path,
) -> None:
    """`mdw serve` updating tracked crypto series while two backfills run: one budget, no 429."""
    sim = await sim_factory(seed=42, keys={"host-key": "unlimited"}, rate_limit=PLAN)
    db_url = f"sqlite:///{tmp_path / 'w.db'}"
    store = await open_store(db_url)
    start = (datetime.now(UTC) - timedelta(days=40)).date().isoformat()
    try:
        for ticker in ("X:BTCUSD", "X:ETHUSD", "X:SOLUSD"):
            await store.symbols.upsert(SymbolInfo(ticker, "crypto", timeframes=("1m",), start_date=start))
    finally:
        await store.close()
    env = _env(sim.key, sim.base_url, db_url)
    port = _free_port()
    serve = await asyncio.create_subprocess_exec(MDW, "serve", "--port", str(port), env=env,
                                                 stdout=asyncio.subprocess.DEVNULL,
                                                 stderr=asyncio.subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):  # until the service answers (its scheduler starts with it)
                try:
                    async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                        if resp.status < 500:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        for _ in range(100):  # until the scheduler's update is sending requests
            if sim.stats()["requests"] > 0:
                break
            await asyncio.sleep(0.1)
        assert sim.stats()["requests"] > 0, "the scheduler sent nothing"
        await _two_backfills(env)
    finally:
        serve.send_signal(signal.SIGTERM)
        await serve.wait()
    stats = sim.stats()
    assert stats["requests_by_key"][sim.key] >= 30 + 3  # the scheduler's pages came on top
    assert stats["rate_limited"] == 0, stats
    assert stats["max_requests_plan_window_by_key"][sim.key] <= LIMIT, stats
