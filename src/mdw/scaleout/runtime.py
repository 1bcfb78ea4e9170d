"""What a worker process holds while it runs jobs: one store, one vendor client, one shared limiter.

Jobs of one worker share them (a worker runs ``concurrency`` jobs at once), so a worker opens the
same pools however many jobs it runs: the store's (bars, ledger), a small one for mdw's
queue tables and the rate budget, and procrastinate's own (docs/scale-out.md counts them).
Every job executes the backfill
engine's own unit of work (:func:`mdw.backfill.fetch.fetch_writes` + ``Store.write_bars``); this
module only adds the no-op check, timing and counting around it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from mdw.backfill.fetch import (
    ActionsRoute,
    VendorSource,
    as_actions,
    derive_writes,
    fetch_actions,
    fetch_writes,
)
from mdw.backfill.plan import ACTIONS_PER_TRANSACTION, ActionsRequest, DeriveTask, PlannedRequest
from mdw.budget import SharedLimiter, budget_name, lease_for
from mdw.config import Settings
from mdw.domain import BarBatch, RangeSet, Timeframe
from mdw.errors import MdwError, StoreError, VendorUnavailable
from mdw.polygon.actions import ActionKind, Listed
from mdw.polygon.events import RateLimitedEvent, RetryEvent, VendorEvent
from mdw.polygon.paging import PageLink
from mdw.scaleout.codec import Work
from mdw.scaleout.status import QueueMetrics
from mdw.store.base import ActionWrite, Dataset, Store, WriteResult
from mdw.store.budget import PgBudget
from mdw.store.pgjobs import JobTables

MAX_SPANS = 64  # vendor-busy spans kept per job (a window job is one page: one span)


@dataclass(slots=True)
class WorkOutcome:
    """What one job did, as recorded in ``mdw_job_results``.

    ``retries`` and ``rate_limited`` are the vendor client's retries and 429s made for this job's
    requests; ``api_spans`` are the (epoch s) spans during which the job awaited the vendor, so
    the follower can compute a run's vendor-busy wall time exactly as a local run does.
    """

    requests: int = 0
    bars: int = 0
    written: WriteResult = field(default_factory=WriteResult)
    api_s: float = 0.0
    db_s: float = 0.0
    noop: bool = False
    retries: int = 0
    rate_limited: int = 0
    api_spans: list[tuple[float, float]] = field(default_factory=list)


# The outcome of the job the current task runs: vendor events are emitted synchronously inside the
# request's own task, so a retry or a 429 is credited to its job even with concurrent jobs (a
# stats delta around a job would also count the other jobs' retries).
_CURRENT: ContextVar[WorkOutcome | None] = ContextVar("mdw_current_job", default=None)


def count_vendor_event(event: VendorEvent) -> None:
    """Credit a retry or a 429 to the job whose task the vendor client is running in."""
    out = _CURRENT.get()
    if out is None:
        return
    if isinstance(event, RetryEvent):
        out.retries += 1
    elif isinstance(event, RateLimitedEvent):
        out.rate_limited += 1


class _Counting:
    """A :class:`VendorSource` that counts logical requests (every page is one, failed ones too) and
    the time spent awaiting them; the client's retries come on top (see :meth:`WorkerRuntime.execute`)."""

    def __init__(self, inner: VendorSource) -> None:
        self.inner = inner
        self.requests = 0
        self.api_s = 0.0
        self.spans: list[tuple[float, float]] = []

    def _busy(self, started: float) -> None:
        """Add the time since ``started`` (perf counter) to the total and to the spans."""
        took = time.perf_counter() - started
        self.api_s += took
        end = time.time()
        span = (end - took, end)
        if self.spans and (span[0] <= self.spans[-1][1] or len(self.spans) >= MAX_SPANS):
            self.spans[-1] = (self.spans[-1][0], end)
        else:
            self.spans.append(span)

    async def aggregate_pages(
        self, ticker: str, timeframe: Timeframe | str, start_ms: int, end_ms: int, adjusted: bool = False,
        page_link: PageLink | None = None,
    ) -> AsyncIterator[BarBatch]:
        pages = self.inner.aggregate_pages(ticker, timeframe, start_ms, end_ms, adjusted, page_link)
        while True:
            t0 = time.perf_counter()
            try:
                page = await anext(pages)
            except StopAsyncIteration:
                return
            except VendorUnavailable:
                raise  # the open breaker answered: nothing was sent
            except MdwError:
                self.requests += 1
                raise
            finally:
                self._busy(t0)
            self.requests += 1
            yield page

    async def grouped_daily(self, day: date, market: str, adjusted: bool = False) -> dict[str, BarBatch]:
        result: dict[str, BarBatch] = await self._timed(self.inner.grouped_daily(day, market, adjusted))
        return result

    async def actions_listing(
        self, kind: ActionKind, first: date, last: date, tickers: tuple[str, ...] = (), *, v1: bool = True,
    ) -> list[Listed]:
        listing = self.inner.actions_listing(kind, first, last, tickers, v1=v1)
        result: list[Listed] = await self._timed(listing)
        return result

    async def ticker_known(self, ticker: str) -> bool:
        return await self.inner.ticker_known(ticker)  # cached by the client: mostly no request

    async def _timed(self, awaitable: Any) -> Any:
        t0 = time.perf_counter()
        try:
            result = await awaitable
        except VendorUnavailable:
            raise  # the open breaker answered: nothing was sent
        except MdwError:
            self.requests += 1
            raise
        finally:
            self._busy(t0)
        self.requests += 1
        return result


async def _covered(store: Store, work: Work) -> bool:
    """True when every range the work would mark covered is already in the ledger."""
    if isinstance(work, PlannedRequest):
        for target in work.targets:
            held = await store.coverage(target.ticker, Dataset.BARS, str(target.timeframe))
            if RangeSet.of([target.covers]) - held:
                return False
        return True
    if isinstance(work, ActionsRequest):
        for ticker in work.tickers or (work.ticker,):
            held = await store.coverage(ticker, Dataset(work.kind))
            if RangeSet.of([work.covers]) - held:
                return False
        return True
    held = await store.coverage(work.ticker, Dataset.BARS, str(work.target))
    return not RangeSet.of([work.covers]) - held


class WorkerRuntime:
    """The open resources of one worker process, handed to every job through its context."""

    def __init__(self, settings: Settings, store: Store, client: VendorSource, limiter: SharedLimiter | None,
                 name: str, jobs: JobTables | None = None) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.limiter = limiter
        self.name = name
        self.jobs = jobs
        self.metrics = QueueMetrics()
        self.actions_route = ActionsRoute()
        subscribe: Callable[[Callable[[VendorEvent], None]], Callable[[], None]] | None = getattr(
            client, "subscribe", None)
        self._unsubscribe = subscribe(count_vendor_event) if subscribe is not None else None

    @property
    def tables(self) -> JobTables:
        """mdw's queue tables (a runtime opened by :meth:`open` always has them).

        Raises:
            StoreError: this runtime was built without them.
        """
        if self.jobs is None:
            raise StoreError("this worker runtime has no queue tables (open it with WorkerRuntime.open)")
        return self.jobs

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
        from mdw.polygon import PolygonClient
        from mdw.store import open_store

        key = settings.api_key or ""
        store = await open_store(settings.database_url)
        jobs: JobTables | None = None
        limiter: SharedLimiter | None = None
        try:
            jobs = await JobTables.connect(settings.database_url, max_size=3)
            if not settings.rate_limit.unlimited:
                # The key's one budget, shared with the other workers and any host process on it.
                limiter = SharedLimiter(PgBudget(jobs.pool), settings.rate_limit, name=budget_name(key),
                                        margin_s=margin_s, spacing_cap_s=spacing_cap_s,
                                        lease_s=lease_for(settings))
                await limiter.open()
            client = PolygonClient.from_settings(settings, limiter=limiter)
            await client.__aenter__()
        except BaseException:
            if limiter is not None:
                await limiter.close()
            if jobs is not None:
                await jobs.close()
            await store.close()
            raise
        return cls(settings, store, client, limiter, name, jobs)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        aclose = getattr(self.client, "aclose", None)
        if aclose is not None:
            await aclose()
        if self.limiter is not None:
            await self.limiter.close()
        if self.jobs is not None:
            await self.jobs.close()
        await self.store.close()

    async def execute(self, work: Work, out: WorkOutcome | None = None) -> WorkOutcome:
        """Run one unit exactly as the local engine would; a window already covered is a no-op.

        ``out`` (filled in place, also when this raises) receives the counts, so a failed job
        still reports the requests, retries and 429s it cost.

        Raises:
            MdwError: the vendor or the store failed (after the client's own retries); the job
                queue decides whether to retry the job.
        """
        out = WorkOutcome() if out is None else out
        if await _covered(self.store, work):
            out.noop = True
            return out
        source = _Counting(self.client)
        token = _CURRENT.set(out)
        try:
            await self._execute(work, source, out)
        finally:
            _CURRENT.reset(token)
            # Every attempt is a request, as in a local run's report: logical calls plus retries.
            out.requests = source.requests + out.retries
            out.api_s, out.api_spans = source.api_s, source.spans
        return out

    async def _execute(self, work: Work, source: _Counting, out: WorkOutcome) -> None:
        if isinstance(work, PlannedRequest):
            async for writes in fetch_writes(source, work):
                out.bars += sum(len(w.batch) for w in writes if w.batch.source != "derived")
                out.written = out.written + await self._write(out, writes)
        elif isinstance(work, ActionsRequest):
            listed = await fetch_actions(source, work, self.actions_route)
            t0 = time.perf_counter()
            actions: list[ActionWrite] = []
            for ticker, rows in listed.items():
                divs, splits = as_actions(work.kind, rows)
                actions.append(ActionWrite(ticker, divs if work.kind == "dividends" else None,
                                          splits if work.kind == "splits" else None, work.covers))
                out.bars += len(rows)
            for i in range(0, len(actions), ACTIONS_PER_TRANSACTION):  # a few transactions, not one a ticker
                out.written = out.written + await self.store.actions.write_many(
                    actions[i:i + ACTIONS_PER_TRANSACTION])
            out.db_s += time.perf_counter() - t0
        else:
            assert isinstance(work, DeriveTask)
            out.written = await self._write(out, await derive_writes(self.store, work))

    async def _write(self, out: WorkOutcome, writes: Any) -> WriteResult:
        t0 = time.perf_counter()
        try:
            result: WriteResult = await self.store.write_bars(writes)
            return result
        finally:
            out.db_s += time.perf_counter() - t0
