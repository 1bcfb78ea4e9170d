"""Backfill runs started by the API and the scheduler: background tasks with live progress.

The engine (``mdw.backfill``) does the work and stores the run's record and report; this module
only launches it as a named task, keeps a live view of its progress for ``GET /v1/backfills/{id}``,
turns its end into metrics and alerts, and stops it cleanly on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from mdw.backfill.plan import BackfillSpec, OutcomeKey, Plan
from mdw.backfill.progress import TickerTally
from mdw.backfill.report import RunReport
from mdw.clock import Clock
from mdw.logs import get_logger
from mdw.service.alerts import Alerter
from mdw.service.metrics import ServiceMetrics
from mdw.store.base import RunStatus

log = get_logger(__name__)


@dataclass(slots=True)
class LiveProgress:
    """What a running backfill has done so far (the engine's Progress hook fills it)."""

    run_id: str
    kind: str
    started_at_ms: int
    series_total: int = 0
    series_done: int = 0
    requests_total: int = 0
    requests_done: int = 0
    requests_failed: int = 0
    bars: int = 0
    _per_series: dict[str, int] = field(default_factory=dict)
    _started: float = field(default_factory=time.monotonic)
    _tickers: TickerTally | None = None

    def planned(self, plan: Plan) -> None:
        self._tickers = TickerTally(plan)
        self._per_series = dict(plan.per_series())
        self.series_total = len(self._per_series)
        self.requests_total = plan.request_count

    def advanced(self, key: OutcomeKey, ok: bool, bars: int) -> None:
        self.requests_done += 1
        self.requests_failed += 0 if ok else 1
        self.bars += bars
        if self._tickers is not None:
            self._tickers.advanced(key)
        label = str(key)  # per_series counts requests under the labels a dry run prints
        left = self._per_series.get(label)
        if left is not None:
            self._per_series[label] = left - 1
            if left - 1 == 0:
                self.series_done += 1

    def to_dict(self) -> dict[str, object]:
        elapsed = max(1e-9, time.monotonic() - self._started)
        rate = self.requests_done / elapsed
        remaining = max(0, self.requests_total - self.requests_done)
        return {
            "series_done": self.series_done, "series_total": self.series_total,
            "tickers_done": self._tickers.done if self._tickers else 0,
            "tickers_total": self._tickers.total if self._tickers else 0,
            "requests_done": self.requests_done, "requests_total": self.requests_total,
            "requests_failed": self.requests_failed, "bars": self.bars,
            "bars_per_s": round(self.bars / elapsed, 1), "elapsed_s": round(elapsed, 3),
            "eta_s": round(remaining / rate, 1) if rate > 0 else None,
        }


Runner = Callable[[BackfillSpec, str, LiveProgress, asyncio.Event], Awaitable[RunReport]]


class DistributedLauncher(Protocol):
    """Hands a backfill to distributed workers (``mdw worker``) instead of this process.

    The service answers ``distributed: true`` with 501 until one is given to ``create_app``.
    """

    async def submit(self, spec: BackfillSpec, *, actor: str) -> str:
        """Queue the backfill's requests for the workers; returns the run id."""


class RunManager:
    """Starts runs as background tasks and reports on them while they run."""

    def __init__(self, runner: Runner, clock: Clock, metrics: ServiceMetrics, alerts: Alerter) -> None:
        self._runner = runner
        self._clock = clock
        self._metrics = metrics
        self._alerts = alerts
        self._stop = asyncio.Event()
        self.live: dict[str, LiveProgress] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.on_finish: list[Callable[[RunReport], None]] = []

    def start(self, spec: BackfillSpec) -> str:
        """Launch ``spec`` in the background; returns the run id at once."""
        run_id = uuid.uuid4().hex[:16]
        progress = LiveProgress(run_id, spec.kind, self._clock.now_ms())
        self.live[run_id] = progress
        task = asyncio.create_task(self._run(spec, run_id, progress), name=f"run-{run_id}")
        self._tasks[run_id] = task
        return run_id

    def running(self, run_id: str) -> bool:
        task = self._tasks.get(run_id)
        return task is not None and not task.done()

    def active_ids(self) -> list[str]:
        return [rid for rid, task in self._tasks.items() if not task.done()]

    async def _run(self, spec: BackfillSpec, run_id: str, progress: LiveProgress) -> None:
        started = time.monotonic()
        try:
            report = await self._runner(spec, run_id, progress, self._stop)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The engine records its own failures; reaching here means it could not even do that.
            log.exception("run crashed", action="run.crashed", run_id=run_id)
            self._metrics.runs.labels(spec.kind, "failed").inc()
            self._alerts.raise_alert("run_failed", "error", f"run {run_id} ({spec.kind}) crashed: {exc}",
                                     run_id=run_id, run_kind=spec.kind, status=RunStatus.FAILED.value)
            return
        finally:
            self._tasks.pop(run_id, None)
            self.live.pop(run_id, None)
            self._metrics.run_duration.labels(spec.kind).observe(time.monotonic() - started)
            self._metrics.last_run_finished.set(self._clock.now_ms() / 1000)
        self._metrics.runs.labels(spec.kind, report.status).inc()
        self._metrics.rows_written.inc(report.bars_written)
        if report.status in (RunStatus.FAILED, RunStatus.PARTIAL):
            failed = [str(s.series) for s in report.failed_series][:20]
            self._alerts.raise_alert(
                "run_failed", "error" if report.status is RunStatus.FAILED else "warning",
                f"run {run_id} ({spec.kind}) ended {report.status}: "
                f"{len(report.failed_series)} series failed",
                run_id=run_id, run_kind=spec.kind, status=report.status, failed_series=failed,
                errors=report.errors[:5])
        for hook in self.on_finish:
            hook(report)

    async def wait_idle(self) -> None:
        """Wait until no run is in progress (tests and graceful shutdown)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    async def shutdown(self, grace_s: float = 10.0) -> None:
        """Ask running runs to stop at a safe point, then cancel whatever is left after ``grace_s``."""
        self._stop.set()
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
