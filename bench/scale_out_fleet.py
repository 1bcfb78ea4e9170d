"""Scale-out bench parts: 8 workers at a binding plan through a kill -9, and the follower's cost per job.

Imported by ``bench/scale_out.py`` (which documents the figures); each part makes its own database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from scaleout_fleet import Fleet, SimThread, defer_day_windows, wait_for

from mdw.domain import SeriesKey, Timeframe
from mdw.scaleout.follow import Deferred, Tally
from mdw.simulator.config import SimConfig
from mdw.store import open_store
from mdw.store.pgjobs import JobResult, JobTables

PLAN = "20/5s"  # binding for 8 workers x 2 jobs, and short enough to hold many windows in a minute
DAY = 86_400_000
M1 = Timeframe.parse("1m")
FIRST = int(datetime(2001, 1, 2, tzinfo=UTC).timestamp() * 1000)


def _db(admin: str) -> tuple[str, str]:
    name = f"mdw_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return name, f"{admin.rsplit('/', 1)[0]}/{name}"


def _drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


async def _exact(url: str, sim: SimThread, count: int) -> bool:
    tf = Timeframe.parse("1d")
    truth = sim.run(lambda: sim.server.market.aggregates("AAPL", tf, FIRST, FIRST + count * DAY))
    store = await open_store(url)
    try:
        got = await store.bars("AAPL", tf, FIRST, FIRST + count * DAY)
    finally:
        await store.close()
    return bool(len(truth) > 0 and got.equals(truth))


def fleet_under_kill(admin: str, *, jobs: int, workers: int = 8) -> dict[str, Any]:
    """``workers`` processes (concurrency 2) at :data:`PLAN`; one is killed with SIGKILL mid-run."""
    name, url = _db(admin)
    logdir = Path(f"/tmp/{name}")
    logdir.mkdir()
    sim = SimThread(SimConfig(seed=42, keys={"test-key": "unlimited"}, rate_limit=PLAN))
    sim.run(lambda: sim.server.market.aggregates("AAPL", Timeframe.parse("1d"), FIRST, FIRST + jobs * DAY))
    fleet = Fleet(url, sim, PLAN, logdir, "--concurrency", "2", "--heartbeat", "1", "--stalled-after", "5",
                  "--grace", "1", "--tick-cron", "")
    peak = [0]
    stop = threading.Event()

    def sample() -> None:  # connections to this database, every 200 ms
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute(b"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                   b" AND pid <> pg_backend_pid()").fetchone()
                peak[0] = max(peak[0], int(row[0]) if row else 0)
                time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        victim = fleet.start("victim")
        fleet.wait_registered(1, timeout=60)
        victim_id = fleet.sql("SELECT id FROM procrastinate_workers")[0][0]
        for i in range(workers - 1):
            fleet.start(f"w{i}")
        fleet.wait_registered(workers, timeout=90)
        sampler.start()
        t0 = time.perf_counter()
        asyncio.run(defer_day_windows(url, jobs, FIRST, "bench"))
        wait_for(lambda: fleet.sql("SELECT count(*) FROM mdw_job_results")[0][0] >= jobs // 4, 300,
                 "a quarter of the jobs")
        held = [r[0] for r in fleet.sql("SELECT id FROM procrastinate_jobs WHERE status = 'doing' "
                                        "AND worker_id = %s", victim_id)]
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = fleet.sql("SELECT clock_timestamp()")[0][0]
        victim.wait()
        wait_for(lambda: fleet.sql("SELECT count(*) FROM mdw_job_results WHERE ok")[0][0] >= jobs, 600,
                 "every job")
        wall = time.perf_counter() - t0
        restart = fleet.sql("SELECT extract(epoch FROM max(at) - %s) FROM procrastinate_events "
                            "WHERE job_id = ANY(%s) AND type = 'started' AND at > %s",
                            killed_at, held, killed_at)[0][0] if held else None
        stats = sim.stats()
        exact = asyncio.run(_exact(url, sim, jobs))
    finally:
        stop.set()
        fleet.stop()
        sim.stop()
        _drop(admin, name)
    return {
        "workers": workers, "concurrency": 2, "plan": PLAN, "jobs": jobs, "wall_s": round(wall, 1),
        "killed_jobs": len(held), "restart_s": None if restart is None else round(float(restart), 1),
        "max_requests_in_any_plan_window": stats["max_requests_plan_window_by_key"].get("test-key"),
        "plan_limit": 20, "rate_limited_429": stats["rate_limited"], "exact": exact,
        "peak_connections": peak[0], "connections_per_worker": round(peak[0] / workers, 1),
    }


async def follower_cost(admin: str, sizes: tuple[int, ...], probe: int = 300) -> list[dict[str, Any]]:
    """Microseconds of follower work per finished job with ``size`` jobs already recorded.

    Every size gets its own database, filled first; then the probes run in alternation (one job
    recorded and followed per size per round), so the host's load falls on every size alike, and
    the median of the probes is reported beside the mean.
    """
    setups: list[tuple[str, JobTables, int]] = []
    try:
        for size in sizes:
            name, url = _db(admin)
            store = await open_store(url)
            await store.close()
            tables = await JobTables.connect(url, max_size=2)
            setups.append((name, tables, size))
            async with tables.pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO mdw_job_results (job_id, run_id, kind, worker, ok, requests, bars,"
                    " series) SELECT g, 'old', 'work', 'w', true, 1, 100, ARRAY['AAPL 1m']"
                    " FROM generate_series(1, $1) g",
                    size)
                await conn.execute("ANALYZE mdw_job_results")
        state = []
        for _name, tables, size in setups:
            ids = list(range(size + 1, size + probe + 1))
            deferred = Deferred("bench", job_ids=ids, series_planned={SeriesKey("AAPL", M1): probe})
            state.append((Tally(deferred), set(ids), [await tables.last_seq()], [], ids))
        for i in range(probe):
            for (_name, tables, _size), (tally, pending, last, spent, ids) in zip(setups, state, strict=True):
                await tables.record(JobResult(ids[i], "bench", "work", "w", True, requests=1, bars=100,
                                              series=("AAPL 1m",)))
                t0 = time.perf_counter()  # the follower's side: read what is new, fold it
                for r in await tables.since(last[0]):
                    last[0] = r.seq
                    if r.job_id in pending:
                        pending.discard(r.job_id)
                        tally.add(r)
                spent.append(time.perf_counter() - t0)
        assert not any(pending for _t, pending, *_ in state)
    finally:
        for name, tables, _size in setups:
            await tables.close()
            _drop(admin, name)
    return [{"recorded": size, "probe_jobs": probe,
             "us_per_job": round(statistics.fmean(spent) * 1e6, 1),
             "median_us_per_job": round(statistics.median(spent) * 1e6, 1)}
            for (_n, _t, size), (_ta, _p, _l, spent, _i) in zip(setups, state, strict=True)]
