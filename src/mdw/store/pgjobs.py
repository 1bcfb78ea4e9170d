"""mdw's own queue tables (``mdw_job_results``, ``mdw_workers``): the SQL behind scale-out.

Job outcomes are appended with a sequence number, so a run's follower reads only what is new
(``seq > last``) whatever the run's size, and a retention prune keeps the tables bounded.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from mdw.store.pgqueue import create_pool
from mdw.store.postgres import pg_errors

DONE_CHANNEL = "mdw_job_done"
DEFER_LOCK_KEY = 7_310_042_018
# asyncpg calls a listener with (connection, pid, channel, payload).
Listener = Callable[[asyncpg.Connection, int, str, str], None]

_RECORD = """
WITH saved AS (
INSERT INTO mdw_job_results (job_id, run_id, kind, ticker, timeframe, start_ms, end_ms, worker, ok,
                             requests, bars, inserted, updated, api_s, db_s, error, detail, retries,
                             rate_limited, queueing_lock, series)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17::jsonb, $18, $19, $20, $21)
ON CONFLICT (job_id) DO UPDATE
   SET worker = EXCLUDED.worker, ok = EXCLUDED.ok, requests = mdw_job_results.requests + EXCLUDED.requests,
       retries = mdw_job_results.retries + EXCLUDED.retries,
       rate_limited = mdw_job_results.rate_limited + EXCLUDED.rate_limited,
       bars = EXCLUDED.bars, inserted = EXCLUDED.inserted, updated = EXCLUDED.updated,
       api_s = EXCLUDED.api_s, db_s = EXCLUDED.db_s, error = EXCLUDED.error, detail = EXCLUDED.detail,
       finished_at = now(), seq = nextval(pg_get_serial_sequence('mdw_job_results', 'seq'))
RETURNING run_id
)
SELECT pg_notify('mdw_job_done', run_id) FROM saved
"""

_COLUMNS = ("SELECT seq, job_id, ok, requests, bars, inserted, updated, api_s, db_s, error, retries,"
            " rate_limited, detail::text, series FROM mdw_job_results")
_SINCE = _COLUMNS + " WHERE seq > $1 ORDER BY seq LIMIT $2"
_OF = _COLUMNS + " WHERE job_id = ANY($1::bigint[])"


def _result(r: asyncpg.Record) -> JobResult:
    return JobResult(int(r["job_id"]), "", "", "", bool(r["ok"]), requests=int(r["requests"]),
                     bars=int(r["bars"]),
                     inserted=int(r["inserted"]), updated=int(r["updated"]), api_s=float(r["api_s"]),
                     db_s=float(r["db_s"]), error=str(r["error"]), retries=int(r["retries"]),
                     rate_limited=int(r["rate_limited"]), series=tuple(r["series"] or ()),
                     detail=json.loads(r["detail"] or "{}"), seq=int(r["seq"]))


@dataclass(frozen=True, slots=True)
class JobResult:
    """One finished job as recorded by its worker."""

    job_id: int
    run_id: str
    kind: str
    worker: str
    ok: bool
    ticker: str = ""
    timeframe: str = ""
    start_ms: int = 0
    end_ms: int = 0
    requests: int = 0
    bars: int = 0
    inserted: int = 0
    updated: int = 0
    api_s: float = 0.0
    db_s: float = 0.0
    error: str = ""
    retries: int = 0
    rate_limited: int = 0
    queueing_lock: str = ""
    series: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)
    seq: int = 0


@dataclass(frozen=True, slots=True)
class WorkerLoad:
    """One worker's finished jobs over a window."""

    worker: str
    jobs: int
    failed: int
    bars: int
    requests: int
    last_finished_s_ago: float


class JobTables:
    """mdw's queue tables on a small asyncpg pool (shared with the worker's rate budget)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, url: str, *, max_size: int = 2) -> JobTables:
        return cls(await create_pool(url, max_size=max_size))

    async def close(self) -> None:
        await self.pool.close()

    async def record(self, r: JobResult) -> None:
        """Store one job's outcome (a retried job overwrites its row) and wake followers."""
        async with pg_errors("record job result"), self.pool.acquire() as conn:
            await conn.execute(
                _RECORD, r.job_id, r.run_id, r.kind, r.ticker, r.timeframe, r.start_ms, r.end_ms, r.worker,
                r.ok, r.requests, r.bars, r.inserted, r.updated, r.api_s, r.db_s, r.error[:2000],
                json.dumps(r.detail), r.retries, r.rate_limited, r.queueing_lock, list(r.series))

    async def since(self, seq: int, limit: int = 5000) -> list[JobResult]:
        """Results recorded after ``seq``, oldest first (at most ``limit``)."""
        async with pg_errors("read job results"), self.pool.acquire() as conn:
            rows = await conn.fetch(_SINCE, seq, limit)
        return [_result(r) for r in rows]

    async def results(self, job_ids: list[int]) -> list[JobResult]:
        """The recorded results of ``job_ids`` (those that have one)."""
        if not job_ids:
            return []
        async with pg_errors("read job results"), self.pool.acquire() as conn:
            rows = await conn.fetch(_OF, job_ids)
        return [_result(r) for r in rows]

    async def last_seq(self) -> int:
        async with pg_errors("read job results"), self.pool.acquire() as conn:
            return int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM mdw_job_results"))

    async def succeeded_since(self, locks: list[str], since_s: float) -> dict[str, int]:
        """Windows (by queueing lock) whose job succeeded less than ``since_s`` seconds ago -> job id."""
        async with pg_errors("read job results"), self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT ON (queueing_lock) queueing_lock, job_id FROM mdw_job_results"
                " WHERE ok AND queueing_lock = ANY($1::text[])"
                " AND finished_at >= now() - make_interval(secs => $2) ORDER BY queueing_lock, seq DESC",
                locks, since_s)
        return {str(r["queueing_lock"]): int(r["job_id"]) for r in rows}

    @contextlib.asynccontextmanager
    async def defer_lock(self) -> AsyncIterator[None]:
        """Serialise deferrers (CLI runs, the service, the tick): their check-then-insert is atomic.

        A session lock on a connection held for the block (so the pool needs one more for the
        queries inside it); a deferrer that dies releases it.
        """
        async with pg_errors("defer lock"), self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", DEFER_LOCK_KEY)
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", DEFER_LOCK_KEY)

    async def listen(self, callback: Listener) -> asyncpg.Connection:
        """A connection of the pool that calls ``callback`` on each job-done notification."""
        conn = await self.pool.acquire()
        await conn.add_listener(DONE_CHANNEL, callback)
        return conn

    async def unlisten(self, conn: asyncpg.Connection, callback: Listener) -> None:
        with contextlib.suppress(Exception):
            await conn.remove_listener(DONE_CHANNEL, callback)
        await self.pool.release(conn)

    async def heartbeat(self, name: str, concurrency: int, rate_limit: str) -> None:
        async with pg_errors("worker heartbeat"), self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO mdw_workers (name, concurrency, rate_limit) VALUES ($1, $2, $3)"
                " ON CONFLICT (name) DO UPDATE SET heartbeat_at = now(), concurrency = EXCLUDED.concurrency,"
                " rate_limit = EXCLUDED.rate_limit", name, concurrency, rate_limit)

    async def unregister(self, name: str) -> None:
        async with pg_errors("worker unregister"), self.pool.acquire() as conn:
            await conn.execute("DELETE FROM mdw_workers WHERE name = $1", name)

    async def workers_alive(self, within_s: float = 60.0) -> int:
        async with pg_errors("read workers"), self.pool.acquire() as conn:
            return int(await conn.fetchval(
                "SELECT count(*) FROM mdw_workers WHERE heartbeat_at > now() - make_interval(secs => $1)",
                within_s))

    async def load(self, window_s: float) -> list[WorkerLoad]:
        async with pg_errors("read worker throughput"), self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT worker, count(*) AS jobs, count(*) FILTER (WHERE NOT ok) AS failed,"
                " coalesce(sum(bars), 0) AS bars, coalesce(sum(requests), 0) AS requests,"
                " extract(epoch FROM now() - max(finished_at))::float8 AS ago FROM mdw_job_results"
                " WHERE finished_at > now() - make_interval(secs => $1) GROUP BY worker ORDER BY worker",
                window_s)
        return [WorkerLoad(str(r["worker"]), int(r["jobs"]), int(r["failed"]), int(r["bars"]),
                           int(r["requests"]), float(r["ago"])) for r in rows]

    async def prune(self, older_than_s: float) -> int:
        """Forget results (and silent workers) older than ``older_than_s``; returns rows deleted."""
        async with pg_errors("prune job results"), self.pool.acquire() as conn:
            done = await conn.execute(
                "DELETE FROM mdw_job_results WHERE finished_at < now() - make_interval(secs => $1)",
                older_than_s)
            await conn.execute(
                "DELETE FROM mdw_workers WHERE heartbeat_at < now() - make_interval(secs => $1)",
                older_than_s)
        return int(str(done).rsplit(" ", 1)[-1])
