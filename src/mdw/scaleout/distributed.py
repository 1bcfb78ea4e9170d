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
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from procrastinate import App

from mdw.backfill.engine import job_series
from mdw.backfill.plan import BackfillSpec, Plan
from mdw.backfill.report import Progress, RunReport, SeriesOutcome
from mdw.backfill.runner import plan_only, track_symbols
from mdw.config import Settings
from mdw.domain import Timeframe as Tf
from mdw.domain import parse_ticker
from mdw.errors import StoreError, UsageError
from mdw.scaleout.codec import Work, decode, encode, window_lock
from mdw.scaleout.queue import DONE_CHANNEL, WORK_TASK, build_app
from mdw.scaleout.schema import ensure_schema, libpq_url
from mdw.store.base import RunKind, RunRecord, RunStatus, Store

DEFER_LOCK_KEY = 7_310_042_018
FINAL = ("succeeded", "failed", "cancelled", "aborted")
CHUNK = 500


@dataclass(slots=True)
class Deferred:
    """The jobs one distributed run waits for: the ones it deferred and the ones already queued."""

    run_id: str
    job_ids: list[int] = field(default_factory=list)
    new: int = 0
    existing: int = 0
    planned_requests: int = 0
    started_at_ms: int = 0


def require_postgres(url: str) -> None:
    """Scale-out lives in PostgreSQL; anything else is a usage error with one clear line."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise UsageError("distributed mode needs a PostgreSQL warehouse (MDW_DATABASE_URL=postgresql://...); "
                         "SQLite cannot be shared by workers on several machines")


def _units(plan: Plan) -> list[Work]:
    return [*plan.actions, *plan.requests, *plan.derives]


async def defer_plan(
    app: App, database_url: str, plan: Plan, run_id: str, planned_at: datetime | None = None
) -> Deferred:
    """Defer one job per planned unit, skipping windows that already have a live job.

    A window whose job succeeded after ``planned_at`` (minus a clock-skew allowance) is skipped too:
    the plan read the ledger before that job committed, so the window is covered by now.
    """
    out = Deferred(run_id, planned_requests=plan.request_count, started_at_ms=time.time_ns() // 1_000_000)
    units = {window_lock(w): w for w in _units(plan)}
    if not units:
        return out
    task = app.tasks[WORK_TASK]
    try:
        async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn, conn.transaction():
            # Serialise deferrers (CLI runs, the service, the tick): check-then-insert is atomic.
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (DEFER_LOCK_KEY,))
            since = (planned_at or datetime.now(UTC)) - timedelta(seconds=5)
            cur = await conn.execute(
                "SELECT id, queueing_lock FROM procrastinate_jobs "
                "WHERE status IN ('todo', 'doing') AND queueing_lock = ANY(%s) "
                "UNION SELECT j.id, j.queueing_lock FROM mdw_job_results r "
                "JOIN procrastinate_jobs j ON j.id = r.job_id "
                "WHERE r.ok AND r.finished_at >= %s AND j.queueing_lock = ANY(%s)",
                (list(units), since, list(units)))
            for job_id, lock in await cur.fetchall():
                if units.pop(str(lock), None) is None:
                    continue  # several finished jobs of one window: follow one
                out.job_ids.append(int(job_id))
                out.existing += 1
            todo = [task.configure(queueing_lock=lock, task_kwargs={"run_id": run_id, "work": encode(w)}).job
                    for lock, w in units.items()]
            for i in range(0, len(todo), CHUNK):
                jobs = await app.job_manager.batch_defer_jobs_async(todo[i:i + CHUNK], connection=conn)
                out.job_ids.extend(int(j.id) for j in jobs if j.id is not None)
            out.new = len(todo)
    except psycopg.Error as exc:
        raise StoreError(f"cannot defer distributed jobs: {exc}") from exc
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
    await ensure_schema(settings.database_url, limiter=False)
    specs = [spec] if isinstance(spec, BackfillSpec) else list(spec)
    rid = run_id or uuid.uuid4().hex[:16]
    own = store is None
    if store is None:
        from mdw.store import open_store

        store = await open_store(settings.database_url)
    try:
        planned_at = datetime.now(UTC)
        plan = await plan_only(store, specs)
        await track_symbols(store, [s for s in specs if s.kind is not RunKind.UPDATE])
        app = build_app(settings.database_url)
        async with app.open_async():
            deferred = await defer_plan(app, settings.database_url, plan, rid, planned_at)
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


async def defer_update(app: App, settings: Settings, store: Store, *, run_id: str) -> Deferred:
    """The distributed schedule tick: every tracked series' gaps up to now, as jobs."""
    specs = await update_specs(store)
    if not specs:
        return Deferred(run_id)
    planned_at = datetime.now(UTC)
    plan = await plan_only(store, specs)
    return await defer_plan(app, settings.database_url, plan, run_id, planned_at)


async def _snapshot(conn: psycopg.AsyncConnection[tuple[Any, ...]], ids: list[int]) -> list[tuple[Any, ...]]:
    cur = await conn.execute(
        "SELECT j.id, j.status::text, j.args, r.ok, r.requests, r.bars, r.inserted, r.updated, r.api_s, "
        "r.db_s, r.error, r.retries, r.rate_limited, r.detail FROM procrastinate_jobs j "
        "LEFT JOIN mdw_job_results r ON r.job_id = j.id WHERE j.id = ANY(%s)", (ids,))
    return await cur.fetchall()


def busy_seconds(spans: list[tuple[float, float]]) -> float:
    """Wall time covered by at least one of ``spans`` (their union's length)."""
    total = 0.0
    end = float("-inf")
    for a, b in sorted(spans):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def aggregate(
    deferred: Deferred, rows: list[tuple[Any, ...]], wall_s: float, rate_limit: str = ""
) -> RunReport:
    """The run report of a distributed run, summed over its jobs (same fields as a local run's).

    As locally, ``api_request_s`` sums the time each request was awaited and ``api_s`` is the wall
    time during which at least one was (the union of the jobs' vendor-busy spans, each stamped by
    its worker's clock). ``requests``, ``retries`` and ``rate_limited`` count every recorded job,
    failed ones too: they cost vendor calls whatever the outcome.
    """
    report = RunReport(run_id=deferred.run_id, kind=RunKind.DISTRIBUTED, started_at_ms=deferred.started_at_ms,
                       rate_limit=rate_limit, planned_requests=deferred.planned_requests, wall_s=wall_s)
    spans: list[tuple[float, float]] = []
    for (_jid, status, args, _ok, requests, bars, inserted, updated, api_s, db_s, error, retries, limited,
         detail) in rows:
        work = decode(args["work"])
        keys = job_series(work)
        for key in keys:
            report.series.setdefault(key, SeriesOutcome(key)).requests_planned += 1
        if status in FINAL:
            report.requests += int(requests or 0)
            report.retries += int(retries or 0)
            report.rate_limited += int(limited or 0)
            report.api_request_s += float(api_s or 0.0)
            spans.extend((float(a), float(b)) for a, b in (detail or {}).get("api_spans", []))
        if status == "succeeded":
            report.bars_fetched += int(bars or 0)
            report.bars_inserted += int(inserted or 0)
            report.bars_updated += int(updated or 0)
            report.db_s += float(db_s or 0.0)
            report.transactions += int(requests or 0) - int(retries or 0)  # one commit per page
            for key in keys:
                report.series[key].requests_done += 1
                report.series[key].bars += int(bars or 0) if key == keys[0] else 0
        elif status in FINAL:
            reason = str(error or status)
            report.errors.append(f"{keys[0]}: {reason}")
            for key in keys:
                report.series[key].requests_failed += 1
                report.series[key].reason = report.series[key].reason or reason
    report.api_s = busy_seconds(spans)
    return report


async def follow(
    database_url: str, deferred: Deferred, *, progress: Progress | None = None,
    stop: asyncio.Event | None = None, rate_limit: str = "", idle_check_s: float = 1.0,
) -> RunReport:
    """Wait until every job of the run is final, then return the aggregated report.

    Workers notify ``mdw_job_done`` as each job is recorded, so the follower wakes on progress;
    ``idle_check_s`` only bounds how late it notices a job procrastinate failed after its record.
    """
    started = time.perf_counter()
    seen: set[int] = set()
    interrupted = False
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as conn:
        await conn.execute(f"LISTEN {DONE_CHANNEL}".encode())
        while True:
            rows = await _snapshot(conn, deferred.job_ids)
            for row in rows:
                if row[1] in FINAL and row[0] not in seen:
                    seen.add(row[0])
                    if progress is not None:
                        progress.advanced(job_series(decode(row[2]["work"]))[0], row[1] == "succeeded",
                                          int(row[5] or 0))
            if len(seen) >= len(deferred.job_ids):
                break
            if stop is not None and stop.is_set():
                interrupted = True
                break
            async for _note in conn.notifies(timeout=idle_check_s, stop_after=1):
                pass
    report = aggregate(deferred, rows, time.perf_counter() - started, rate_limit)
    report.finished_at_ms = time.time_ns() // 1_000_000
    report.settle(interrupted)
    return report


async def follow_run(settings: Settings, store: Store, deferred: Deferred, *,
                     progress: Progress | None = None, stop: asyncio.Event | None = None) -> RunReport:
    """Follow a deferred run to its end and record the report in ``runs`` (used by CLI and service)."""
    report = await follow(settings.database_url, deferred, progress=progress, stop=stop,
                          rate_limit=str(settings.rate_limit))
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
