"""The unit of work: one planned request fetched and turned into store writes.

:func:`fetch_writes` yields the writes of a request page by page, following every ``next_url``;
each page covers only what lies before its last bar, and the last page the rest of the request,
so a crash between pages never marks a range covered that lacks bars and loses at most a page.
:func:`execute_request` is the same unit with the writes committed directly: distributed job
workers call it one request at a time, while the engine routes the writes through its single
writer instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Protocol

import numpy as np

from mdw.backfill.derive import resample
from mdw.backfill.plan import MAX_BASE, ActionsRequest, DeriveTask, PlannedRequest, Target
from mdw.calendar import bar_window_start
from mdw.domain import AssetClass, BarBatch, Dividend, RangeSet, Split, Timeframe, TimeRange, from_ms
from mdw.errors import MdwError, NotEntitled, UnknownTicker, VendorError, VendorNotFound, VendorRequestError
from mdw.logs import get_logger
from mdw.polygon.actions import ActionKind, Listed
from mdw.polygon.paging import PageLink
from mdw.store.base import BarWrite, Store, WriteResult

ONE_DAY = Timeframe(1, "d")
log = get_logger(__name__)


class VendorSource(Protocol):
    """What the backfill needs of the vendor client (``PolygonClient`` fits)."""

    def aggregate_pages(
        self, ticker: str, timeframe: Timeframe | str, start_ms: int, end_ms: int, adjusted: bool = False,
        page_link: PageLink | None = None,
    ) -> AsyncIterator[BarBatch]: ...

    async def grouped_daily(self, day: date, market: str, adjusted: bool = False) -> dict[str, BarBatch]: ...

    async def actions_listing(
        self, kind: ActionKind, first: date, last: date, tickers: tuple[str, ...] = (), *, v1: bool = True,
    ) -> list[Listed]: ...

    async def ticker_known(self, ticker: str) -> bool: ...


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


def _final_writes(req: PlannedRequest, batch: BarBatch, tail: BarBatch) -> list[BarWrite]:
    """The last page's writes: its fine bars, the derived windows left, and every target's coverage."""
    writes = [BarWrite(batch, RangeSet.of([req.targets[0].covers]))]
    if len(req.targets) > 1:
        fine = BarBatch.concat([tail, batch]) if len(tail) else batch
        for target in req.targets[1:]:
            derived = resample(fine, req.asset, target.timeframe)
            writes.append(BarWrite(derived.between(target.covers.start_ms, target.covers.end_ms),
                                   RangeSet.of([target.covers])))
    return writes


def _held_before(covers: TimeRange, end_ms: int) -> RangeSet:
    """``covers`` up to ``end_ms``: what a page before the last completes."""
    return RangeSet.of([TimeRange(covers.start_ms, end_ms)]) if end_ms > covers.start_ms else RangeSet()


def _page_writes(req: PlannedRequest, page: BarBatch, tail: BarBatch) -> tuple[list[BarWrite], BarBatch]:
    """A page before the last: its bars, covered up to its last bar; derived windows of its days.

    Pages come in time order, so everything before the page's last bar is complete (that bar's
    window may continue on the next page): a run killed between pages keeps what it stored. A
    page may end inside a day, so the fine bars of the page's last local day are carried to the
    next page (derived windows divide the day): memory stays one page plus one day.
    """
    last = int(page.t[-1])
    primary = req.targets[0].covers
    writes = [BarWrite(page, _held_before(primary, min(last, primary.end_ms)))]
    if len(req.targets) == 1:
        return writes, tail
    fine = BarBatch.concat([tail, page]) if len(tail) else page
    cut = bar_window_start(req.asset, ONE_DAY, last)
    done = fine.between(int(fine.t[0]), cut)
    for target in req.targets[1:]:
        derived = resample(done, req.asset, target.timeframe)
        writes.append(BarWrite(derived.between(target.covers.start_ms, target.covers.end_ms),
                               _held_before(target.covers, min(cut, target.covers.end_ms))))
    return writes, fine.between(cut, last + 1)


async def grouped_answer(client: VendorSource, req: PlannedRequest) -> tuple[list[BarWrite], list[Target]]:
    """One session's grouped daily bars as writes, and the targets its answer does not settle.

    A ticker absent from the grouped response did not trade that day if reference data says it
    was listed then (a universe member: ``Target.listed``); otherwise it may be missing from the
    market's grouped listing (an ETF, or an OTC name where the vendor omits them) rather than idle,
    so its target is returned unanswered: nothing is covered for it yet.
    """
    day = from_ms(req.fetch.start_ms).astimezone(req.asset.tz).date()
    rows = await client.grouped_daily(day, req.asset.value)
    writes: list[BarWrite] = []
    absent: list[Target] = []
    for t in req.targets:
        batch = rows.get(t.ticker)
        if batch is None and t.listed:
            batch = BarBatch.empty(t.ticker, t.timeframe)  # listed that day, and did not trade
        elif batch is None:
            absent.append(t)
            continue
        else:
            batch = batch.with_source("grouped")
        writes.append(BarWrite(batch, RangeSet.of([t.covers])))
    return writes, absent


async def fetch_grouped(client: VendorSource, req: PlannedRequest) -> tuple[list[BarWrite], dict[str, str]]:
    """One session's grouped daily bars as writes, and the tickers that failed (with why).

    A ticker absent from the grouped response and not known to be listed that day (see
    :func:`grouped_answer`) is asked for on its own before its day is covered. The engine instead
    gathers a ticker's absent sessions of the whole run into one request (:func:`fetch_absent`).
    """
    writes, absent = await grouped_answer(client, req)
    failures: dict[str, str] = {}
    for t in absent:
        try:
            one = absent_request(req.asset, t.ticker, [(t, req.fetch.end_ms)])
            writes.extend(await fetch_absent(client, one))
        except VendorRequestError as exc:
            failures[t.ticker] = str(exc)
    return writes, failures


def absent_request(asset: AssetClass, ticker: str, absent: Sequence[tuple[Target, int]]) -> PlannedRequest:
    """One request for the sessions a ticker was absent from grouped answers (``(target, fetch end)``
    pairs): over their whole span, following ``next_url``, so a thin ticker costs the pages of its
    own daily bars (one for 50,000 days) instead of one request per session."""
    targets = tuple(sorted((t for t, _ in absent), key=lambda t: t.covers.start_ms))
    end = max(min(t.covers.end_ms, fetch_end) for t, fetch_end in absent)
    fetch = TimeRange(targets[0].covers.start_ms, end)
    return PlannedRequest("absent", asset, ticker, targets[0].timeframe, fetch, targets, len(targets))


async def fetch_absent(
    client: VendorSource, req: PlannedRequest, known: set[str] | None = None,
) -> list[BarWrite]:
    """A ticker's daily bars over the sessions it was absent from (``req.targets``), as one write.

    Only the bars of those sessions are kept (the others came from grouped answers), and each
    session is covered, traded or not. An empty answer is checked against reference data unless
    the ticker is in ``known`` (see :func:`fetch_writes`).
    """
    pages = [p async for p in client.aggregate_pages(
        req.ticker, req.timeframe, req.fetch.start_ms, req.fetch.end_ms)]
    batch = BarBatch.concat(pages) if pages else BarBatch.empty(req.ticker, req.timeframe)
    if not len(batch) and (known is None or req.ticker not in known):
        await require_known(client, req.ticker)
    covered = RangeSet.of(t.covers for t in req.targets)
    keep = np.zeros(len(batch), dtype=bool)
    for rng in covered:
        keep |= (batch.t >= rng.start_ms) & (batch.t < rng.end_ms)
    return [BarWrite(batch.take(keep), covered)]


def remainder_pieces(req: PlannedRequest, page: BarBatch) -> list[PlannedRequest]:
    """The rest of ``req`` after its full first ``page``, cut for parallel pagers; [] to page on.

    The page holds about a page of base aggregates over the possible ones before its last bar, so
    the remainder (from that bar on) is expected to take ``ceil(possible left / possible seen)``
    pages at the same density. When that is two or more, the remainder is cut at local midnights
    into that many pieces of about equal possible minutes, each following its own ``next_url``: a
    series of even density costs exactly the pager's pages, and its pages run in parallel
    (ADR 0018). Only a single-target minute-based request is cut.
    """
    from mdw.backfill.planner import base_units, even_split

    if req.kind != "aggs" or len(req.targets) != 1 or req.timeframe.base != "minute" or req.pages <= 1:
        return []
    last = int(page.t[-1])
    target = req.targets[0]
    seen = base_units(req.asset, req.timeframe, TimeRange(req.fetch.start_ms, last))
    rest = TimeRange(last, target.covers.end_ms)
    left = base_units(req.asset, req.timeframe, TimeRange(last, req.fetch.end_ms))
    if seen <= 0 or left <= 0:
        return []
    parts = math.ceil(left / seen)
    if parts < 2:
        return []
    out: list[PlannedRequest] = []
    for piece in even_split(req.asset, req.timeframe, rest, parts):
        fetch = TimeRange(piece.start_ms, min(piece.end_ms, req.fetch.end_ms))
        if fetch.empty:
            continue
        n = base_units(req.asset, req.timeframe, piece)
        out.append(replace(req, fetch=fetch, targets=(target._replace(covers=piece),), base_units=n,
                           pages=max(1, math.ceil(n / MAX_BASE)), density=None))
    return out if len(out) >= 2 else []


async def fetch_writes(
    client: VendorSource, req: PlannedRequest, known: set[str] | None = None,
    spill: list[PlannedRequest] | None = None,
) -> AsyncGenerator[list[BarWrite], None]:
    """The store writes of one request, as its pages arrive.

    ``known``: tickers the vendor is known to know (stored before, or answered with bars in this
    run): an empty answer for one of them needs no reference check. A ticker answered with bars
    is added to it.

    ``spill``: when given, a request whose first page comes back full with much of its range left
    stops there: the page's bars before its last one are written, covered up to that bar, and the
    rest of the range is appended to ``spill`` as requests to run in parallel (see
    :func:`remainder_pieces`). Without it every ``next_url`` is followed.

    Raises:
        VendorError: the vendor failed the request after the client's retries.
    """
    if req.kind == "absent":
        yield await fetch_absent(client, req, known)
        return
    if req.kind == "grouped":
        writes, failures = await fetch_grouped(client, req)
        if failures:
            raise VendorError("; ".join(f"{t}: {why}" for t, why in sorted(failures.items())))
        yield writes
        return
    tail = BarBatch.empty(req.ticker, req.timeframe)
    pending: BarBatch | None = None  # the newest page, held back: only the last one carries coverage
    count = 0
    link = PageLink()
    pages = client.aggregate_pages(req.ticker, req.timeframe, req.fetch.start_ms, req.fetch.end_ms,
                                   page_link=link)
    async for page in pages:
        if spill is not None and count == 0 and link.more and (pieces := remainder_pieces(req, page)):
            closing = getattr(pages, "aclose", None)
            if closing is not None:
                await closing()  # the next page is never asked for
            if known is not None:
                known.add(req.ticker)
            last = int(page.t[-1])
            spill.extend(pieces)
            yield [BarWrite(page.between(int(page.t[0]), last), _held_before(req.targets[0].covers, last))]
            return
        count += len(page)
        if pending is not None:
            writes, tail = _page_writes(req, pending, tail)
            yield writes
        pending = page
    if count == 0 and (known is None or req.ticker not in known):
        await require_known(client, req.ticker)
    elif count and known is not None:
        known.add(req.ticker)
    yield _final_writes(req, pending if pending is not None else BarBatch.empty(req.ticker, req.timeframe),
                        tail)


async def require_known(client: VendorSource, ticker: str) -> None:
    """An empty answer is a quiet range only for a ticker the vendor knows.

    The vendor answers an aggregates request for a ticker it does not know (``KIMPL`` typed for
    ``KIMpL``) with an empty page, which would be recorded as covered for ever. So an empty answer
    is checked against the vendor's reference data (once per ticker and client).

    Raises:
        UnknownTicker: the reference data does not know the ticker (the range is not covered).
    """
    if not await client.ticker_known(ticker):
        raise UnknownTicker(f"unknown_ticker: the vendor's reference data does not know {ticker!r} (tickers "
                            "are case-sensitive); its empty answer is not recorded as covered")


@dataclass(slots=True)
class ActionsRoute:
    """Which listing generation answers this key: ``/stocks/v1`` until it is refused, then v3.

    A plan (or a simulator) without v1 answers 403 ``not_entitled`` or 404; the first refusal turns
    the run to the deprecated ``/v3/reference`` listings, which take the same date filters.
    """

    v1: bool = True


V3_PER_TICKER = 10  # without ``any_of`` on v3: up to this many tickers one by one, else market-wide


def _days(req: ActionsRequest) -> tuple[date, date]:
    return from_ms(req.covers.start_ms).date(), from_ms(req.covers.end_ms).date() - timedelta(days=1)


async def fetch_actions(client: VendorSource, req: ActionsRequest, route: ActionsRoute | None = None
                        ) -> dict[str, list[Listed]]:
    """The listed dividends or splits of each ticker of ``req`` over its days (every ticker keyed).

    Raises:
        VendorError: the vendor failed the listing after the client's retries.
    """
    route = route if route is not None else ActionsRoute()
    tickers = req.tickers or (req.ticker,)
    first, last = _days(req)
    query = () if req.market_wide else tickers
    rows: list[Listed] | None = None
    if route.v1:
        try:
            rows = await client.actions_listing(req.kind, first, last, query)
        except (NotEntitled, VendorNotFound) as exc:
            if isinstance(exc, UnknownTicker):
                raise
            route.v1 = False
            log.warning("the /stocks/v1 corporate-action listings are not served; asking v3",
                        action="backfill.actions_v3", reason=str(exc))
    if rows is None:
        if 0 < len(query) <= V3_PER_TICKER:
            rows = [r for t in query
                    for r in await client.actions_listing(req.kind, first, last, (t,), v1=False)]
        else:
            rows = await client.actions_listing(req.kind, first, last, (), v1=False)
    out: dict[str, list[Listed]] = {t: [] for t in tickers}
    for row in rows:
        kept = out.get(row.action.ticker)
        if kept is not None:
            kept.append(row)
    return out


def factor_mismatches(rows: Sequence[Listed]) -> list[str]:
    """Splits whose vendor ``historical_adjustment_factor`` disagrees with mdw's own cumulative ratio.

    For a listing that reaches today, a split's factor is the product of ``split_from / split_to``
    over it and every later split (what a price before it is multiplied by): mdw's adjustment
    divides by the same product of ratios, so the two must agree to rounding.
    """
    splits = sorted(((r.action, r.factor) for r in rows if isinstance(r.action, Split)),
                    key=lambda pair: pair[0].execution_date)
    out: list[str] = []
    cumulative = 1.0
    for split, factor in reversed(splits):
        cumulative *= split.split_from / split.split_to
        if factor is not None and not math.isclose(factor, cumulative, rel_tol=1e-6):
            out.append(f"{split.ticker} {split.execution_date}: vendor {factor:g}, mdw {cumulative:g}")
    return out


def as_actions(kind: str, rows: Sequence[Listed]) -> tuple[list[Dividend], list[Split]]:
    """The domain objects of listed rows, as the store writes them."""
    if kind == "dividends":
        return [r.action for r in rows if isinstance(r.action, Dividend)], []
    return [], [r.action for r in rows if isinstance(r.action, Split)]


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
