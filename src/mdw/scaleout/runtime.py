"""What a worker process holds while it runs jobs: one store, one vendor client, one shared limiter.

Jobs of one worker share them (a worker runs ``concurrency`` jobs at once), so a worker opens one
connection pool and one HTTP pool however many jobs it runs. Every job executes the backfill
engine's own unit of work (:func:`mdw.backfill.fetch.fetch_writes` + ``Store.write_bars``); this
module only adds the no-op check, timing and counting around it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from mdw.backfill.fetch import VendorSource, derive_writes, fetch_actions, fetch_writes
from mdw.backfill.plan import ActionsRequest, DeriveTask, PlannedRequest
from mdw.config import Settings
from mdw.domain import BarBatch, Dividend, RangeSet, Split, Timeframe
from mdw.scaleout.codec import Work
from mdw.scaleout.pglimiter import PgRateLimiter, limiter_name
from mdw.scaleout.status import QueueMetrics
from mdw.store.base import Dataset, Store, WriteResult


@dataclass(slots=True)
class WorkOutcome:
    """What one job did, as recorded in ``mdw_job_results``."""

    requests: int = 0
    bars: int = 0
    written: WriteResult = field(default_factory=WriteResult)
    api_s: float = 0.0
    db_s: float = 0.0
    noop: bool = False


class _Counting:
    """A :class:`VendorSource` that counts requests (every page is one) and time spent awaiting them."""

    def __init__(self, inner: VendorSource) -> None:
        self.inner = inner
        self.requests = 0
        self.api_s = 0.0

    async def aggregate_pages(
        self, ticker: str, timeframe: Timeframe | str, start_ms: int, end_ms: int, adjusted: bool = False
    ) -> AsyncIterator[BarBatch]:
        pages = self.inner.aggregate_pages(ticker, timeframe, start_ms, end_ms, adjusted)
        while True:
            t0 = time.perf_counter()
            try:
                page = await anext(pages)
            except StopAsyncIteration:
                return
            finally:
                self.api_s += time.perf_counter() - t0
            self.requests += 1
            yield page

    async def grouped_daily(self, day: date, market: str, adjusted: bool = False) -> dict[str, BarBatch]:
        result: dict[str, BarBatch] = await self._timed(self.inner.grouped_daily(day, market, adjusted))
        return result

    async def dividends(
        self, ticker: str, start: date | None = None, end: date | None = None
    ) -> list[Dividend]:
        result: list[Dividend] = await self._timed(self.inner.dividends(ticker, start, end))
        return result

    async def splits(self, ticker: str, start: date | None = None, end: date | None = None) -> list[Split]:
        result: list[Split] = await self._timed(self.inner.splits(ticker, start, end))
        return result

    async def _timed(self, awaitable: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await awaitable
        finally:
            self.api_s += time.perf_counter() - t0
            self.requests += 1


async def _covered(store: Store, work: Work) -> bool:
    """True when every range the work would mark covered is already in the ledger."""
    if isinstance(work, PlannedRequest):
        for target in work.targets:
            held = await store.coverage(target.ticker, Dataset.BARS, str(target.timeframe))
            if RangeSet.of([target.covers]) - held:
                return False
        return True
    if isinstance(work, ActionsRequest):
        held = await store.coverage(work.ticker, Dataset(work.kind))
        return not RangeSet.of([work.covers]) - held
    held = await store.coverage(work.ticker, Dataset.BARS, str(work.target))
    return not RangeSet.of([work.covers]) - held


class WorkerRuntime:
    """The open resources of one worker process, handed to every job through its context."""

    def __init__(self, settings: Settings, store: Store, client: VendorSource, limiter: PgRateLimiter | None,
                 name: str) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.limiter = limiter
        self.name = name
        self.metrics = QueueMetrics()

    def count(self, ok: bool, bars: int) -> None:
        """Feed this worker's Prometheus counters with one finished job."""
        self.metrics.done.labels(outcome="ok" if ok else "failed").inc()
        self.metrics.bars.inc(bars)
        if self.limiter is not None:
            self.metrics.limiter_grants.set(self.limiter.stats.grants)
            self.metrics.limiter_round_trips.set(self.limiter.stats.round_trips)

    @classmethod
    async def open(cls, settings: Settings, name: str, *, margin_s: float | None = None,
                   spacing_cap_s: float = 0.05) -> WorkerRuntime:
        """Open the store, the shared limiter and a vendor client paced by it.

        ``margin_s`` widens the limiter's window to absorb the jitter between our grant and the
        vendor's arrival stamp (network, or scheduling on a loaded host).

        Raises:
            ConfigError: no vendor key is configured.
            StoreError: the database is unreachable.
        """
        from mdw.store import open_store
        from mdw.vendor import PolygonClient

        key = settings.api_key or ""
        store = await open_store(settings.database_url)
        limiter: PgRateLimiter | None = None
        try:
            limiter = PgRateLimiter(settings.database_url, settings.rate_limit,
                                    name=limiter_name(settings.polygon_base_url, key), margin_s=margin_s,
                                    spacing_cap_s=spacing_cap_s)
            await limiter.open()
            client = PolygonClient.from_settings(settings, limiter=limiter)
            await client.__aenter__()
        except BaseException:
            if limiter is not None:
                await limiter.close()
            await store.close()
            raise
        return cls(settings, store, client, limiter, name)

    async def close(self) -> None:
        aclose = getattr(self.client, "aclose", None)
        if aclose is not None:
            await aclose()
        if self.limiter is not None:
            await self.limiter.close()
        await self.store.close()

    async def execute(self, work: Work) -> WorkOutcome:
        """Run one unit exactly as the local engine would; a window already covered is a no-op.

        Raises:
            MdwError: the vendor or the store failed (after the client's own retries); the job
                queue decides whether to retry the job.
        """
        if await _covered(self.store, work):
            return WorkOutcome(noop=True)
        source = _Counting(self.client)
        out = WorkOutcome()
        if isinstance(work, PlannedRequest):
            async for writes in fetch_writes(source, work):
                out.bars += sum(len(w.batch) for w in writes if w.batch.source != "derived")
                out.written = out.written + await self._write(out, writes)
        elif isinstance(work, ActionsRequest):
            divs, splits = await fetch_actions(source, work)
            t0 = time.perf_counter()
            out.written = await self.store.write_corporate_actions(
                work.ticker, divs if work.kind == "dividends" else None,
                splits if work.kind == "splits" else None, work.covers)
            out.db_s += time.perf_counter() - t0
            out.bars = len(divs) + len(splits)
        else:
            assert isinstance(work, DeriveTask)
            out.written = await self._write(out, await derive_writes(self.store, work))
        out.requests, out.api_s = source.requests, source.api_s
        return out

    async def _write(self, out: WorkOutcome, writes: Any) -> WriteResult:
        t0 = time.perf_counter()
        try:
            result: WriteResult = await self.store.write_bars(writes)
            return result
        finally:
            out.db_s += time.perf_counter() - t0
