"""``mdw status`` names the plan's history boundary and the wanted days before it (#15)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

from mdw.simulator.testing import SimFactory

from .conftest import cli_env, mdw


async def test_status_shows_the_free_plans_boundary_and_the_days_before_it_outside_plan(
    sim_factory: SimFactory, tmp_path: Path,
) -> None:
    """A free key asked for four years: status says where the history starts (configured) and the
    earlier days are outside_plan, not gaps."""
    sim = await sim_factory(keys={"free": "free"}, rate_limit="unlimited")
    env = cli_env(sim, f"sqlite:///{tmp_path / 'cli.db'}", POLYGON_API_KEY="free", MDW_PLAN="free")
    start = (date.today() - timedelta(days=4 * 365)).isoformat()
    run = await mdw("backfill", "--symbols", "AAPL", "--timeframes", "1d", "--start", start, env=env)
    assert run.code == 0, run.stderr
    status = await mdw("status", "--json", env=env)
    assert status.code == 0, status.stderr
    [row] = json.loads(status.stdout)
    history = row["plan_history"]
    assert history["source"] == "configured" and history["plan"].startswith("history=2y,")
    first = date.fromisoformat(history["first_day"])
    assert 729 <= (date.today() - first).days <= 732
    assert row["outside_plan"] == f"{start}..{(first - timedelta(days=1)).isoformat()}"
    assert row["gaps"] == 0
    text = await mdw("status", env=env)
    assert text.code == 0
    assert f"history from {first.isoformat()} (configured)" in text.stdout
    assert f"AAPL 1d: {row['outside_plan']} outside_plan" in text.stdout
