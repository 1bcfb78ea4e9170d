"""``mdw status --runs`` after a ``kill -9``, and ``mdw backfill --refetch`` (with ``--dry-run``)."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

from mdw.simulator import SimServer

from .conftest import cli_env, mdw, start_mdw

ARGS = ["backfill", "-s", "AAPL,MSFT,X:BTCUSD", "-t", "15m", "--start", "2024-01-02", "--end", "2024-03-29"]


async def test_cli_status_runs_shows_interrupted_when_run_was_killed(
    db_url: str, sim_factory: Any
) -> None:
    """A run killed with SIGKILL is listed ``interrupted`` (and saved so), not ``running`` forever."""
    sim = await sim_factory(keys={"k": "unlimited"}, latency_ms=500)  # still running at the kill, 0.2 s in
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


async def test_cli_refetch_plans_and_fetches_the_whole_range_when_it_is_stored(
    sqlite_url: str, sim: SimServer, tmp_path: Path
) -> None:
    """``--dry-run --refetch`` shows the full count; ``--refetch`` makes it and changes no bar."""
    env = cli_env(sim, sqlite_url)
    args = ["backfill", "-s", "AAPL,SPY", "-t", "1h,1d", "--start", "2024-03-04", "--end", "2024-03-15"]
    first = await mdw(*args, "--report", str(tmp_path / "first.json"), env=env)
    assert first.code == 0, first.stderr
    planned = json.loads((tmp_path / "first.json").read_text())["planned_requests"]
    nothing = await mdw(*args, "--dry-run", "--report", str(tmp_path / "dry.json"), env=env)
    assert nothing.code == 0 and json.loads((tmp_path / "dry.json").read_text())["requests"] == 0
    dry = await mdw(*args, "--dry-run", "--refetch", "--report", str(tmp_path / "dry.json"), env=env)
    assert dry.code == 0 and json.loads((tmp_path / "dry.json").read_text())["requests"] == planned > 0
    again = await mdw(*args, "--refetch", "--report", str(tmp_path / "again.json"), env=env)
    assert again.code == 0, again.stderr
    report = json.loads((tmp_path / "again.json").read_text())
    assert report["requests"] == planned
    assert (report["bars_inserted"], report["bars_updated"]) == (0, 0)
    assert report["bars_unchanged"] == report["bars_fetched"] > 0
