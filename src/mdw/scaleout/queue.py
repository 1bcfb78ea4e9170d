"""The procrastinate application: mdw's job kinds, their retry policy, and the periodic ticks.

Three tasks, all on queue ``mdw``:

* ``mdw.work``           one planned unit (a request window, a ticker's actions, a derive task);
* ``mdw.tick``           periodic: bring every tracked series up to now, as distributed jobs;
* ``mdw.retry_stalled``  periodic: put back the jobs of workers whose heartbeat stopped (kill -9).

Periodic tasks are deferred by every worker's deferrer, and procrastinate's
``procrastinate_periodic_defers`` unique key lets exactly one insert win per (task, tick), so a
tick runs once however many workers run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from procrastinate import App, JobContext, PsycopgConnector, RetryDecision, RetryStrategy
from procrastinate.exceptions import JobAborted
from procrastinate.jobs import Job, Status

from mdw.backfill.quarantine import quarantine_error
from mdw.errors import StoreError, ValidationError, VendorTransientError, VendorUnavailable
from mdw.scaleout.codec import decode
from mdw.scaleout.runtime import WorkerRuntime, WorkOutcome
from mdw.scaleout.schema import libpq_url

log = logging.getLogger(__name__)

QUEUE = "mdw"
WORK_TASK = "mdw.work"
TICK_TASK = "mdw.tick"
STALLED_TASK = "mdw.retry_stalled"
DONE_CHANNEL = "mdw_job_done"
RUNTIME_KEY = "mdw_runtime"


@dataclass(frozen=True, slots=True)
class QueueOptions:
    """Retry and schedule settings of the job queue.

    Args:
        max_attempts: attempts of a job before it is marked failed.
        retry_wait_s: exponential backoff base (waits ``base ** (attempt + 1)`` seconds).
        tick_cron: cron of the distributed schedule tick (5 or 6 fields; None: no tick).
        stalled_cron: how often stalled jobs are looked for.
        stalled_after_s: a worker silent this long is considered dead and its jobs are retried.
    """

    max_attempts: int = 5
    retry_wait_s: int = 2
    tick_cron: str | None = "*/5 * * * *"
    stalled_cron: str = "* * * * * */10"
    stalled_after_s: float = 30.0


RECORD_SQL = """
WITH saved AS (
INSERT INTO mdw_job_results (job_id, run_id, kind, ticker, timeframe, start_ms, end_ms, worker, ok,
                             requests, bars, inserted, updated, api_s, db_s, error, detail, retries,
                             rate_limited)
VALUES (%(job_id)s, %(run_id)s, %(kind)s, %(ticker)s, %(timeframe)s, %(start_ms)s, %(end_ms)s, %(worker)s,
        %(ok)s, %(requests)s, %(bars)s, %(inserted)s, %(updated)s, %(api_s)s, %(db_s)s, %(error)s, %(detail)s,
        %(retries)s, %(rate_limited)s)
ON CONFLICT (job_id) DO UPDATE
   SET worker = EXCLUDED.worker, ok = EXCLUDED.ok, requests = mdw_job_results.requests + EXCLUDED.requests,
       retries = mdw_job_results.retries + EXCLUDED.retries,
       rate_limited = mdw_job_results.rate_limited + EXCLUDED.rate_limited,
       bars = EXCLUDED.bars, inserted = EXCLUDED.inserted, updated = EXCLUDED.updated,
       api_s = EXCLUDED.api_s, db_s = EXCLUDED.db_s, error = EXCLUDED.error, detail = EXCLUDED.detail,
       finished_at = now()
RETURNING run_id
)
SELECT pg_notify('mdw_job_done', run_id) FROM saved
"""


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


async def record(app: App, *, job_id: int, run_id: str, kind: str, worker: str, ok: bool,
                 outcome: WorkOutcome | None = None, error: str = "", work: dict[str, Any] | None = None,
                 detail: dict[str, Any] | None = None) -> None:
    """Store one job's outcome (a retried job overwrites its row) and wake followers of its run."""
    out = outcome or WorkOutcome()
    w = work or {}
    span = w.get("fetch") or w.get("covers") or [0, 0]
    await app.connector.execute_query_async(
        RECORD_SQL, job_id=job_id, run_id=run_id, kind=kind, ticker=str(w.get("ticker", "")),
        timeframe=str(w.get("timeframe") or w.get("target") or w.get("kind") or ""),
        start_ms=int(span[0]), end_ms=int(span[1]), worker=worker, ok=ok, requests=out.requests,
        bars=out.bars, inserted=out.written.inserted, updated=out.written.updated, api_s=out.api_s,
        db_s=out.db_s, error=error[:2000], retries=out.retries, rate_limited=out.rate_limited,
        detail={"noop": out.noop, "api_spans": [[round(a, 4), round(b, 4)] for a, b in out.api_spans],
                **(detail or {})},
    )


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
            await record(context.app, job_id=job.id, run_id=run_id, kind="work", worker=runtime.name,
                         ok=False, outcome=outcome, error=reason, work=work)
        raise
    runtime.count(True, outcome.bars)
    await record(context.app, job_id=job.id, run_id=run_id, kind="work", worker=runtime.name, ok=True,
                 outcome=outcome, work=work)


async def _tick(context: JobContext, timestamp: int) -> None:
    """The distributed schedule: plan every tracked series up to now and defer its windows."""
    from mdw.scaleout.distributed import defer_update

    runtime = runtime_of(context)
    job = context.job
    assert job.id is not None
    started = time.perf_counter()
    deferred = await defer_update(context.app, runtime.settings, runtime.store, run_id=f"tick-{timestamp}")
    detail = {"timestamp": timestamp, "deferred": deferred.new, "existing": deferred.existing,
              "seconds": round(time.perf_counter() - started, 4)}
    await record(context.app, job_id=job.id, run_id=f"tick-{timestamp}", kind="tick", worker=runtime.name,
                 ok=True, detail=detail)


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


def build_app(database_url: str, options: QueueOptions | None = None) -> App:
    """A procrastinate app on the warehouse database with mdw's tasks registered (not yet opened)."""
    opts = options or QueueOptions()
    app = App(connector=PsycopgConnector(conninfo=libpq_url(database_url)),
              periodic_defaults={"max_delay": 60.0})
    retry = ReleaseOnShutdown(max_attempts=opts.max_attempts, exponential_wait=opts.retry_wait_s,
                              retry_exceptions=[VendorTransientError, VendorUnavailable, StoreError])
    app.task(name=WORK_TASK, queue=QUEUE, pass_context=True, retry=retry)(_work)
    tick = app.task(name=TICK_TASK, queue=QUEUE, pass_context=True, queueing_lock="mdw:tick")(_tick)
    stalled = app.task(name=STALLED_TASK, queue=QUEUE, pass_context=True,
                       queueing_lock="mdw:retry_stalled")(_retry_stalled_factory(opts.stalled_after_s))
    if opts.tick_cron:
        app.periodic_registry.register_task(task=tick, cron=opts.tick_cron, periodic_id="",
                                            configure_kwargs={})
    app.periodic_registry.register_task(task=stalled, cron=opts.stalled_cron, periodic_id="",
                                        configure_kwargs={})
    return app
