"""Distributed backfill: plan once, defer one job per window, follow the jobs, report like a local run.

Planning is the engine's own (:func:`mdw.backfill.runner.plan_only`); each planned unit becomes one
``mdw.work`` job whose queueing lock names its window. Deferring happens in one transaction under an
advisory lock, after skipping every window that already has a job waiting or running, so a second
``mdw backfill --distributed`` started while the first is running creates no duplicate jobs: it
follows the existing ones instead.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from procrastinate import App

from mdw.backfill.engine import job_series
from mdw.backfill.plan import BackfillSpec, Plan
from mdw.backfill.report import Progress, RunReport
from mdw.backfill.runner import plan_only, track_symbols
from mdw.config import Settings
from mdw.domain import Timeframe as Tf
from mdw.domain import parse_ticker
from mdw.errors import UsageError
from mdw.scaleout.codec import Work, encode, window_lock
from mdw.scaleout.follow import Deferred, follow
from mdw.scaleout.queue import QUEUE, WORK_TASK, build_app
from mdw.store.base import RunKind, RunRecord, RunStatus, Store
from mdw.store.pgjobs import JobTables
from mdw.store.pgqueue import ensure_queue_schema

__all__ = ["Deferred", "defer_backfill", "defer_plan", "defer_update", "follow_run", "require_postgres",
           "run_distributed"]

CHUNK = 500
# Up to this many windows, live jobs are looked up lock by lock; above it, the live queue is listed
# once (a tick's few hundred windows never pay for listing a million queued jobs).
LOOKUP_EACH = 1000


def require_postgres(url: str) -> None:
    """Scale-out lives in PostgreSQL; anything else is a usage error with one clear line."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise UsageError("distributed mode needs a PostgreSQL warehouse (MDW_DATABASE_URL=postgresql://...); "
                         "SQLite cannot be shared by workers on several machines")


def _units(plan: Plan) -> list[Work]:
    return [*plan.actions, *plan.requests, *plan.derives]


async def _live_jobs(app: App, locks: set[str]) -> dict[str, int]:
    """Queueing lock -> id of the waiting or running job holding it, through procrastinate's API."""
    live: dict[str, int] = {}
    manager = app.job_manager
    if len(locks) <= LOOKUP_EACH:
        for lock in locks:
            for job in await manager.list_jobs_async(queue=QUEUE, queueing_lock=lock):
                if job.id is not None and job.status in ("todo", "doing"):
                    live[lock] = int(job.id)
        return live
    for status in ("todo", "doing"):
        for job in await manager.list_jobs_async(queue=QUEUE, status=status):
            if job.queueing_lock in locks and job.id is not None:
                live[job.queueing_lock] = int(job.id)
    return live


async def defer_plan(
    app: App, jobs: JobTables, plan: Plan, run_id: str, planned_at: datetime | None = None
) -> Deferred:
    """Defer one job per planned unit, skipping windows that already have a live job.

    A window whose job succeeded after ``planned_at`` (minus a clock-skew allowance) is skipped too:
    the plan read the ledger before that job committed, so the window is covered by now.
    """
    out = Deferred(run_id, planned_requests=plan.request_count, started_at_ms=time.time_ns() // 1_000_000)
    units: dict[str, Work] = {window_lock(w): w for w in _units(plan)}
    for w in units.values():
        for key in job_series(w):
            out.series_planned[key] = out.series_planned.get(key, 0) + 1
    if not units:
        return out
    task = app.tasks[WORK_TASK]
    async with jobs.defer_lock():
        out.after_seq = await jobs.last_seq()
        for lock, job_id in (await _live_jobs(app, set(units))).items():
            units.pop(lock)
            out.job_ids.append(job_id)
            out.existing += 1
        since_s = (datetime.now(UTC) - (planned_at or datetime.now(UTC))).total_seconds() + 5.0
        for lock, job_id in (await jobs.succeeded_since(list(units), since_s)).items():
            units.pop(lock)
            out.job_ids.append(job_id)
            out.done.append(job_id)
            out.existing += 1
        todo = [task.configure(queueing_lock=lock, task_kwargs={"run_id": run_id, "work": encode(w)}).job
                for lock, w in units.items()]
        for i in range(0, len(todo), CHUNK):
            deferred = await app.job_manager.batch_defer_jobs_async(todo[i:i + CHUNK])
            out.job_ids.extend(int(j.id) for j in deferred if j.id is not None)
        out.new = len(todo)
    return out


async def defer_backfill(
    settings: Settings, spec: BackfillSpec | Sequence[BackfillSpec], *, run_id: str | None = None,
    store: Store | None = None,
) -> Deferred:
    """Plan ``spec`` against the ledger and defer its windows to the workers; returns at once.

    This is what ``POST /v1/backfills`` with ``distributed: true`` calls; the run is recorded in
    ``runs`` with status ``running`` (:func:`follow_run` settles it).

    Raises:
        UsageError: the warehouse is not PostgreSQL.
        StoreError: the database is unreachable.
    """
    require_postgres(settings.database_url)
    specs = [spec] if isinstance(spec, BackfillSpec) else list(spec)
    rid = run_id or uuid.uuid4().hex[:16]
    own = store is None
    if store is None:
        from mdw.store import open_store

        store = await open_store(settings.database_url)
    try:
        await ensure_queue_schema(settings.database_url)
        planned_at = datetime.now(UTC)
        plan = await plan_only(store, specs, limits=settings.limits)
        await track_symbols(store, [s for s in specs if s.kind is not RunKind.UPDATE])
        app = build_app(settings.database_url)
        tables = await JobTables.connect(settings.database_url, max_size=2)  # the defer lock holds one
        try:
            async with app.open_async():
                deferred = await defer_plan(app, tables, plan, rid, planned_at)
        finally:
            await tables.close()
        params: dict[str, Any] = {"specs": [s.to_dict() for s in specs], "distributed": True,
                                  "jobs": deferred.job_ids}
        await store.runs.save(RunRecord(rid, RunKind.DISTRIBUTED, RunStatus.RUNNING, deferred.started_at_ms,
                                        params=params))
    finally:
        if own:
            await store.close()
    return deferred


async def update_specs(store: Store, today: date | None = None) -> list[BackfillSpec]:
    """One spec per tracked symbol: from its start date (or 30 days back) up to today."""
    end = today or datetime.now(UTC).date()
    out: list[BackfillSpec] = []
    for info in await store.symbols.all(active_only=True):
        if not info.timeframes:
            continue
        start = (date.fromisoformat(info.start_date) if info.start_date
                 else date.fromordinal(end.toordinal() - 30))
        out.append(BackfillSpec((parse_ticker(info.ticker, info.asset_class),),
                                tuple(Tf.parse(t) for t in info.timeframes), start, end, kind=RunKind.UPDATE))
    return out


async def defer_update(app: App, jobs: JobTables, store: Store, *, run_id: str) -> Deferred:
    """The distributed schedule tick: every tracked series' gaps up to now, as jobs."""
    specs = await update_specs(store)
    if not specs:
        return Deferred(run_id)
    planned_at = datetime.now(UTC)
    plan = await plan_only(store, specs)
    return await defer_plan(app, jobs, plan, run_id, planned_at)


async def follow_run(settings: Settings, store: Store, deferred: Deferred, *,
                     progress: Progress | None = None, stop: asyncio.Event | None = None) -> RunReport:
    """Follow a deferred run to its end and record the report in ``runs`` (used by CLI and service)."""
    app = build_app(settings.database_url)
    tables = await JobTables.connect(settings.database_url, max_size=2)
    try:
        async with app.open_async():
            report = await follow(app, tables, deferred, progress=progress, stop=stop,
                                  rate_limit=str(settings.rate_limit))
    finally:
        await tables.close()
    record = await store.runs.get(deferred.run_id) or RunRecord(
        deferred.run_id, RunKind.DISTRIBUTED, RunStatus.RUNNING, deferred.started_at_ms)
    done = replace(record, status=report.status, finished_at_ms=report.finished_at_ms,
                   report=report.to_dict())
    await asyncio.shield(store.runs.save(done))
    return report


async def run_distributed(
    settings: Settings, spec: BackfillSpec | Sequence[BackfillSpec], *, progress: Progress | None = None,
    stop: asyncio.Event | None = None, on_deferred: Callable[[Deferred], None] | None = None,
) -> RunReport:
    """``mdw backfill --distributed``: defer the plan's windows, follow them, return the report."""
    from mdw.store import open_store

    require_postgres(settings.database_url)
    store = await open_store(settings.database_url)
    try:
        deferred = await defer_backfill(settings, spec, store=store)
        if on_deferred is not None:
            on_deferred(deferred)
        return await follow_run(settings, store, deferred, progress=progress, stop=stop)
    finally:
        await store.close()
