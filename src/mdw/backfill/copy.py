"""``mdw copy``: move a warehouse to another store (SQLite to PostgreSQL, to the columnar store ...).

Everything goes through the :class:`~mdw.store.base.Store` seam, so any backend copies to any other
and the target's invariants hold on every write. What is copied, in this order:

1. **Bars with their ledger.** For each ledger range of each series the bars in it are written in
   chunks, each chunk with the part of the range it covers and the source's ``fetched_at``, in one
   transaction (bars and coverage together, as a backfill writes them). Bars stored outside any
   ledger range (whole-market flat-file days) follow without coverage of their own.
2. **Corporate actions** with their coverage ranges and ``fetched_at``; symbols; API keys (their
   salted hashes); universes; reference data (listings, ticker changes, option contracts of the
   listed and tracked underlyings).
3. **Whole-market days** (flat-file coverage), last, so the target never claims coverage of bars
   it does not hold yet; a ticker's holes in them are cut again with ``delete_range``.

A copy is resumable: each write is idempotent, and bars already covered by the target's own
ledger are not read again, so after a kill ``mdw copy`` again goes on where it stopped. It ends
by comparing every series (bar count, first and last bar, coverage) and every ticker's actions of
source and target, and says whether the copy is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mdw.domain import BarBatch, RangeSet, SeriesKey, Timeframe, TimeRange
from mdw.flatfiles.keys import DATASETS
from mdw.store.base import BarWrite, CoverageEntry, Dataset, Store
from mdw.store.refdata import ListingFilter, TickerChange

EVER_MS = (0, 4_102_444_800_000)  # 1970-01-01 .. 2100-01-01


@dataclass(slots=True)
class CopyReport:
    """What a copy moved, and whether source and target now hold the same."""

    series: int = 0
    bars_read: int = 0
    bars_written: int = 0
    ranges_skipped: int = 0  # ledger ranges the target already held (a resumed copy)
    actions: int = 0
    symbols: int = 0
    keys: int = 0
    universes: int = 0
    listings: int = 0
    contracts: int = 0
    market_days: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, object]:
        return {"series": self.series, "bars_read": self.bars_read, "bars_written": self.bars_written,
                "ranges_skipped": self.ranges_skipped, "actions": self.actions, "symbols": self.symbols,
                "keys": self.keys, "universes": self.universes, "listings": self.listings,
                "contracts": self.contracts, "market_days": self.market_days, "exact": self.exact,
                "differences": self.differences[:50]}


Progress = Callable[[str], None]


async def copy_store(source: Store, target: Store, *, chunk: int = 50_000,
                     progress: Progress | None = None) -> CopyReport:
    """Copy everything ``source`` holds into ``target`` (see the module docstring); resumable.

    Args:
        source: the store read from (never written).
        target: the store written to; what it already holds is kept and completed.
        chunk: bars per write (one transaction each).
        progress: called with one line per series copied.
    """
    report = CopyReport()
    say = progress or (lambda _line: None)
    ledger = await source.catalog.ledger()
    stats = await source.catalog.series()
    keys = sorted({SeriesKey.of(s.ticker, s.timeframe) for s in stats}
                  | {SeriesKey.of(e.ticker, e.timeframe) for e in ledger if e.dataset == Dataset.BARS})
    for key in keys:
        report.series += 1
        read, written, skipped = await _copy_series(source, target, key, ledger, chunk)
        report.bars_read += read
        report.bars_written += written
        report.ranges_skipped += skipped
        say(f"{key}: {read:,} bars read, {written:,} written"
            + (f", {skipped} range(s) already held" if skipped else ""))
    tickers = sorted({e.ticker for e in ledger} | {s.ticker for s in stats}
                     | {i.ticker for i in await source.symbols.all()})
    for ticker in tickers:
        report.actions += await _copy_actions(source, target, ticker, ledger)
    for info in await source.symbols.all():
        await target.symbols.upsert(info)
        report.symbols += 1
    for rec in await source.keys.all():
        if await target.keys.get(rec.id) is None:
            await target.keys.add(rec)  # the whole record: salted hash, scope, revocation
        report.keys += 1
    for uni in await source.universes.all():
        await target.universes.save(uni.name, uni.spec)
        report.universes += 1
    await _copy_reference(source, target, tickers, report)
    await _copy_market_days(source, target, keys, report)
    say(f"verifying {len(keys)} series")
    report.differences = await differences(source, target, keys, tickers)
    return report


async def _copy_series(source: Store, target: Store, key: SeriesKey, ledger: list[CoverageEntry],
                       chunk: int) -> tuple[int, int, int]:
    """One series: each source ledger range the target lacks, then bars outside every range."""
    tf, tfs = key.timeframe, str(key.timeframe)
    mine = [e for e in ledger if e.ticker == key.ticker and e.dataset == Dataset.BARS and e.timeframe == tfs]
    held = RangeSet.of((e.start_ms, e.end_ms) for e in await target.catalog.ledger(key.ticker)
                       if e.dataset == Dataset.BARS and e.timeframe == tfs)
    read = written = skipped = 0
    for entry in mine:
        todo = RangeSet.of([(entry.start_ms, entry.end_ms)]) - held
        if not todo:
            skipped += 1
            continue
        for rng in todo:
            r, w = await _copy_range(source, target, key.ticker, tf, rng, chunk, entry.fetched_at_ms)
            read, written = read + r, written + w
    outside = RangeSet.of([EVER_MS]) - RangeSet.of((e.start_ms, e.end_ms) for e in mine)
    for rng in outside:  # bars held without a ledger range of their own (whole-market days)
        r, w = await _copy_range(source, target, key.ticker, tf, rng, chunk, None)
        read, written = read + r, written + w
    return read, written, skipped


async def _copy_range(source: Store, target: Store, ticker: str, tf: Timeframe, rng: TimeRange, chunk: int,
                      fetched_at_ms: int | None) -> tuple[int, int]:
    """Bars of ``rng`` in chunks; with ``fetched_at_ms`` each chunk also covers its part of ``rng``.

    A chunk covers from where the previous one stopped up to the next chunk's first bar (the last
    one up to the range's end), so the pieces join into exactly ``rng``.
    """
    read = written = 0
    cursor = rng.start_ms
    pending: BarBatch | None = None

    async def flush(batch: BarBatch, end_ms: int) -> None:
        nonlocal cursor, written
        covers = fetched_at_ms is not None and end_ms > cursor
        covered = RangeSet.of([(cursor, end_ms)]) if covers else RangeSet()
        if len(batch) or covered:
            result = await target.write_bars([BarWrite(batch, covered)], fetched_at_ms=fetched_at_ms)
            written += result.written
        cursor = end_ms

    async for batch in source.iter_bars(ticker, tf, rng.start_ms, rng.end_ms, chunk=chunk):
        read += len(batch)
        if pending is not None and len(batch):
            await flush(pending, int(batch.t[0]))
        pending = batch if len(batch) else pending
    await flush(pending if pending is not None else BarBatch.empty(ticker, tf), rng.end_ms)
    return read, written


async def _copy_actions(source: Store, target: Store, ticker: str, ledger: list[CoverageEntry]) -> int:
    """A ticker's dividends and splits, each of their coverage ranges with its ``fetched_at``.

    The actions go with the first range of their kind; the other ranges are recorded alone.
    """
    divs = await source.actions.dividends(ticker)
    spl = await source.actions.splits(ticker)
    div_ranges = [e for e in ledger if e.ticker == ticker and e.dataset == Dataset.DIVIDENDS]
    split_ranges = [e for e in ledger if e.ticker == ticker and e.dataset == Dataset.SPLITS]
    for i, e in enumerate(div_ranges):
        await target.actions.write(ticker, divs if i == 0 else [], None, TimeRange(e.start_ms, e.end_ms),
                                   fetched_at_ms=e.fetched_at_ms)
    for i, e in enumerate(split_ranges):
        await target.actions.write(ticker, None, spl if i == 0 else [], TimeRange(e.start_ms, e.end_ms),
                                   fetched_at_ms=e.fetched_at_ms)
    return len(divs) + len(spl)


async def _copy_reference(source: Store, target: Store, tickers: list[str], report: CopyReport) -> None:
    refreshes = {r.kind: r for r in await source.reference.refreshes()}
    listings = await source.reference.listings(ListingFilter())
    if listings or "tickers" in refreshes:
        figis = sorted({x.composite_figi for x in listings if x.composite_figi})
        changes: list[TickerChange] = []
        for figi in figis:
            changes += await source.reference.changes(figi)
        done = refreshes.get("tickers")
        await target.reference.replace_tickers(listings, changes, requests=done.requests if done else 0)
        report.listings = len(listings)
    underlyings = sorted({x.ticker for x in listings} | set(tickers))
    for underlying in underlyings:
        contracts = await source.reference.contracts(underlying)
        if contracts:
            kind = next((k for k in refreshes if k.startswith("contracts")), "contracts")
            await target.reference.upsert_contracts(kind, contracts, requests=0)
            report.contracts += len(contracts)


async def _copy_market_days(source: Store, target: Store, keys: list[SeriesKey], report: CopyReport) -> None:
    """Whole-market days, then each series' holes in them cut again (its coverage as the source's)."""
    days = []
    for ds in DATASETS:
        days += await source.market_days.recorded(ds.prefix, *EVER_MS)
    if not days:
        return
    await target.market_days.record(days)
    report.market_days = len(days)
    for key in keys:
        want = await source.coverage(key.ticker, Dataset.BARS, str(key.timeframe))
        extra = await target.coverage(key.ticker, Dataset.BARS, str(key.timeframe)) - want
        for rng in extra:  # a hole the source had in the market days (a deleted range)
            await target.delete_range(key.ticker, key.timeframe, rng.start_ms, rng.end_ms)


async def differences(source: Store, target: Store, keys: list[SeriesKey], tickers: list[str]) -> list[str]:
    """What differs between source and target: bar counts and spans, coverage, corporate actions."""
    out: list[str] = []
    theirs = {(s.ticker, s.timeframe): s for s in await target.catalog.series()}
    for s in await source.catalog.series():
        t = theirs.get((s.ticker, s.timeframe))
        if t is None or (t.bars, t.first_t, t.last_t) != (s.bars, s.first_t, s.last_t):
            out.append(f"{s.ticker} {s.timeframe}: source {s.bars} bars, target {t.bars if t else 0}")
    for key in keys:
        tfs = str(key.timeframe)
        mine = await source.coverage(key.ticker, Dataset.BARS, tfs)
        if mine != await target.coverage(key.ticker, Dataset.BARS, tfs):
            out.append(f"{key}: coverage differs")
    for ticker in tickers:
        if await source.actions.splits(ticker) != await target.actions.splits(ticker):
            out.append(f"{ticker}: splits differ")
        if await source.actions.dividends(ticker) != await target.actions.dividends(ticker):
            out.append(f"{ticker}: dividends differ")
        for ds in (Dataset.DIVIDENDS, Dataset.SPLITS):
            if await source.coverage(ticker, ds) != await target.coverage(ticker, ds):
                out.append(f"{ticker}: {ds.value} coverage differs")
    return out
