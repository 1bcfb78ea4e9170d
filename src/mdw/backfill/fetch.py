"""The unit of work: one planned request fetched and turned into store writes.

:func:`fetch_writes` yields the writes of a request page by page; only the last page carries the
request's coverage, so a crash between pages never marks a range covered that lacks bars.
:func:`execute_request` is the same unit with the writes committed directly: distributed job
workers call it one request at a time, while the engine routes the writes through its single
writer instead.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Protocol

from mdw.backfill.derive import resample
from mdw.backfill.plan import ActionsRequest, DeriveTask, PlannedRequest
from mdw.domain import BarBatch, Dividend, RangeSet, Split, Timeframe, from_ms
from mdw.errors import MdwError, VendorError, VendorRequestError
from mdw.store.base import BarWrite, Store, WriteResult


class VendorSource(Protocol):
    """What the backfill needs of the vendor client (``PolygonClient`` fits)."""

    def aggregate_pages(
        self, ticker: str, timeframe: Timeframe | str, start_ms: int, end_ms: int, adjusted: bool = False
    ) -> AsyncIterator[BarBatch]: ...

    async def grouped_daily(self, day: date, market: str, adjusted: bool = False) -> dict[str, BarBatch]: ...

    async def dividends(self, ticker: str, start: date | None = None, end: date | None = None
                        ) -> list[Dividend]: ...

    async def splits(self, ticker: str, start: date | None = None, end: date | None = None
                     ) -> list[Split]: ...


@dataclass(slots=True)
class RequestResult:
    """What one request did: bars fetched and written, and its error if it failed."""

    request: PlannedRequest | ActionsRequest | DeriveTask
    bars: int = 0
    written: WriteResult = field(default_factory=WriteResult)
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def _request_writes(req: PlannedRequest, batch: BarBatch, final: bool) -> list[BarWrite]:
    primary = req.targets[0]
    writes = [BarWrite(batch, RangeSet.of([primary.covers]) if final else RangeSet())]
    if final:
        for target in req.targets[1:]:
            derived = resample(batch, req.asset, target.timeframe)
            writes.append(BarWrite(derived.between(target.covers.start_ms, target.covers.end_ms),
                                   RangeSet.of([target.covers])))
    return writes


async def fetch_grouped(client: VendorSource, req: PlannedRequest) -> tuple[list[BarWrite], dict[str, str]]:
    """One session's grouped daily bars as writes, and the tickers that failed (with why).

    A ticker absent from the grouped response may be missing from that market's listing (an ETF
    or an OTC name) rather than idle, so it is asked for on its own before its day is covered,
    unless reference data says it was listed that day (a universe member: ``Target.listed``).
    OTC names are asked for with the rest (``include_otc``).
    """
    day = from_ms(req.fetch.start_ms).astimezone(req.asset.tz).date()
    rows = await client.grouped_daily(day, req.asset.value)
    writes: list[BarWrite] = []
    failures: dict[str, str] = {}
    for t in req.targets:
        batch = rows.get(t.ticker)
        if batch is None and t.listed:
            batch = BarBatch.empty(t.ticker, t.timeframe)  # listed that day, and did not trade
        elif batch is None:
            try:
                pages = [p async for p in client.aggregate_pages(
                    t.ticker, t.timeframe, t.covers.start_ms, min(t.covers.end_ms, req.fetch.end_ms))]
            except VendorRequestError as exc:
                failures[t.ticker] = str(exc)
                continue
            batch = BarBatch.concat(pages) if pages else BarBatch.empty(t.ticker, t.timeframe)
        else:
            batch = batch.with_source("grouped")
        writes.append(BarWrite(batch, RangeSet.of([t.covers])))
    return writes, failures


async def fetch_writes(client: VendorSource, req: PlannedRequest) -> AsyncGenerator[list[BarWrite], None]:
    """The store writes of one request, as its pages arrive.

    Raises:
        VendorError: the vendor failed the request after the client's retries.
    """
    if req.kind == "grouped":
        writes, failures = await fetch_grouped(client, req)
        if failures:
            raise VendorError("; ".join(f"{t}: {why}" for t, why in sorted(failures.items())))
        yield writes
        return
    derived = len(req.targets) > 1
    held: list[BarBatch] = []
    async for page in client.aggregate_pages(req.ticker, req.timeframe, req.fetch.start_ms, req.fetch.end_ms):
        if derived:
            held.append(page)  # derived windows need every fine bar; one page when the 50k split holds
            continue
        if held:
            yield _request_writes(req, held.pop(), final=False)
        held.append(page)
    if derived:
        batch = BarBatch.concat(held) if held else BarBatch.empty(req.ticker, req.timeframe)
    else:
        batch = held[0] if held else BarBatch.empty(req.ticker, req.timeframe)
    yield _request_writes(req, batch, final=True)


async def fetch_actions(client: VendorSource, req: ActionsRequest) -> tuple[list[Dividend], list[Split]]:
    """The dividends or splits of one ticker over the request's days."""
    first = from_ms(req.covers.start_ms).date()
    last = from_ms(req.covers.end_ms).date() - timedelta(days=1)
    if req.kind == "dividends":
        return await client.dividends(req.ticker, first, last), []
    return [], await client.splits(req.ticker, first, last)


async def derive_writes(store: Store, task: DeriveTask) -> list[BarWrite]:
    """Coarse bars over ``task.covers`` built from the stored fine bars (no vendor request)."""
    fine = await store.bars(task.ticker, task.source, task.covers.start_ms, task.covers.end_ms)
    batch = resample(fine, task.asset, task.target)
    return [BarWrite(batch, RangeSet.of([task.covers]))]


def bar_count(writes: Sequence[BarWrite]) -> int:
    return sum(len(w.batch) for w in writes)


async def execute_request(client: VendorSource, store: Store, req: PlannedRequest) -> RequestResult:
    """Fetch one planned request and commit its bars and coverage (page by page).

    Failures are returned, not raised, so a caller running many requests isolates them; only
    ``CancelledError`` and programming errors propagate.
    """
    started = time.perf_counter()
    result = RequestResult(req)
    try:
        async for writes in fetch_writes(client, req):
            result.bars += bar_count(writes)
            result.written = result.written + await store.write_bars(writes)
    except MdwError as exc:
        result.error = str(exc)
    result.seconds = time.perf_counter() - started
    return result
