"""Run liveness on SQLite and PostgreSQL: killed runs become ``interrupted``, live ones stay ``running``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

from mdw.backfill import run_backfill
from mdw.backfill.liveness import STALE_AFTER_S, current_run, now_ms, owner, reap_abandoned, recent_runs
from mdw.polygon import Pacing, PolygonClient
from mdw.simulator import SimServer
from mdw.store import RunRecord, Store

from .helpers import make_spec


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped (nothing runs under it now)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def running(run_id: str, beat_ms: int, *, kind: str = "backfill", **params: Any) -> RunRecord:
    return RunRecord(run_id, kind, "running", beat_ms - 1_000, params={"heartbeat_ms": beat_ms, **params})


async def test_liveness_marks_interrupted_when_heartbeat_is_stale(store: Store) -> None:
    """A run last heard of more than the threshold ago is shown and persisted as interrupted."""
    beat = now_ms() - int(STALE_AFTER_S * 1000) - 60_000
    await store.runs.save(running("stale", beat, host="elsewhere", pidns="", pid=1))
    [shown] = await recent_runs(store)
    assert (shown.status, shown.finished_at_ms) == ("interrupted", beat)
    saved = await store.runs.get("stale")
    assert saved is not None and saved.status == "interrupted" and saved.finished_at_ms == beat
    assert "stopped without recording its end" in saved.report["errors"][-1]


async def test_liveness_marks_interrupted_when_owner_pid_is_gone(store: Store) -> None:
    """A fresh heartbeat does not save a run whose process on this host no longer exists."""
    await store.runs.save(running("killed", now_ms(), **{**owner(), "pid": dead_pid()}))
    changed = await reap_abandoned(store)
    assert [r.id for r in changed] == ["killed"]
    saved = await store.runs.get("killed")
    assert saved is not None and saved.status == "interrupted"


async def test_liveness_keeps_running_when_owner_is_alive(store: Store) -> None:
    """A live local owner, or a fresh heartbeat from another host, keeps a run ``running``."""
    await store.runs.save(running("mine", now_ms(), **owner()))
    await store.runs.save(running("remote", now_ms() - 30_000, host="elsewhere", pidns="", pid=dead_pid()))
    assert await reap_abandoned(store) == []
    assert {r.id: r.status for r in await recent_runs(store)} == {"mine": "running", "remote": "running"}
    mine = await current_run(store, "mine")
    assert mine is not None and mine.status == "running"


async def test_liveness_keeps_distributed_running_when_follower_is_gone(store: Store) -> None:
    """Distributed runs belong to their worker jobs: a dead deferrer does not interrupt them."""
    old = now_ms() - int(STALE_AFTER_S * 1000) * 10
    await store.runs.save(RunRecord("dist", "distributed", "running", old, params={"distributed": True}))
    assert await reap_abandoned(store) == []
    saved = await store.runs.get("dist")
    assert saved is not None and saved.status == "running"


async def test_run_backfill_beats_and_reaps_when_a_new_run_starts(store: Store, sim_factory: Any) -> None:
    """A run stamps its heartbeat while active, and starting it settles an earlier dead run."""
    sim: SimServer = await sim_factory(latency_ms=40)
    await store.runs.save(running("dead", now_ms(), **{**owner(), "pid": dead_pid()}))
    spec = make_spec("AAPL,MSFT,SPY", "1h", "2024-03-04", "2024-03-08", grouped_daily=False)
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited", max_in_flight=1)) as client:
        task = asyncio.create_task(run_backfill(store, client, spec, heartbeat_s=0.02, run_id="live"))
        beats: set[int] = set()
        while not task.done():
            run = await store.runs.get("live")
            if run is not None and run.status == "running":
                beats.add(int(run.params["heartbeat_ms"]))
                assert run.params["pid"] == owner()["pid"]
            await asyncio.sleep(0.01)
        report = await task
    assert report.status == "ok" and len(beats) >= 2
    dead = await store.runs.get("dead")
    assert dead is not None and dead.status == "interrupted"
    live = await store.runs.get("live")
    assert live is not None and live.status == "ok"
