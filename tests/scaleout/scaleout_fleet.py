"""Test harness: a simulator in a background thread and real `mdw worker` processes against it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from mdw.simulator import SimServer
from mdw.simulator.config import SimConfig

T = TypeVar("T")
MDW = [str(Path(sys.executable).with_name("mdw"))]  # the console script of this venv


class SimThread:
    """A simulator serving from its own event loop thread, so blocking test code never stalls it."""

    def __init__(self, config: SimConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sim", daemon=True)
        self.thread.start()
        self.server = SimServer(config)
        self.call(self.server.start())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def run(self, fn: Callable[[], T]) -> T:
        async def wrapped() -> T:
            return fn()

        return self.call(wrapped())

    def stats(self) -> dict[str, Any]:
        return self.run(self.server.stats)

    def stop(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class Fleet:
    """N `mdw worker` processes sharing one database and one simulator."""

    def __init__(self, db_url: str, sim: SimThread, rate: str, logdir: Path, *extra: str) -> None:
        self.db_url = db_url
        self.logdir = logdir
        self.extra = list(extra)
        self.env = {**os.environ, "POLYGON_API_KEY": sim.server.key, "POLYGON_BASE_URL": sim.server.base_url,
                    "MDW_DATABASE_URL": db_url, "MDW_RATE_LIMIT": rate, "MDW_LOG_LEVEL": "WARNING",
                    "MDW_LOG_FORMAT": "json", "MDW_RETRY_BASE_S": "0.05"}
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> subprocess.Popen[bytes]:
        log = (self.logdir / f"{name}.log").open("wb")
        proc = subprocess.Popen([*MDW, "worker", "--name", name, *self.extra], env=self.env,
                                stdout=log, stderr=subprocess.STDOUT)
        self.workers[name] = proc
        return proc

    def wait_registered(self, count: int, timeout: float = 30.0) -> None:
        """Until ``count`` workers have registered (heartbeat rows), or fail with their logs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.workers.items():
                if proc.poll() is not None:
                    raise AssertionError(f"worker {name} exited {proc.returncode}: {self.log(name)}")
            if self.sql("SELECT to_regclass('procrastinate_workers') IS NOT NULL")[0][0] and \
                    self.sql("SELECT count(*) FROM procrastinate_workers")[0][0] >= count:
                return
            time.sleep(0.1)
        raise AssertionError("workers did not register: " + " | ".join(self.log(n) for n in self.workers))

    def log(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text(errors="replace")[-3000:]

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cur = conn.execute(query.encode(), params or None)
            return cur.fetchall() if cur.description else []

    def run_cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*MDW, *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def popen_cli(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*MDW, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def stop(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


DAY_MS = 86_400_000


async def defer_day_windows(db_url: str, count: int, first_ms: int, run_id: str = "full") -> None:
    """``count`` consecutive one-day AAPL windows, one ``mdw.work`` job each (a long 1d backfill's queue)."""
    from mdw.backfill.plan import PlannedRequest, Target
    from mdw.domain import AssetClass, Timeframe, TimeRange
    from mdw.scaleout.codec import encode, window_lock
    from mdw.scaleout.queue import WORK_TASK, build_app

    app = build_app(db_url)
    tf = Timeframe.parse("1d")
    async with app.open_async():
        task = app.tasks[WORK_TASK]
        jobs = []
        for i in range(count):
            span = TimeRange(first_ms + i * DAY_MS, first_ms + (i + 1) * DAY_MS)
            target = (Target("AAPL", tf, span, False),)
            work = PlannedRequest("aggs", AssetClass.STOCKS, "AAPL", tf, span, target, 1)
            jobs.append(task.configure(queueing_lock=window_lock(work),
                                       task_kwargs={"run_id": run_id, "work": encode(work)}).job)
        for i in range(0, len(jobs), 500):
            await app.job_manager.batch_defer_jobs_async(jobs[i:i + 500])


def read_report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data
