"""``mdw status --runs`` after a ``kill -9``: the killed run is ``interrupted``."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

from .conftest import cli_env, mdw, start_mdw

ARGS = ["backfill", "-s", "AAPL,MSFT,X:BTCUSD", "-t", "15m", "--start", "2024-01-02", "--end", "2024-03-29"]


async def test_cli_status_runs_shows_interrupted_when_run_was_killed(
    db_url: str, sim_factory: Any
) -> None:
    """A run killed with SIGKILL is listed ``interrupted`` (and saved so), not ``running`` forever."""
    sim = await sim_factory(keys={"k": "unlimited"}, latency_ms=20)
    env = cli_env(sim, db_url, MDW_RATE_LIMIT="20/s", MDW_MAX_IN_FLIGHT="2")
    run = await start_mdw(*ARGS, env=env)
    await asyncio.wait_for(run.planned.wait(), 60)
    await asyncio.sleep(0.2)
    await run.signal(signal.SIGKILL)
    assert (await run.finish()).code == -signal.SIGKILL
    for _ in range(2):  # the second look reads back what the first one saved
        shown = await mdw("status", "--runs", "--json", env=env)
        assert shown.code == 0, shown.stderr
        [row] = json.loads(shown.stdout)
        assert row["status"] == "interrupted" and row["finished_at_ms"] >= row["started_at_ms"]
