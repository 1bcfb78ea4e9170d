"""``mdw worker``: a procrastinate worker on the warehouse's PostgreSQL, and the CLI ends of scale-out.

Run one per machine (or several): they share the plan (the job queue), the rate budget (one row
per API key) and the data, all in the same PostgreSQL. SIGTERM stops fetching new jobs, lets running ones
finish for ``--grace`` seconds, then puts the rest back in the queue. The backfill and status
commands call :func:`distributed_backfill` and :func:`queue_status_command` for ``--distributed``
and ``--queue``.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mdw.cli.app import app, fail, run, settings_from
from mdw.errors import StoreError

if TYPE_CHECKING:
    from mdw.backfill.plan import BackfillSpec
    from mdw.config import Settings
    from mdw.scaleout.runtime import WorkerRuntime


def require_postgres(settings: Settings, what: str) -> None:
    if not settings.database_url.startswith(("postgresql://", "postgres://")):
        fail(f"{what} needs a PostgreSQL warehouse (set MDW_DATABASE_URL=postgresql://...); "
             "SQLite cannot be shared by workers", 2)


def pool_size(concurrency: int) -> int:
    """procrastinate's pool for a worker running ``concurrency`` jobs: its LISTEN connection, one
    for fetching and finishing jobs, and one more per 8 concurrent jobs (finishing is brief)."""
    return 2 + max(1, -(-concurrency // 8))


async def _heartbeat(runtime: WorkerRuntime, concurrency: int, every_s: float) -> None:
    """Keep this worker's row in ``mdw_workers`` fresh (what `mdw status --queue` counts as alive)."""
    import asyncio

    while True:
        with contextlib.suppress(StoreError):
            await runtime.tables.heartbeat(runtime.name, concurrency, str(runtime.settings.rate_limit))
        await asyncio.sleep(every_s)


async def _serve(settings: Settings, *, concurrency: int, name: str, grace_s: float, heartbeat_s: float,
                 stalled_after_s: float, tick_cron: str | None, metrics_port: int | None,
                 margin_s: float | None, spacing_s: float, retention_s: float) -> int:
    import asyncio

    from mdw.scaleout.queue import QUEUE, RUNTIME_KEY, QueueOptions, build_app
    from mdw.scaleout.runtime import WorkerRuntime
    from mdw.store.pgqueue import ensure_queue_schema

    options = QueueOptions(tick_cron=tick_cron, stalled_after_s=stalled_after_s,
                           stalled_cron=f"* * * * * */{max(1, min(59, int(stalled_after_s / 2) or 1))}",
                           retention_s=retention_s, pool_size=pool_size(concurrency))
    # Opening the store applies mdw's migrations (the queue tables among them) before procrastinate's.
    runtime = await WorkerRuntime.open(settings, name, margin_s=margin_s, spacing_cap_s=spacing_s)
    beat: asyncio.Task[None] | None = None
    try:
        await ensure_queue_schema(settings.database_url)
        beat = asyncio.create_task(_heartbeat(runtime, concurrency, heartbeat_s), name="mdw-heartbeat")
        if metrics_port is not None:
            from prometheus_client import start_http_server

            from mdw.scaleout.status import QueueCollector

            runtime.metrics.registry.register(QueueCollector(settings.database_url))
            start_http_server(metrics_port, registry=runtime.metrics.registry)
        qapp = build_app(settings.database_url, options)
        async with qapp.open_async():
            await qapp.run_worker_async(
                queues=[QUEUE], name=name, concurrency=concurrency, shutdown_graceful_timeout=grace_s,
                additional_context={RUNTIME_KEY: runtime}, update_heartbeat_interval=heartbeat_s,
                stalled_worker_timeout=stalled_after_s, install_signal_handlers=True,
            )
    finally:
        if beat is not None:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError, StoreError):
                await beat
            with contextlib.suppress(StoreError):
                await runtime.tables.unregister(name)
        await runtime.close()
    return 0


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Jobs this worker runs at once")] = 4,
    name: Annotated[str | None, typer.Option(help="Name in status and metrics (default host:pid)")] = None,
    grace: Annotated[float, typer.Option(min=0, help="Seconds running jobs get to finish on SIGTERM")] = 30.0,
    heartbeat: Annotated[float, typer.Option(min=0.1, help="Seconds between heartbeats")] = 10.0,
    stalled_after: Annotated[
        float, typer.Option(min=1, help="A worker silent this long is dead; its jobs go to the others")
    ] = 30.0,
    tick_cron: Annotated[
        str | None, typer.Option(help="Cron of the distributed update tick ('' disables); default every "
                                      "schedule_interval_min minutes")
    ] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus metrics on this port")] = None,
    limiter_margin: Annotated[
        float | None, typer.Option(min=0, help="Seconds added to the plan's window for network jitter "
                                               "(default 1% of the window, at least 10 ms)")
    ] = None,
    limiter_spacing: Annotated[
        float, typer.Option(min=0, help="Most seconds between consecutive request starts (spreads bursts)")
    ] = 0.05,
    retention_hours: Annotated[
        float, typer.Option(min=1, help="Finished jobs, their events and results are deleted after this long")
    ] = 168.0,
    database_url: Annotated[str | None, typer.Option("--database-url", help="postgresql://...")] = None,
    rate_limit: Annotated[str | None, typer.Option("--rate-limit", help="The plan all workers share")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="Vendor base URL")] = None,
    config: Annotated[str | None, typer.Option("--config", help="An mdw.toml file")] = None,
) -> None:
    """Run a worker that executes distributed backfill jobs and the schedule, against PostgreSQL."""
    settings = settings_from(config, database_url=database_url, rate_limit=rate_limit,
                             polygon_base_url=base_url)
    require_postgres(settings, "mdw worker")
    if not settings.api_key:
        fail("no vendor API key: set POLYGON_API_KEY (or polygon_api_key in mdw.toml)", 2)
    cron = f"*/{settings.schedule_interval_min} * * * *" if tick_cron is None else (tick_cron or None)
    worker_name = name or f"{socket.gethostname()}:{os.getpid()}"
    run(_serve(settings, concurrency=concurrency, name=worker_name, grace_s=grace, heartbeat_s=heartbeat,
               stalled_after_s=stalled_after, tick_cron=cron, metrics_port=metrics_port,
               margin_s=limiter_margin, spacing_s=limiter_spacing, retention_s=retention_hours * 3600))


async def distributed_backfill(
    settings: Settings, spec: BackfillSpec | list[BackfillSpec], report_path: Path | None
) -> int:
    """``mdw backfill --distributed``: defer the windows, follow the workers, print the run report."""
    import sys

    from mdw.backfill.progress import make_progress, stdout_console
    from mdw.backfill.report import render, write_json_atomic
    from mdw.scaleout.distributed import Deferred, run_distributed

    require_postgres(settings, "mdw backfill --distributed")

    def announce(d: Deferred) -> None:
        print(f"mdw: run {d.run_id}: {d.new} jobs deferred, {d.existing} already queued or running",
              file=sys.stderr)

    with make_progress() as progress:
        report = await run_distributed(settings, spec, progress=progress, on_deferred=announce)
    render(report, stdout_console())
    if report_path:
        write_json_atomic(report_path, report.to_dict())
    return report.exit_code


async def queue_status_command(settings: Settings, as_json: bool) -> int:
    """``mdw status --queue``: depth, running, failed, live workers and per-worker throughput."""
    import json

    from mdw.backfill.progress import stdout_console
    from mdw.scaleout.status import queue_status, render

    require_postgres(settings, "mdw status --queue")
    status = await queue_status(settings.database_url)
    if as_json:
        print(json.dumps(status.to_dict(), indent=2))
    else:
        render(status, stdout_console())
    return 0
