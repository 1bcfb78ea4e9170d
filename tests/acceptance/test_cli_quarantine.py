"""``mdw quarantine`` as a subprocess: the bars a backfill refused, as JSON and as a table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mdw.simulator import FaultConfig, SimServer

from .conftest import cli_env, mdw


async def test_cli_quarantine_shows_the_invalid_bars_a_backfill_refused(
    sim: SimServer, sqlite_url: str, opened: Any, tmp_path: Path
) -> None:
    """The run exits 1 and counts its quarantine; the command lists those bars, filtered and limited."""
    sim.set_faults(FaultConfig(invalid_bar_rate=0.05))
    env = cli_env(sim, sqlite_url)
    report_file = tmp_path / "report.json"
    ran = await mdw("backfill", "-s", "AAPL,MSFT", "-t", "1h", "--start", "2024-03-04", "--end", "2024-03-08",
                    "--report", str(report_file), env=env)
    report = json.loads(report_file.read_text())
    assert ran.code == 1 and report["quarantined"] > 0, ran.stderr
    listed = await mdw("quarantine", "--json", "--limit", "100000", env=env)
    entries = json.loads(listed.stdout)
    assert listed.code == 0 and len(entries) == report["quarantined"]
    stored = await (await opened(sqlite_url)).quarantine.recent()
    assert [(e["ticker"], e["t"], e["h"], e["l"]) for e in entries] == [
        (q.ticker, q.t, q.h, q.l) for q in stored]
    assert all(e["h"] < e["l"] and e["reason"] == "high is below low" and e["run_id"] == report["run_id"]
               and sim.key not in e["url"] for e in entries)
    ticker = entries[0]["ticker"]
    one = await mdw("quarantine", "--symbols", ticker, "--limit", "1", "--json", env=env)
    assert one.code == 0 and [e["ticker"] for e in json.loads(one.stdout)] == [ticker]
    table = await mdw("quarantine", "-s", ticker, env=env)
    assert table.code == 0 and "high is below low" in table.stdout and report["run_id"] in table.stdout
    empty = await mdw("quarantine", "-s", "X:ETHUSD", env=env)
    assert empty.code == 0 and empty.stdout.strip() == "no quarantined bars"


async def test_cli_quarantine_refuses_a_bad_flag_with_one_line(sqlite_url: str, tmp_path: Path) -> None:
    """A zero limit or a malformed ticker exits 2 with one line, before any database is created."""
    env = cli_env(None, sqlite_url)
    for args in (["--limit", "0"], ["--symbols", "A A"]):
        result = await mdw("quarantine", *args, env=env)
        assert result.code == 2 and len(result.stderr_lines) == 1, (args, result.stderr)
        assert result.stderr_lines[0].startswith("mdw: error:")
    assert not (tmp_path / "cli.db").exists()
