"""The distributed schedule: a periodic tick runs once per tick however many workers run."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from scaleout_fleet import Fleet, SimThread, wait_for

from mdw.simulator.config import SimConfig
from mdw.store import Dataset, SymbolInfo, open_store

pytestmark = pytest.mark.postgres


async def _track(db_url: str, ticker: str, asset: str, timeframes: tuple[str, ...], start: str) -> None:
    store = await open_store(db_url)
    try:
        await store.symbols.upsert(SymbolInfo(ticker, asset, timeframes=timeframes, start_date=start))
    finally:
        await store.close()


async def _covered_ms(db_url: str, ticker: str, timeframe: str) -> int:
    store = await open_store(db_url)
    try:
        return (await store.coverage(ticker, Dataset.BARS, timeframe)).total_ms
    finally:
        await store.close()


def test_periodic_tick_runs_once_per_tick_when_three_workers_run(module_pg_url: str, tmp_path: Path) -> None:
    """Three workers with a 2-second tick: every tick runs exactly once and keeps the series current."""
    start = (datetime.now(UTC) - timedelta(days=4)).date().isoformat()
    asyncio.run(_track(module_pg_url, "X:BTCUSD", "crypto", ("1d",), start))
    sim = SimThread(SimConfig(seed=42, keys={"test-key": "unlimited"}))
    fleet = Fleet(module_pg_url, sim, "unlimited", tmp_path, "--concurrency", "2", "--heartbeat", "0.5",
                  "--tick-cron", "* * * * * */2")
    try:
        for i in range(3):
            fleet.start(f"p{i}")
        fleet.wait_registered(3)
        wait_for(lambda: fleet.sql("SELECT count(*) FROM mdw_job_results WHERE kind = 'tick'")[0][0] >= 3,
                 30, "three ticks")
    finally:
        fleet.stop()
        sim.stop()
    per_tick = fleet.sql("SELECT args->>'timestamp', count(*) FROM procrastinate_jobs "
                         "WHERE task_name = 'mdw.tick' GROUP BY 1")
    assert len(per_tick) >= 3 and all(count == 1 for _, count in per_tick)
    ran = fleet.sql("SELECT run_id, count(*) FROM mdw_job_results WHERE kind = 'tick' GROUP BY 1")
    assert all(count == 1 for _, count in ran)
    # The first tick deferred the tracked series' gap; a worker filled it.
    assert asyncio.run(_covered_ms(module_pg_url, "X:BTCUSD", "1d")) >= 3 * 86_400_000
