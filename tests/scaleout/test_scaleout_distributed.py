"""Three real `mdw worker` processes, one PostgreSQL, one simulator: exact data, one rate budget."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from scaleout_fleet import Fleet, SimThread, read_report, wait_for

from mdw.domain import BarBatch, Timeframe, parse_tickers, parse_timeframes, to_ms
from mdw.simulator.config import SimConfig
from mdw.store import open_store

pytestmark = pytest.mark.postgres

# The plan: the simulator enforces it, the workers share it. The margin absorbs the scheduling lag
# between a grant and the simulator's arrival stamp on a busy two-core test machine.
RATE = "5/s"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    thread = SimThread(SimConfig(seed=42, keys={"test-key": "unlimited"}, rate_limit=RATE))
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def fleet(module_pg_url: str, sim: SimThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    logdir = tmp_path_factory.mktemp("workers")
    f = Fleet(module_pg_url, sim, RATE, logdir, "--concurrency", "4", "--heartbeat", "0.5",
              "--stalled-after", "2", "--grace", "2", "--tick-cron", "", "--limiter-margin", "0.1")
    try:
        for i in range(3):
            f.start(f"w{i}")
        f.wait_registered(3)
        yield f
    finally:
        f.stop()


Truth = dict[tuple[str, str], tuple[int, int, BarBatch]]


def _truth(sim: SimThread, tickers: str, timeframes: str, start: str, end: str) -> Truth:
    """The simulator's bars for the spec, computed BEFORE the run.

    This also warms the simulator's market cache: a ticker's first request is generated on the
    simulator's event loop, which stalls it and stamps the requests queued behind it late, a
    server-side artefact that would look like a burst to its window counter.
    """
    from mdw.backfill.plan import BackfillSpec

    spec = BackfillSpec(tuple(parse_tickers(tickers)), tuple(parse_timeframes(timeframes)),
                        date.fromisoformat(start), date.fromisoformat(end))
    out: Truth = {}
    for tk in spec.tickers:
        rng = spec.wanted(tk.asset_class)
        for tf in spec.timeframes:
            bars: BarBatch = sim.run(lambda tk=tk, tf=tf, rng=rng: sim.server.market.aggregates(
                tk.symbol, tf, rng.start_ms, rng.end_ms))
            out[(tk.symbol, str(tf))] = (rng.start_ms, rng.end_ms, bars)
    return out


def _assert_exact(db_url: str, truth: Truth) -> int:
    """Assert the store holds exactly the expected bars; return the bar count."""

    async def check() -> int:
        store = await open_store(db_url)
        total = 0
        try:
            for (ticker, tf), (start_ms, end_ms, expected) in truth.items():
                got = await store.bars(ticker, parse_timeframes(tf)[0], start_ms, end_ms)
                assert len(expected) > 0 and got.equals(expected), f"{ticker} {tf}"
                total += len(expected)
        finally:
            await store.close()
        return total

    return asyncio.run(check())


def _assert_budget_held(sim: SimThread) -> None:
    stats = sim.stats()
    assert stats["rate_limited"] == 0, stats
    assert stats["max_requests_1s"] <= 5, stats


def test_distributed_backfill_equals_ground_truth_when_three_workers_share_it(
    fleet: Fleet, sim: SimThread, tmp_path: Path
) -> None:
    """A multi-ticker run completes through the workers, exactly, within one global window budget."""
    before = sim.stats()["requests"]
    tickers, tfs = "AAPL,MSFT,NVDA,SPY,QQQ,X:BTCUSD", "5m,1h,1d"
    report_path = tmp_path / "report.json"
    truth = _truth(sim, tickers, tfs, "2024-03-04", "2024-03-08")
    done = fleet.run_cli("backfill", "--distributed", "-s", tickers, "-t", tfs, "--start", "2024-03-04",
                         "--end", "2024-03-08", "--no-grouped", "--report", str(report_path))
    assert done.returncode == 0, done.stderr + done.stdout
    report = read_report(report_path)
    bars = _assert_exact(fleet.db_url, truth)
    assert report["status"] == "ok" and report["kind"] == "distributed"
    assert report["requests"] == report["planned_requests"] == 18 == sim.stats()["requests"] - before
    assert report["bars_fetched"] == report["bars_inserted"] == bars
    workers = {row[0] for row in fleet.sql("SELECT DISTINCT worker FROM mdw_job_results")}
    assert len(workers) >= 2  # the jobs were really shared
    _assert_budget_held(sim)
    again = fleet.run_cli("backfill", "--distributed", "-s", tickers, "-t", tfs, "--start", "2024-03-04",
                          "--end", "2024-03-08", "--no-grouped")
    assert again.returncode == 0 and "0 jobs deferred" in again.stderr


def test_distributed_backfill_completes_exactly_when_a_worker_is_killed(fleet: Fleet, sim: SimThread) -> None:
    """kill -9 of a busy worker: its running jobs go to the others and the data is still exact."""
    tickers, tfs = "AMZN,GOOGL,META,TSLA,JPM,V,X:ETHUSD", "15m,4h"
    truth = _truth(sim, tickers, tfs, "2024-04-01", "2024-04-05")
    run = fleet.popen_cli("backfill", "--distributed", "-s", tickers, "-t", tfs, "--start", "2024-04-01",
                          "--end", "2024-04-05", "--no-grouped")
    victim = "w0"
    pid = fleet.workers[victim].pid
    wait_for(lambda: bool(fleet.sql("SELECT 1 FROM mdw_job_results WHERE worker = %s AND start_ms >= %s",
                                    victim, 1711929600000)), 30, "the victim to finish a job")
    wid = fleet.sql("SELECT j.worker_id FROM mdw_job_results r JOIN procrastinate_jobs j ON j.id = r.job_id "
                    "WHERE r.worker = %s ORDER BY r.finished_at DESC LIMIT 1", victim)[0][0]
    os.kill(pid, signal.SIGKILL)
    fleet.workers[victim].wait()
    orphans = [r[0] for r in fleet.sql("SELECT id FROM procrastinate_jobs WHERE status = 'doing' "
                                       "AND worker_id = %s", wid)]
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err + out
    _assert_exact(fleet.db_url, truth)
    assert orphans, "the victim held no running job when it was killed"
    finished = fleet.sql("SELECT j.status::text, r.worker FROM procrastinate_jobs j JOIN mdw_job_results r "
                         "ON r.job_id = j.id WHERE j.id = ANY(%s)", orphans)
    assert len(finished) == len(orphans)
    assert all(status == "succeeded" and worker != victim for status, worker in finished)
    _assert_budget_held(sim)
    fleet.start(victim)  # back to three for the next test
    fleet.wait_registered(3)


def test_distributed_backfill_creates_no_duplicate_jobs_when_started_twice(
    fleet: Fleet, sim: SimThread
) -> None:
    """A second `--distributed` run of the same spec while the first runs follows the same jobs."""
    args = ("backfill", "--distributed", "-s", "NFLX,KO,PEP,AMD,ADBE,WMT", "-t", "30m,2h,1d",
            "--start", "2024-05-06", "--end", "2024-05-10", "--no-grouped")
    truth = _truth(sim, "NFLX,KO,PEP,AMD,ADBE,WMT", "30m,2h,1d", "2024-05-06", "2024-05-10")
    first = fleet.popen_cli(*args)
    queued = "SELECT 1 FROM procrastinate_jobs WHERE args->'work'->>'ticker' = 'NFLX'"
    wait_for(lambda: bool(fleet.sql(queued)), 30, "the first run's jobs")
    second = fleet.run_cli(*args)
    _out, err = first.communicate(timeout=60)
    assert first.returncode == 0 and second.returncode == 0, err + second.stderr
    assert "18 jobs deferred" in err
    assert "0 jobs deferred" in second.stderr
    dupes = fleet.sql("SELECT queueing_lock FROM procrastinate_jobs WHERE queueing_lock LIKE 'mdw:aggs:%%' "
                      "GROUP BY 1 HAVING count(*) > 1")
    assert dupes == []
    _assert_exact(fleet.db_url, truth)
    _assert_budget_held(sim)
    status = fleet.run_cli("status", "--queue", "--json")
    assert status.returncode == 0 and '"succeeded"' in status.stdout


def test_distributed_report_counts_vendor_retries_when_the_vendor_fails_sometimes(
    fleet: Fleet, sim: SimThread, tmp_path: Path
) -> None:
    """Each job's retries reach the run report (equal to the 5xx served); api_s is busy wall time."""
    from mdw.simulator.config import FaultConfig

    tickers = "INTC,CSCO,ORCL,IBM,CRM,TXN"
    truth = _truth(sim, tickers, "1d", "2024-06-03", "2024-06-07")
    before = sim.stats()
    sim.run(lambda: sim.server.set_faults(FaultConfig(error_rate=0.3)))
    try:
        done = fleet.run_cli("backfill", "--distributed", "-s", tickers, "-t", "1d", "--start", "2024-06-03",
                             "--end", "2024-06-07", "--no-grouped", "--report", str(tmp_path / "r.json"))
    finally:
        sim.run(lambda: sim.server.set_faults(FaultConfig()))
    assert done.returncode == 0, done.stderr + done.stdout
    report = read_report(tmp_path / "r.json")
    after = sim.stats()
    errors = after["faults"].get("error", 0) - before["faults"].get("error", 0)
    assert report["retries"] == errors > 0
    assert report["rate_limited"] == after["rate_limited"] - before["rate_limited"]
    assert report["requests"] == after["requests"] - before["requests"] == 6 + errors
    assert 0 < report["api_s"] <= report["api_request_s"] and report["api_s"] <= report["wall_s"]
    _assert_exact(fleet.db_url, truth)


def test_distributed_job_quarantines_invalid_bars_when_every_attempt_serves_them(
    fleet: Fleet, sim: SimThread, tmp_path: Path
) -> None:
    """A worker keeps the invalid bars of a failed job in the quarantine, with the run's id."""
    from mdw.simulator.config import FaultConfig

    sim.run(lambda: sim.server.set_faults(FaultConfig(invalid_bar_rate=1.0)))
    try:
        done = fleet.run_cli("backfill", "--distributed", "-s", "HD", "-t", "1d", "--start", "2024-06-03",
                             "--end", "2024-06-07", "--no-grouped", "--report", str(tmp_path / "q.json"))
    finally:
        sim.run(lambda: sim.server.set_faults(FaultConfig()))
    assert done.returncode == 1, done.stderr + done.stdout
    report = read_report(tmp_path / "q.json")

    async def quarantined() -> list[Any]:
        store = await open_store(fleet.db_url)
        try:
            return [q for q in await store.quarantine.recent("HD") if q.run_id == report["run_id"]]
        finally:
            await store.close()

    rows = asyncio.run(quarantined())
    assert rows and all(q.ticker == "HD" and q.timeframe == "1d" and q.reason for q in rows)
    assert all(q.h < q.l or q.o > q.h or q.c > q.h or q.o < q.l or q.c < q.l or q.v < 0 for q in rows)

    async def stored() -> int:
        store = await open_store(fleet.db_url)
        try:
            week = (to_ms(date(2024, 6, 1)), to_ms(date(2024, 6, 10)))
            return len(await store.bars("HD", Timeframe.parse("1d"), *week))
        finally:
            await store.close()

    assert asyncio.run(stored()) == 0


def test_worker_refuses_sqlite_with_one_line(fleet: Fleet, tmp_path: Path) -> None:
    """`mdw worker` on a SQLite warehouse exits 2 with one clear line."""
    done = fleet.run_cli("worker", "--database-url", f"sqlite:///{tmp_path / 'x.db'}")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "PostgreSQL" in done.stderr
