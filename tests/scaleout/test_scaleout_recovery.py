"""Recovery and the schedule under a full queue: they never wait behind the window jobs.

Five thousand window jobs at a binding rate keep every worker busy for far longer than the test;
a worker killed with jobs in hand gets them restarted elsewhere, and periodic ticks start, within
their documented delays (stalled-after plus the recovery interval; the tick's own interval),
measured on the database's clock from the event itself (the kill, the tick's due time).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from scaleout_fleet import Fleet, SimThread, defer_day_windows, wait_for

from mdw.scaleout.queue import WORK_TASK
from mdw.simulator.config import SimConfig

pytestmark = pytest.mark.postgres

RATE = "4/s"
JOBS = 5000
FIRST = int(datetime(2000, 1, 3, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def sim() -> Iterator[SimThread]:
    thread = SimThread(SimConfig(seed=7, keys={"test-key": "unlimited"}, rate_limit=RATE))
    try:
        yield thread
    finally:
        thread.stop()


def test_recovery_and_ticks_start_in_time_when_the_queue_holds_5000_jobs(
    fresh_pg_url: str, sim: SimThread, tmp_path: Path,
) -> None:
    """Behind 5,000 jobs, a killed worker's jobs restart within 60 s and ticks start within 90 s of due."""
    fleet = Fleet(fresh_pg_url, sim, RATE, tmp_path, "--concurrency", "2", "--heartbeat", "0.5",
                  "--stalled-after", "3", "--grace", "1", "--tick-cron", "* * * * * */5")
    try:
        victim = fleet.start("victim")
        fleet.wait_registered(1)
        victim_id = fleet.sql("SELECT id FROM procrastinate_workers")[0][0]
        for i in range(2):
            fleet.start(f"w{i}")
        fleet.wait_registered(3)
        asyncio.run(defer_day_windows(fresh_pg_url, JOBS, FIRST))
        wait_for(lambda: fleet.sql("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing' "
                                   "AND worker_id = %s AND task_name = %s", victim_id, WORK_TASK)[0][0] >= 2,
                 60, "the victim to hold two window jobs")
        held = [r[0] for r in fleet.sql("SELECT id FROM procrastinate_jobs WHERE status = 'doing' "
                                        "AND worker_id = %s AND task_name = %s", victim_id, WORK_TASK)]
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = fleet.sql("SELECT clock_timestamp()")[0][0]
        victim.wait()

        def restarted() -> bool:
            rows = fleet.sql("SELECT count(DISTINCT job_id) FROM procrastinate_events "
                             "WHERE job_id = ANY(%s) AND type = 'started' AND at > %s", held, killed_at)
            return bool(rows[0][0] == len(held))

        wait_for(restarted, 120, "the killed worker's jobs to restart")
        restart_s = fleet.sql("SELECT extract(epoch FROM max(at) - %s) FROM procrastinate_events "
                              "WHERE job_id = ANY(%s) AND type = 'started' AND at > %s",
                              killed_at, held, killed_at)[0][0]
        wait_for(lambda: fleet.sql("SELECT count(*) FROM mdw_job_results WHERE kind = 'tick'")[0][0] >= 3,
                 120, "three ticks")
        ticks = fleet.sql("SELECT (detail->>'timestamp')::float8, extract(epoch FROM finished_at) "
                          "FROM mdw_job_results WHERE kind = 'tick'")
        queued = fleet.sql("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo' "
                           "AND task_name = %s", WORK_TASK)[0][0]
    finally:
        fleet.stop()
    assert queued >= JOBS - 500, "the queue stayed full while we measured"
    assert float(restart_s) < 60.0, f"restart took {restart_s} s"
    lateness = [float(finished) - float(due) for due, finished in ticks]
    print(f"restart {float(restart_s):.1f} s; tick lateness {[round(x, 1) for x in lateness]}")
    assert max(lateness) < 90.0, lateness
