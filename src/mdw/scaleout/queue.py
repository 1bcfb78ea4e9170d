"""The procrastinate application: mdw's job kinds, their retry policy, and the periodic ticks.

Four tasks, all on queue ``mdw``:

* ``mdw.work``           one planned unit (a request window, a ticker's actions, a derive task);
* ``mdw.tick``           periodic: bring every tracked series up to now, as distributed jobs;
* ``mdw.retry_stalled``  periodic: put back the jobs of workers whose heartbeat stopped (kill -9);
* ``mdw.prune``          periodic: forget finished jobs, their events and results after the retention.

Periodic tasks are deferred by every worker's deferrer, and procrastinate's
``procrastinate_periodic_defers`` unique key lets exactly one insert win per (task, tick), so a
tick runs once however many workers run. They carry ``PERIODIC_PRIORITY``: procrastinate hands
out the highest priority first, so they start at the next free slot of any worker instead of
behind every window job already queued (ADR 0013: periodic jobs ahead of the queue).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from procrastinate import App, JobContext, RetryDecision, RetryStrategy
from procrastinate.exceptions import JobAborted
from procrastinate.jobs import Job, Status
from procrastinate.tasks import ConfigureTaskOptions

from mdw.backfill.engine import job_series
from mdw.backfill.quarantine import quarantine_error
from mdw.errors import StoreError, ValidationError, VendorTransientError, VendorUnavailable
from mdw.scaleout.codec import Work, decode, window_lock
from mdw.scaleout.runtime import WorkerRuntime, WorkOutcome
from mdw.store.pgjobs import JobResult
from mdw.store.pgqueue import queue_connector

log = logging.getLogger(__name__)

QUEUE = "mdw"
WORK_TASK = "mdw.work"
TICK_TASK = "mdw.tick"
STALLED_TASK = "mdw.retry_stalled"
PRUNE_TASK = "mdw.prune"
RUNTIME_KEY = "mdw_runtime"
# Above every window job (priority 0): recovery, the schedule and pruning never wait for the queue.
PERIODIC_PRIORITY = 100


@dataclass(frozen=True, slots=True)
class QueueOptions:
    """Retry and schedule settings of the job queue.

    Args:
        max_attempts: attempts of a job before it is marked failed.
        retry_wait_s: exponential backoff base (waits ``base ** (attempt + 1)`` seconds).
        tick_cron: cron of the distributed schedule tick (5 or 6 fields; None: no tick).
        stalled_cron: how often stalled jobs are looked for.
        stalled_after_s: a worker silent this long is considered dead and its jobs are retried.
        retention_s: finished jobs, their events and results older than this are deleted.
        prune_cron: how often the prune runs.
        pool_size: most connections of procrastinate's pool in this process.
    """

    max_attempts: int = 5
    retry_wait_s: int = 2
    tick_cron: str | None = "*/5 * * * *"
    stalled_cron: str = "* * * * * */10"
    stalled_after_s: float = 30.0
    retention_s: float = 7 * 86_400.0
    prune_cron: str = "17 * * * *"
    pool_size: int = 3


class ReleaseOnShutdown(RetryStrategy):
    """Backoff retries for transient failures; a job cancelled by a stopping worker goes back at once.

    procrastinate cancels the jobs still running when a worker's graceful shutdown times out; without
    this they would end ``aborted`` and their windows would stay empty until re-planned.
    """

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, asyncio.CancelledError | JobAborted):
            return RetryDecision(retry_in={"seconds": 0})
        decision: RetryDecision | None = super().get_retry_decision(exception=exception, job=job)
        return decision


def runtime_of(context: JobContext) -> WorkerRuntime:
    runtime = context.additional_context.get(RUNTIME_KEY)
    if not isinstance(runtime, WorkerRuntime):
        raise StoreError("this worker was started without mdw's runtime (start it with `mdw worker`)")
    return runtime


def result_of(job_id: int, run_id: str, worker: str, ok: bool, *, kind: str = "work",
              outcome: WorkOutcome | None = None, error: str = "", work: dict[str, Any] | None = None,
              detail: dict[str, Any] | None = None) -> JobResult:
    """The row that records one job's outcome (the series it served ride along for followers)."""
    out = outcome or WorkOutcome()
    w = work or {}
    span = w.get("fetch") or w.get("covers") or [0, 0]
    unit: Work | None = decode(w) if w else None
    return JobResult(
        job_id, run_id, kind, worker, ok, ticker=str(w.get("ticker", "")),
        timeframe=str(w.get("timeframe") or w.get("target") or w.get("kind") or ""), start_ms=int(span[0]),
        end_ms=int(span[1]), requests=out.requests, bars=out.bars, inserted=out.written.inserted,
        updated=out.written.updated, api_s=out.api_s, db_s=out.db_s, error=error, retries=out.retries,
        rate_limited=out.rate_limited, queueing_lock=window_lock(unit) if unit is not None else "",
        series=tuple(str(k) for k in job_series(unit)) if unit is not None else (),
        detail={"noop": out.noop, "api_spans": [[round(a, 4), round(b, 4)] for a, b in out.api_spans],
                **(detail or {})})


async def _work(context: JobContext, *, run_id: str, work: dict[str, Any]) -> None:
    """Run one planned unit; record its outcome; raise so procrastinate retries or fails it."""
    runtime = runtime_of(context)
    job = context.job
    assert job.id is not None
    outcome = WorkOutcome()
    try:
        await runtime.execute(decode(work), outcome)
    except Exception as exc:
        task = context.app.tasks[WORK_TASK]
        final = task.get_retry_exception(exc, job) is None
        log.warning("job %s failed (attempt %s, final=%s): %s", job.id, job.attempts + 1, final, exc,
                    extra={"action": "scaleout.job_failed", "run_id": run_id})
        if final:
            runtime.count(False, 0)
            reason = str(exc)
            if isinstance(exc, ValidationError):
                # The same quarantine as a local run: the invalid bars are kept for inspection.
                _, reason = await quarantine_error(runtime.store, exc, run_id)
            await runtime.tables.record(result_of(job.id, run_id, runtime.name, False, outcome=outcome,
                                                error=reason, work=work))
        raise
    runtime.count(True, outcome.bars)
    await runtime.tables.record(result_of(job.id, run_id, runtime.name, True, outcome=outcome, work=work))


async def _tick(context: JobContext, timestamp: int) -> None:
    """The distributed schedule: plan every tracked series up to now and defer its windows."""
    from mdw.scaleout.distributed import defer_update

    runtime = runtime_of(context)
    job = context.job
    assert job.id is not None
    started = time.perf_counter()
    deferred = await defer_update(context.app, runtime.tables, runtime.store, run_id=f"tick-{timestamp}")
    detail = {"timestamp": timestamp, "deferred": deferred.new, "existing": deferred.existing,
              "seconds": round(time.perf_counter() - started, 4)}
    await runtime.tables.record(result_of(job.id, f"tick-{timestamp}", runtime.name, True, kind="tick",
                                        detail=detail))


def _retry_stalled_factory(stalled_after_s: float) -> Any:
    async def _retry_stalled(context: JobContext, timestamp: int) -> None:
        """Jobs left 'doing' by a worker whose heartbeat stopped go back to the queue."""
        manager = context.app.job_manager
        for stalled in await manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_s):
            if stalled.id == context.job.id:
                continue
            if stalled.task_name != WORK_TASK:
                # A periodic job is simply dropped: the next tick replaces it, and putting it back
                # could collide with that tick's queueing lock.
                await manager.finish_job(stalled, status=Status.ABORTED, delete_job=False)
                continue
            log.warning("retrying stalled job %s", stalled.id, extra={"action": "scaleout.retry_stalled"})
            await manager.retry_job(stalled)
        await manager.prune_stalled_workers(stalled_after_s)

    return _retry_stalled


def _prune_factory(retention_s: float) -> Any:
    async def _prune(context: JobContext, timestamp: int) -> None:
        """Finished jobs (with their events, by cascade) and their results older than the retention."""
        runtime = runtime_of(context)
        hours = max(1, round(retention_s / 3600))
        await context.app.job_manager.delete_old_jobs(nb_hours=hours, queue=QUEUE, include_failed=True,
                                                      include_cancelled=True, include_aborted=True)
        pruned = await runtime.tables.prune(retention_s)
        log.info("pruned %d job results older than %.0f s", pruned, retention_s,
                 extra={"action": "scaleout.prune"})

    return _prune


def build_app(database_url: str, options: QueueOptions | None = None) -> App:
    """A procrastinate app on the warehouse database with mdw's tasks registered (not yet opened)."""
    opts = options or QueueOptions()
    app = App(connector=queue_connector(database_url, max_size=opts.pool_size),
              periodic_defaults={"max_delay": 60.0})
    retry = ReleaseOnShutdown(max_attempts=opts.max_attempts, exponential_wait=opts.retry_wait_s,
                              retry_exceptions=[VendorTransientError, VendorUnavailable, StoreError])
    app.task(name=WORK_TASK, queue=QUEUE, pass_context=True, retry=retry)(_work)
    tick = app.task(name=TICK_TASK, queue=QUEUE, pass_context=True, queueing_lock="mdw:tick")(_tick)
    stalled = app.task(name=STALLED_TASK, queue=QUEUE, pass_context=True,
                       queueing_lock="mdw:retry_stalled")(_retry_stalled_factory(opts.stalled_after_s))
    prune = app.task(name=PRUNE_TASK, queue=QUEUE, pass_context=True,
                     queueing_lock="mdw:prune")(_prune_factory(opts.retention_s))
    first: ConfigureTaskOptions = {"priority": PERIODIC_PRIORITY}
    if opts.tick_cron:
        app.periodic_registry.register_task(task=tick, cron=opts.tick_cron, periodic_id="",
                                            configure_kwargs=first)
    app.periodic_registry.register_task(task=stalled, cron=opts.stalled_cron, periodic_id="",
                                        configure_kwargs=first)
    app.periodic_registry.register_task(task=prune, cron=opts.prune_cron, periodic_id="",
                                        configure_kwargs=first)
    return app
