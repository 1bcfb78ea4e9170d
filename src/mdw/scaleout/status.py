"""Operations: queue depth, running and failed jobs, live workers, per-worker throughput, metrics.

Everything is read from the shared database (procrastinate's counts through its own API,
mdw's ``mdw_job_results`` and ``mdw_workers``), so ``mdw status --queue`` on any machine sees
the whole fleet. The same numbers are exported as
Prometheus gauges; each worker also counts its own jobs, bars and limiter cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mdw.errors import StoreError

if TYPE_CHECKING:
    from rich.console import Console


@dataclass(frozen=True, slots=True)
class WorkerThroughput:
    """One worker's finished jobs over the status window."""

    worker: str
    jobs: int
    failed: int
    bars: int
    requests: int
    bars_per_s: float
    last_finished_s_ago: float


@dataclass(slots=True)
class QueueStatus:
    """The queue at a glance."""

    todo: int = 0
    doing: int = 0
    failed: int = 0
    succeeded: int = 0
    aborted: int = 0
    cancelled: int = 0
    workers_alive: int = 0
    window_s: float = 300.0
    throughput: list[WorkerThroughput] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


async def queue_status(database_url: str, window_s: float = 300.0) -> QueueStatus:
    """Read the queue's state from PostgreSQL.

    Raises:
        StoreError: the database is unreachable or the scale-out schema is missing.
    """
    from mdw.scaleout.queue import QUEUE, build_app
    from mdw.store.pgjobs import JobTables
    from mdw.store.pgqueue import queue_ready

    out = QueueStatus(window_s=window_s)
    if not await queue_ready(database_url):
        raise StoreError("no job queue in this database yet: start a worker with `mdw worker`")
    app = build_app(database_url)
    tables = await JobTables.connect(database_url, max_size=1)
    try:
        async with app.open_async():
            for row in await app.job_manager.list_queues_async(queue=QUEUE):
                for status in ("todo", "doing", "failed", "succeeded", "aborted", "cancelled"):
                    setattr(out, status, int(row.get(status, 0)))
        out.workers_alive = await tables.workers_alive(60.0)
        for w in await tables.load(window_s):
            out.throughput.append(WorkerThroughput(w.worker, w.jobs, w.failed, w.bars, w.requests,
                                                   w.bars / window_s, w.last_finished_s_ago))
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"cannot read the job queue: {exc}") from exc
    finally:
        await tables.close()
    return out


def render(status: QueueStatus, console: Console) -> None:
    """Print the queue as rich tables."""
    from rich.table import Table

    head = Table(title="mdw job queue", show_header=False)
    head.add_column("what", style="bold")
    head.add_column("value", justify="right")
    for label, value in (("queued (todo)", status.todo), ("running (doing)", status.doing),
                         ("failed", status.failed), ("succeeded", status.succeeded),
                         ("aborted", status.aborted), ("workers alive", status.workers_alive)):
        head.add_row(label, str(value))
    console.print(head)
    table = Table(title=f"per-worker throughput (last {status.window_s:.0f} s)")
    for col in ("worker", "jobs", "failed", "requests", "bars", "bars/s", "last job"):
        table.add_column(col, justify="left" if col == "worker" else "right")
    for t in status.throughput:
        table.add_row(t.worker, str(t.jobs), str(t.failed), str(t.requests), f"{t.bars:,}",
                      f"{t.bars_per_s:,.1f}", f"{t.last_finished_s_ago:.0f} s ago")
    console.print(table)


class QueueCollector(Collector):
    """The fleet-wide queue gauges, read from the database when Prometheus scrapes (no polling).

    ``collect`` runs in the metrics server's thread, so it may run its own event loop.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def collect(self) -> Iterator[Metric]:
        status = asyncio.run(queue_status(self.database_url))
        jobs = GaugeMetricFamily("mdw_queue_jobs", "Jobs in the mdw queue by status", labels=["status"])
        for name in ("todo", "doing", "failed", "succeeded", "aborted", "cancelled"):
            jobs.add_metric([name], getattr(status, name))
        yield jobs
        yield GaugeMetricFamily("mdw_queue_workers_alive", "Workers with a recent heartbeat",
                                value=status.workers_alive)
        rate = GaugeMetricFamily("mdw_queue_worker_bars_per_second",
                                 "Bars per second per worker over the status window", labels=["worker"])
        for t in status.throughput:
            rate.add_metric([t.worker], t.bars_per_s)
        yield rate


class QueueMetrics:
    """This worker's own Prometheus counters (the fleet view is :class:`QueueCollector`)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else CollectorRegistry()
        self.registry = reg
        self.done = Counter("mdw_worker_jobs", "Jobs this worker finished", ["outcome"], registry=reg)
        self.bars = Counter("mdw_worker_bars", "Bars this worker fetched", registry=reg)
        self.limiter_grants = Gauge("mdw_worker_limiter_grants", "Requests granted by the shared limiter",
                                    registry=reg)
        self.limiter_round_trips = Gauge("mdw_worker_limiter_round_trips",
                                         "Database round trips the shared limiter made", registry=reg)
