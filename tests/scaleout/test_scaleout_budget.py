"""Four busy `mdw worker` processes share one plan: the simulator's own window counter is the judge.

The plan is 60/min scaled down to 10 per 2 s so it binds within seconds. Minute bars at no latency
keep every worker's CPU busy decoding and writing, which is when a grant and the vendor's arrival
stamp drift apart (#22: 81 arrivals in a 60 s window and 21 429s before arrivals were counted).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from scaleout_fleet import Fleet, SimThread, read_report

from mdw.domain import Timeframe
from mdw.simulator.config import SimConfig
from mdw.simulator.names import REAL_STOCKS

pytestmark = pytest.mark.postgres

PLAN = "10/2s"
LIMIT = 10
WORKERS = 4


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    thread = SimThread(SimConfig(seed=7, keys={"test-key": "unlimited"}, rate_limit=PLAN))
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def fleet(module_pg_url: str, sim: SimThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    logdir = tmp_path_factory.mktemp("workers")
    f = Fleet(module_pg_url, sim, PLAN, logdir, "--concurrency", "2", "--heartbeat", "0.5",
              "--tick-cron", "")
    try:
        for i in range(WORKERS):
            f.start(f"b{i}")
        f.wait_registered(WORKERS, timeout=60)
        yield f
    finally:
        f.stop()


def test_budget_holds_the_plan_window_when_four_busy_workers_share_a_key(
    fleet: Fleet, sim: SimThread, tmp_path: Path
) -> None:
    """Four workers on minute bars (one request per ticker, 32 in all): at most 10 arrivals in any
    2 s window at the vendor, no 429."""
    symbols = REAL_STOCKS[:32]
    lo, hi = (int(datetime(2024, 3, d, tzinfo=UTC).timestamp() * 1000) for d in (4, 6))
    for symbol in symbols:  # warm the simulator's market: a cold ticker stalls its loop, bunching stamps
        sim.run(lambda symbol=symbol: sim.server.market.aggregates(symbol, Timeframe.parse("1m"), lo, hi))
    tickers = ",".join(symbols)
    report_path = tmp_path / "report.json"
    done = fleet.run_cli("backfill", "--distributed", "-s", tickers, "-t", "1m", "--start", "2024-03-04",
                         "--end", "2024-03-05", "--no-grouped", "--report", str(report_path), timeout=180)
    assert done.returncode == 0, done.stderr + done.stdout
    report = read_report(report_path)
    assert report["status"] == "ok" and report["requests"] == report["planned_requests"] >= 3 * LIMIT
    workers = {row[0] for row in fleet.sql("SELECT DISTINCT worker FROM mdw_job_results")}
    assert len(workers) == WORKERS  # every worker took part
    stats = sim.stats()
    assert stats["rate_limited"] == 0, stats
    assert stats["max_requests_plan_window_by_key"][sim.server.key] <= LIMIT, stats
    assert report["rate_limited"] == 0
