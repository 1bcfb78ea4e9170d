"""The settle pass: re-fetch the recent sessions once, after the vendor has revised them.

The vendor publishes a session's bars as they happen and replaces them later: late-reported
trades and tape corrections change a daily bar's volume (and sometimes its prices) after the
close, and the revised bars are in by the next morning. A bar stored at the close is final for
the ledger, so without a second look mdw would keep the first version for ever.

A series' *settle window* is its last ``sessions`` trading days (calendar days for crypto and
forex) whose settle time has passed: ``after`` (ET) on the calendar day after the session. Each
window is re-fetched **once** (the store remembers the settled windows), only where the series is
held (gaps are the ordinary backfill's), and written through the store's idempotent merge, so
an unchanged bar stays unchanged and a revised one is counted as ``bars_updated``; every series
that changed is logged with its window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from mdw.backfill.fetch import VendorSource, fetch_writes
from mdw.backfill.plan import BackfillSpec, PlannedRequest
from mdw.backfill.planner import plan_backfill
from mdw.backfill.settle_window import SettleWindow
from mdw.domain import AssetClass, BarBatch, RangeSet, SeriesKey, Ticker, Timeframe, TimeRange, from_ms
from mdw.errors import MdwError
from mdw.logs import get_logger
from mdw.plans import Limits
from mdw.store.base import Dataset, Store, WriteResult
from mdw.store.writes import diff_bars

log = get_logger(__name__)
_IN_FLIGHT = 8


@dataclass(slots=True)
class SettleReport:
    """What a settle pass re-fetched and what changed."""

    series: int = 0  # series with a window to settle
    requests: int = 0
    bars_fetched: int = 0
    bars_inserted: int = 0
    bars_updated: int = 0
    failed: int = 0
    updated: list[dict[str, object]] = field(default_factory=list)  # each changed series and its window
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"series": self.series, "requests": self.requests, "bars_fetched": self.bars_fetched,
                "bars_inserted": self.bars_inserted, "bars_updated": self.bars_updated,
                "failed": self.failed, "updated": self.updated, "errors": self.errors[:20]}


def _days(rng: TimeRange, asset: AssetClass) -> str:
    first = from_ms(rng.start_ms).astimezone(asset.tz).date()
    last = from_ms(rng.end_ms - 1).astimezone(asset.tz).date()
    return first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"


async def _pieces(store: Store, tk: Ticker, tf: Timeframe, window: TimeRange, within: TimeRange | None
                  ) -> RangeSet:
    """The part of ``window`` held and not yet settled for one series.

    Held means fetched for this ticker (its ledger): whole-market days stored from flat files are
    published after the vendor's revision and have their own settle (``filerun.settle_files``).
    """
    rng = window if within is None else TimeRange(max(window.start_ms, within.start_ms),
                                                  max(window.start_ms, min(window.end_ms, within.end_ms)))
    if rng.end_ms <= rng.start_ms:
        return RangeSet()
    held = RangeSet.of(TimeRange(e.start_ms, e.end_ms) for e in await store.catalog.ledger(tk.symbol)
                       if e.dataset is Dataset.BARS and e.timeframe == str(tf)).clip(rng)
    return held - await store.plan_facts.settled(tk.symbol, str(tf), rng)


async def _revised(store: Store, batch: BarBatch) -> int:
    """How many of ``batch``'s bars are stored with other values: the vendor's revisions.

    Counted on values alone: a bar fetched again through another route (grouped daily instead of
    the ticker's aggregates) is rewritten with its new provenance, but it was not revised.
    """
    if not len(batch):
        return 0
    stored = await store.bars(batch.ticker, batch.timeframe, int(batch.t[0]), int(batch.t[-1]) + 1)
    return len(diff_bars(batch, stored).changed)


async def settle_series(
    store: Store, client: VendorSource, specs: Sequence[BackfillSpec], *, now_ms: int,
    window: SettleWindow, limits: Limits | None = None,
) -> SettleReport:
    """Re-fetch, once, the settle window of every series of ``specs`` (within each spec's range).

    Daily bars of many stock tickers are re-fetched as grouped daily when that is fewer requests.
    A series whose requests all succeed is recorded as settled over its window; a failed one is
    tried again by the next pass.
    """
    out = SettleReport()
    at = limits.final_before_ms(now_ms) if limits is not None else now_ms
    todo: dict[tuple[Timeframe, TimeRange], list[Ticker]] = {}
    for spec in specs:
        for tk in spec.tickers:
            rng = window.range(tk.asset_class, now_ms)
            if rng is None:
                continue
            for tf in spec.timeframes:
                for piece in await _pieces(store, tk, tf, rng, spec.wanted_for(tk)):
                    todo.setdefault((tf, piece), []).append(tk)
    requests: list[PlannedRequest] = []
    windows: dict[SeriesKey, list[TimeRange]] = {}
    for (tf, piece), tickers in todo.items():
        # A settle window is a few sessions of series already stored: grouped daily whenever it is
        # fewer requests, each ticker treated as trading daily (an absent one is asked on its own).
        plan = plan_backfill(BackfillSpec(tuple(tickers), (tf,), piece.start_ms, piece.end_ms), {}, at,
                             traded={tk.symbol for tk in tickers})
        requests.extend(plan.requests)
        for tk in tickers:
            windows.setdefault(SeriesKey(tk.symbol, tf), []).append(piece)
    out.series = len(windows)
    results: dict[SeriesKey, WriteResult] = {key: WriteResult() for key in windows}
    failed: set[SeriesKey] = set()
    gate, write_lock = asyncio.Semaphore(_IN_FLIGHT), asyncio.Lock()

    async def one(req: PlannedRequest) -> None:
        async with gate:
            out.requests += 1
            try:
                async for writes in fetch_writes(client, req):
                    async with write_lock:  # one writer: per-series results, and SQLite's single writer
                        for w in writes:
                            key = SeriesKey(w.batch.ticker, w.batch.timeframe)
                            out.bars_fetched += len(w.batch)
                            revised = await _revised(store, w.batch)
                            got = await store.write_bars([w])
                            results[key] = results.get(key, WriteResult()) + WriteResult(
                                got.inserted, revised, got.updated + got.unchanged - revised)
            except MdwError as exc:
                failed.update(t.key for t in req.targets)
                out.errors.append(f"{req.label}: {exc}")
                log.warning("settle request failed", action="settle.failed", request=req.label,
                            error=str(exc))

    async with asyncio.TaskGroup() as tg:
        for i, req in enumerate(requests):
            tg.create_task(one(req), name=f"settle-{i}")
    assets = {tk.symbol: tk.asset_class for spec in specs for tk in spec.tickers}
    for key, pieces in windows.items():
        got = results[key]
        out.bars_inserted += got.inserted
        out.bars_updated += got.updated
        span = ", ".join(_days(p, assets[key.ticker]) for p in pieces)
        if got.updated:
            out.updated.append({"series": str(key), "window": span, "bars_updated": got.updated})
            log.info("settle pass corrected revised bars", action="settle.updated", ticker=key.ticker,
                     timeframe=str(key.timeframe), window=span, bars_updated=got.updated)
        if key in failed:
            out.failed += 1
            continue
        await store.plan_facts.mark_settled(key.ticker, str(key.timeframe), pieces, now_ms, got.updated)
    log.info("settle pass finished", action="settle.finished", series=out.series, requests=out.requests,
             bars_updated=out.bars_updated, failed=out.failed)
    return out
