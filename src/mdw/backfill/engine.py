"""The engine: one asyncio pipeline from planned requests to committed bars.

Fetch workers (as many as the client allows in flight) take requests from one shared list; the
client's global limiter paces them, so there is no stagger and no fixed sleep anywhere. Every
fetched page goes onto a bounded queue read by ONE writer task, which groups small pages into
fewer transactions (bars and coverage together). The queue bounds memory whatever the length of
history. A failing request fails only its series; a ticker the vendor does not know stops only
that ticker. Invalid bars (the vendor's, after every retry, or refused by the store) fail their
request and go to the store's quarantine, counted in the report. When ``stop`` is set, fetching
stops, the writer commits what was already fetched, and the partial report is returned with status
``interrupted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from mdw.backfill.boundary import Boundary, day_span, within
from mdw.backfill.fetch import (
    ActionsRoute,
    VendorSource,
    absent_request,
    as_actions,
    bar_count,
    derive_writes,
    factor_mismatches,
    fetch_actions,
    fetch_writes,
    grouped_answer,
)
from mdw.backfill.plan import (
    ACTIONS_PER_TRANSACTION,
    ActionsKey,
    ActionsRequest,
    DeriveTask,
    OutcomeKey,
    Plan,
    PlannedRequest,
    Target,
)
from mdw.backfill.quarantine import quarantine_error
from mdw.backfill.report import BusyClock, Progress, RunReport, SeriesOutcome
from mdw.clock import SYSTEM_CLOCK, Clock
from mdw.domain import DAY_MS, AssetClass, Dividend, RangeSet, SeriesKey, Split, TimeRange
from mdw.errors import (
    MdwError,
    OutsidePlan,
    StoreError,
    ValidationError,
    VendorAuthError,
    VendorNotFound,
    VendorUnavailable,
)
from mdw.logs import get_logger
from mdw.store.base import ActionWrite, BarWrite, Store, WriteResult, WriteSize

log = get_logger(__name__)
T = TypeVar("T")
DERIVE_CHUNK_MS = 31 * DAY_MS
MAX_OUTAGE_S = 900.0  # how long a run waits out an open vendor circuit before failing what is left

Job = PlannedRequest | ActionsRequest | DeriveTask


@dataclass(slots=True)
class _Item:
    """A unit on the writer's queue: bar writes, or the corporate actions of a listing's tickers
    (``ticker -> (dividends, splits)``, committed in one transaction)."""

    job: Job
    writes: list[BarWrite] = field(default_factory=list)
    actions: dict[str, tuple[list[Dividend], list[Split]]] | None = None
    final: bool = True

    @property
    def rows(self) -> int:
        return bar_count(self.writes) + sum(len(d) + len(s) for d, s in (self.actions or {}).values())


def job_series(job: Job) -> list[SeriesKey | ActionsKey]:
    """The report rows a job counts towards."""
    if isinstance(job, PlannedRequest):
        return list(dict.fromkeys(t.key for t in job.targets))
    if isinstance(job, ActionsRequest):
        return list(job.keys)
    return [SeriesKey(job.ticker, job.target)]


def job_ticker(job: Job) -> str:
    return job.ticker


def _split_derive(task: DeriveTask) -> list[DeriveTask]:
    """Cut a long derive task into month-sized pieces at local midnights (flat memory)."""
    from mdw.backfill.planner import floor_window

    out: list[DeriveTask] = []
    start = task.covers.start_ms
    while start < task.covers.end_ms:
        end = min(task.covers.end_ms, floor_window(task.asset, task.target, start + DERIVE_CHUNK_MS))
        out.append(DeriveTask(task.ticker, task.asset, task.source, task.target, TimeRange(start, end)))
        start = end
    return out


class Pipeline:
    """One run of a plan: fetch workers, the bounded queue, the writer, and the report."""

    def __init__(
        self, store: Store, client: VendorSource, plan: Plan, report: RunReport, *,
        workers: int = 16, queue_size: int | None = None, progress: Progress | None = None,
        stop: asyncio.Event | None = None, max_outage_s: float = MAX_OUTAGE_S,
        boundary: Boundary | None = None, clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        self.client = client
        self.plan = plan
        self.report = report
        self.progress = progress
        self.stop = stop or asyncio.Event()
        self.workers = max(1, workers)
        self.write_size: WriteSize = store.write_size
        queued = self.write_size.queued if queue_size is None else queue_size
        self.queue: asyncio.Queue[_Item | None] = asyncio.Queue(maxsize=max(1, queued))
        self.api = BusyClock()
        self.dead_tickers: dict[str, str] = {}
        self.abort_reason: str | None = None
        self.max_outage_s = max_outage_s
        self.clock = clock
        self._outage_since: float | None = None
        self.boundary = boundary
        self.actions_route = ActionsRoute()
        self.outside: dict[OutcomeKey, RangeSet] = {}
        for series_key, refused in plan.outside_plan:
            self._outside(series_key, refused)
        # Longest first: a paged request over a long gap starts early, so no worker is left alone
        # with one at the end while the others idle (the pages of one request are sequential).
        # Grouped requests go first among the rest: the sessions a ticker was absent from are asked
        # for in one request once the market's grouped requests are all answered.
        jobs: list[Job] = [*plan.actions, *sorted(plan.requests,
                                                  key=lambda r: (-r.expected_pages, r.kind != "grouped"))]
        for task in plan.derives:
            jobs.extend(_split_derive(task))
        self._jobs: deque[Job] = deque(jobs)
        self._grouped_left: dict[AssetClass, int] = {}
        for r in plan.requests:
            if r.kind == "grouped":
                self._grouped_left[r.asset] = self._grouped_left.get(r.asset, 0) + 1
        self._absent: dict[AssetClass, dict[str, list[tuple[Target, int]]]] = {}
        self._paging = 0  # paged requests whose first page may still add requests (their remainder)
        self._more = asyncio.Event()
        # tickers the vendor knows (stored, or answered with bars): an empty answer needs no check
        self.known: set[str] = set(plan.stored)
        for job in jobs:
            for key in job_series(job):
                self._outcome(key).requests_planned += 1
        report.planned_requests = plan.request_count
        report.derived_tasks = len(plan.derives)

    def _outcome(self, key: OutcomeKey) -> SeriesOutcome:
        out = self.report.series.get(key)
        if out is None:
            out = self.report.series[key] = SeriesOutcome(key)
        return out

    # ------------------------------------------------------------------ run

    async def run(self) -> bool:
        """Run to the end or until ``stop``; returns True when it was interrupted."""
        await self._probe_history()
        writer = asyncio.create_task(self._writer(), name="backfill-writer")
        fetchers = [asyncio.create_task(self._worker(), name=f"backfill-fetch-{i}")
                    for i in range(self.workers)]
        stopper = asyncio.create_task(self.stop.wait(), name="backfill-stop-watch")
        try:
            pending: set[asyncio.Task[object]] = {*fetchers, writer, stopper}
            while True:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if writer in done:
                    writer.result()  # a writer that ends early has failed: raise its error
                    raise StoreError("the backfill writer stopped before the fetchers")
                if stopper in done:
                    for task in fetchers:
                        task.cancel()  # in-flight requests are abandoned; fetched pages still commit
                    await asyncio.gather(*fetchers, return_exceptions=True)
                    break
                for finished in done:
                    finished.result()  # a fetcher's unexpected error stops the engine loudly
                if all(t.done() for t in fetchers):
                    break
            await self.queue.put(None)
            await writer
        finally:
            stopper.cancel()
            for task in (*fetchers, writer):
                task.cancel()
            await asyncio.gather(stopper, *fetchers, writer, return_exceptions=True)
        return self.stop.is_set()

    # ------------------------------------------------------------------ fetching

    async def _next_job(self) -> Job | None:
        """The next job; None when none is left and no grouped request can still add one."""
        while not self._jobs:
            if (not any(self._grouped_left.values()) and not self._paging) or self.stop.is_set():
                return None
            self._more.clear()
            await self._more.wait()
        return self._jobs.popleft()

    async def _worker(self) -> None:
        while (job := await self._next_job()) is not None:
            if self.stop.is_set():
                return
            try:
                await self._work(job)
            finally:
                if isinstance(job, PlannedRequest) and job.kind == "grouped":
                    self._grouped_finished(job.asset)

    async def _work(self, job: Job) -> None:
        skip = self.abort_reason or self.dead_tickers.get(job_ticker(job))
        if skip:
            self._failed(job, skip)
            return
        try:
            await self._run_job_through_outages(job)
        except VendorNotFound as exc:
            self.dead_tickers[job_ticker(job)] = f"ticker not found by the vendor ({exc})"
            self._failed(job, str(exc))
        except VendorAuthError as exc:
            self.abort_reason = str(exc)
            self._failed(job, str(exc))
        except ValidationError as exc:  # the vendor kept serving invalid bars: keep them aside
            self._failed(job, await self._quarantine(exc))
        except MdwError as exc:
            self._failed(job, str(exc))

    def _grouped_finished(self, asset: AssetClass) -> None:
        """One grouped request of ``asset`` is done; after the last, ask for the absent sessions.

        A ticker absent from some sessions' grouped answers (and not known to be listed then) is
        asked for once over all of them, following ``next_url``: a thin name costs its own daily
        pages, not one request per session it did not trade (ADR 0018). Until that answer is
        committed its sessions are not covered, so an interrupted run asks for them again.
        """
        self._grouped_left[asset] -= 1
        if self._grouped_left[asset] == 0:
            for ticker, absent in sorted(self._absent.pop(asset, {}).items()):
                req = absent_request(asset, ticker, absent)
                for key in job_series(req):
                    self._outcome(key).requests_planned += 1
                self._jobs.append(req)
        self._more.set()

    async def _run_job_through_outages(self, job: Job) -> None:
        """Run a job; while the vendor's circuit is open, wait for the next probe and run it again.

        An open breaker says the vendor is down, not that this job is bad: failing every remaining
        job in milliseconds would end the run for an outage of a minute. The wait follows the
        breaker's own cool-down (one probe per cool-down reaches the vendor); after
        ``max_outage_s`` of continuous outage, or on ``stop``, the job fails as before.
        """
        polls = 0
        while True:
            try:
                await self._run_job(job)
            except VendorUnavailable as exc:
                now = self.clock.monotonic()
                if self._outage_since is None:
                    self._outage_since = now
                if self.stop.is_set() or now - self._outage_since >= self.max_outage_s:
                    raise
                # the cool-down left, or (a probe is in flight) a short backoff until it settles
                polls += 1
                wait = exc.retry_after if exc.retry_after else min(1.0, 0.05 * 2 ** min(polls, 5))
                await self.clock.sleep(wait, self.stop)
                continue
            self._outage_since = None
            return

    async def _timed(self, awaitable: Awaitable[T]) -> T:
        entered = self.api.enter()
        try:
            return await awaitable
        finally:
            self.api.leave(entered)

    async def _run_job(self, job: Job) -> None:
        if isinstance(job, DeriveTask):
            await self.queue.put(_Item(job, await derive_writes(self.store, job)))
            return
        if isinstance(job, ActionsRequest):
            listed = await self._timed(fetch_actions(self.client, job, self.actions_route))
            for rows in listed.values():
                for problem in factor_mismatches(rows):
                    self.report.factor_mismatches += 1
                    log.warning("vendor adjustment factor differs from mdw's",
                                action="backfill.factor_mismatch", detail=problem)
            # a market-wide listing commits in a few transactions, not one per ticker
            tickers = list(listed)
            for i in range(0, len(tickers), ACTIONS_PER_TRANSACTION):
                chunk = tickers[i:i + ACTIONS_PER_TRANSACTION]
                part = replace(job, tickers=tuple(chunk)) if job.tickers else job
                await self.queue.put(_Item(part, actions={t: as_actions(job.kind, listed[t]) for t in chunk}))
            return
        await self._run_within_plan(job)

    async def _run_within_plan(self, job: PlannedRequest) -> None:
        """Run a request from the plan's boundary on; an ``outside_plan`` refusal moves the boundary.

        The part before the boundary is reported as ``outside_plan`` (not asked again, not covered,
        not a failure); the rest is asked again.
        """
        while True:
            async with self.boundary.gate(job.fetch.start_ms) if self.boundary else contextlib.nullcontext():
                first = self.boundary.first_ms if self.boundary is not None else None
                req = within(job, first)
                if req is not job:
                    end = req.fetch.start_ms if req is not None else job.fetch.end_ms
                    for t in job.targets:
                        if t.covers.start_ms < end:
                            self._outside(t.key, TimeRange(t.covers.start_ms, min(end, t.covers.end_ms)))
                if req is None:
                    await self.queue.put(_Item(job, [], final=True))
                    return
                try:
                    await self._run_request(req)
                except OutsidePlan as exc:
                    if self.boundary is None:
                        raise
                    await self.boundary.learn(req.fetch.start_ms, req.fetch.end_ms, exc)
                    continue
                if self.boundary is not None:
                    self.boundary.answered(req.fetch.start_ms)
                return

    async def _probe_history(self) -> None:
        """Before paged requests run with the plan's history unknown: probe the earliest one.

        A paged request spans months or years; a vendor that clips it at the plan's boundary would
        answer without a word, and the range before would be marked covered without its bars. The
        first window alone lies wholly before any boundary after it, so it is refused (and the
        boundary learned, then probed again from there) or answered (and the history reaches it,
        remembered for later runs): one request, where the plan counts it.
        """
        boundary = self.boundary
        if boundary is None:
            return
        paged = [r for r in self.plan.requests if r.kind == "aggs" and r.pages > 1]
        while True:
            inside = [r for r in (within(p, boundary.first_ms) for p in paged) if r is not None]
            if not inside:
                return
            first = min(inside, key=lambda r: r.fetch.start_ms)
            if not boundary.unproven(first.fetch.start_ms):
                return
            try:
                await self._probe(first)
                return
            except OutsidePlan as exc:
                await boundary.learn(first.fetch.start_ms, first.fetch.end_ms, exc)
            except MdwError as exc:  # the requests themselves will meet it and report it
                log.warning("history probe failed", action="backfill.probe_failed", reason=str(exc))
                return

    async def _probe(self, req: PlannedRequest) -> None:
        """Ask for the first window of ``req``; answered: the history reaches its start."""
        from mdw.backfill.planner import next_window

        start = req.fetch.start_ms
        end = min(req.fetch.end_ms, next_window(req.asset, req.timeframe, start))

        async def window() -> None:
            async for _ in self.client.aggregate_pages(req.ticker, req.timeframe, start, end):
                pass  # one window: one page

        await self._timed(window())
        assert self.boundary is not None
        await self.boundary.reached(start)

    def _outside(self, key: OutcomeKey, rng: TimeRange) -> None:
        held = self.outside[key] = self.outside.get(key, RangeSet()) | RangeSet.of([rng])
        self._outcome(key).outside_plan = day_span(TimeRange(held.ranges[0].start_ms, held.ranges[-1].end_ms))

    async def _run_request(self, job: PlannedRequest) -> None:
        if job.kind == "grouped":
            writes, absent = await self._timed(grouped_answer(self.client, job))
            self.known.update(w.batch.ticker for w in writes if len(w.batch))
            by_ticker = self._absent.setdefault(job.asset, {})
            for t in absent:
                by_ticker.setdefault(t.ticker, []).append((t, job.fetch.end_ms))
            await self.queue.put(_Item(job, writes))
            return
        # A long request whose first page comes back full hands the rest of its range back as
        # requests of about a page each, run by the other workers in parallel (ADR 0018).
        paging = job.kind == "aggs" and job.pages > 1
        spill: list[PlannedRequest] | None = [] if paging else None
        self._paging += paging
        pages = fetch_writes(self.client, job, self.known, spill)
        held: list[BarWrite] | None = None
        try:
            while True:
                try:
                    writes = await self._timed(anext(pages))
                except StopAsyncIteration:
                    break
                if held is not None:
                    await self.queue.put(_Item(job, held, final=False))
                held = writes
                if spill:
                    self._add_jobs(spill)
                    spill = None
        finally:
            await pages.aclose()
            if paging:
                self._paging -= 1
                self._more.set()
        await self.queue.put(_Item(job, held or [], final=True))

    def _add_jobs(self, jobs: list[PlannedRequest]) -> None:
        """Requests made during the run join the shared list, first in line (counted as planned)."""
        for req in reversed(jobs):
            for key in job_series(req):
                self._outcome(key).requests_planned += 1
            self._jobs.appendleft(req)
        self._more.set()

    def _failed(self, job: Job, reason: str) -> None:
        log.warning("backfill request failed", action="backfill.request_failed",
                    series=[str(k) for k in job_series(job)], reason=reason)
        for key in job_series(job):
            out = self._outcome(key)
            out.requests_failed += 1
            out.reason = out.reason or reason
        if self.progress:
            self.progress.advanced(job_series(job)[0], False, 0)

    # ------------------------------------------------------------------ writing

    async def _writer(self) -> None:
        while True:
            first = await self.queue.get()
            if first is None:
                return
            group = [first]
            rows = first.rows
            finished = False
            size = self.write_size
            # A store that asks for it (min_rows) gets larger groups: while fetches still run the
            # writer waits for more pages, at most max_wait_s after it took the first.
            deadline = asyncio.get_running_loop().time() + size.max_wait_s
            while rows < size.rows and len(group) < size.writes:
                try:
                    nxt = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - asyncio.get_running_loop().time()
                    if rows >= size.min_rows or left <= 0:
                        break
                    try:
                        nxt = await asyncio.wait_for(self.queue.get(), left)
                    except TimeoutError:
                        break
                if nxt is None:
                    finished = True
                    break
                group.append(nxt)
                rows += nxt.rows
            await self._commit(group)
            if finished:
                return

    async def _commit(self, group: list[_Item]) -> None:
        bars = [item for item in group if item.actions is None]
        for item in group:
            if item.actions is not None:
                await self._commit_one(item)
        if len(bars) == 1:
            await self._commit_one(bars[0])
        elif bars:
            try:
                await self._write([w for item in bars for w in item.writes])
            except (ValidationError, StoreError):
                # Isolate the bad write: retry each item in its own transaction.
                for item in bars:
                    await self._commit_one(item)
                return
            for item in bars:
                self._credit(item)

    async def _commit_one(self, item: _Item) -> None:
        try:
            if item.actions is not None:
                assert isinstance(item.job, ActionsRequest)
                dividends = item.job.kind == "dividends"
                started = time.perf_counter()
                try:
                    covers = item.job.covers
                    result = await self.store.actions.write_many([
                        ActionWrite(t, divs if dividends else None, None if dividends else splits, covers)
                        for t, (divs, splits) in item.actions.items()])
                finally:
                    self.report.db_s += time.perf_counter() - started
                self.report.transactions += 1
                self.report.actions_written += result.written
            else:
                await self._write(item.writes)
        except ValidationError as exc:  # the store refused invalid bars: keep them aside
            self._failed(item.job, await self._quarantine(exc))
            return
        except StoreError as exc:
            if item.actions is not None and len(item.actions) > 1:
                assert isinstance(item.job, ActionsRequest)
                for t, rows in item.actions.items():  # isolate the ticker that fails: each on its own
                    await self._commit_one(_Item(replace(item.job, tickers=(t,)), actions={t: rows}))
                return
            self._failed(item.job, str(exc))
            return
        self._credit(item)

    async def _quarantine(self, exc: ValidationError) -> str:
        """Quarantine the bars ``exc`` holds under this run; returns the reason for the report."""
        started = time.perf_counter()
        try:
            kept, reason = await quarantine_error(self.store, exc, self.report.run_id)
        finally:
            self.report.db_s += time.perf_counter() - started
        self.report.quarantined += kept
        if kept:
            for text in exc.reasons or ("breaks a bar invariant",):
                for part in text.split("; "):
                    why = part.split(" (", 1)[0]  # the reason, without the value that showed it
                    self.report.quarantine_reasons[why] = self.report.quarantine_reasons.get(why, 0) + 1
        return reason

    async def _write(self, writes: list[BarWrite]) -> None:
        started = time.perf_counter()
        try:
            result = await self.store.write_bars(writes)
        finally:
            self.report.db_s += time.perf_counter() - started
        self.report.transactions += 1
        self._add(result)

    def _add(self, result: WriteResult) -> None:
        self.report.bars_inserted += result.inserted
        self.report.bars_updated += result.updated
        self.report.bars_unchanged += result.unchanged

    def _credit(self, item: _Item) -> None:
        fetched = 0
        for w in item.writes:
            n = len(w.batch)
            self._outcome(SeriesKey(w.batch.ticker, w.batch.timeframe)).bars += n
            if w.batch.source != "derived":
                fetched += n
        if item.actions is not None:
            assert isinstance(item.job, ActionsRequest)
            for ticker, (divs, splits) in item.actions.items():
                self._outcome(ActionsKey(ticker, item.job.kind)).bars += len(divs) + len(splits)
            self.report.actions_fetched += item.rows
        if isinstance(item.job, DeriveTask):
            fetched = 0
        self.report.bars_fetched += fetched
        if item.final:
            for key in job_series(item.job):
                self._outcome(key).requests_done += 1
            if self.progress:
                self.progress.advanced(job_series(item.job)[0], True, fetched)

