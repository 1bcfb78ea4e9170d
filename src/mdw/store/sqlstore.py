"""The one implementation of :class:`~mdw.store.base.Store`, over a backend's primitives.

``SqlStore`` composes a :class:`~mdw.store.primitives.Database` (ledger, records, transactions)
with a :class:`~mdw.store.primitives.BarTable` (the bulk paths of bars). The invariants live here
and nowhere else:

- a batch is checked and grouped before any I/O, so a bad batch writes nothing;
- every series of a write is locked in a fixed order, diffed against what is stored (identical
  rows are left alone, differing ones are corrections, counted as updated), and its coverage is
  merged into the ledger, all inside ONE transaction with the bars;
- a deleted range leaves the ledger in the same transaction;
- long reads page by the primary key (keyset), so memory stays flat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Generic, Self

from mdw.clock import now_ms
from mdw.domain import BarBatch, MarketBars, RangeSet, Timeframe, TimeRange
from mdw.store import ledger, market_days, migrate
from mdw.store.actions import SqlActions, SqlCatalog
from mdw.store.arrow import to_arrow
from mdw.store.base import BarWrite, Dataset, MarketDay, SchemaVersion, WriteResult, WriteSize
from mdw.store.ledger import LedgerKey
from mdw.store.planfacts import SqlPlanFacts
from mdw.store.primitives import BarTable, Database, ManyStoredTable, MarketBarTable, TxT
from mdw.store.records import SqlAudit, SqlKeys, SqlQuarantine, SqlRuns, SqlSymbols
from mdw.store.reference import SqlReference, SqlUniverses
from mdw.store.writes import SeriesWrite, diff_bars, diff_market, prepare_market, prepare_writes

if TYPE_CHECKING:
    import pyarrow as pa


class SqlStore(Generic[TxT]):
    """A :class:`~mdw.store.base.Store`: bars in ``bars``, everything else in ``database``."""

    def __init__(self, url: str, database: Database[TxT], bars: BarTable[TxT], *, read_only: bool = False
                 ) -> None:
        self.url = url
        self.read_only = read_only
        self.database = database  # reachable for store-package modules that add tables of their own
        self._bars = bars
        self.write_size: WriteSize = bars.write_size  # how the backfill writer groups pages
        self.symbols = SqlSymbols(database, bars)
        self.runs = SqlRuns(database)
        self.keys = SqlKeys(database)
        self.audit = SqlAudit(database)
        self.quarantine = SqlQuarantine(database)
        self.actions = SqlActions(database)
        self.catalog = SqlCatalog(database, bars)
        self.market_days = market_days.SqlMarketDays(database)
        self.plan_facts = SqlPlanFacts(database)
        self.reference = SqlReference(database)
        self.universes = SqlUniverses(database)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        await self.database.open()
        if not self.read_only:  # a read-only open leaves the schema alone (open_store checks its version)
            await migrate.migrate(self.database)
        await self._bars.open()

    async def checkpoint(self) -> bool:
        return await self.database.checkpoint()

    async def close(self) -> None:
        await self._bars.close()
        await self.database.close()

    async def ping(self) -> SchemaVersion:
        return await migrate.schema_version(self.database)

    # -- writes ---------------------------------------------------------------------------------

    async def write_bars(
        self, writes: Sequence[BarWrite], *, fetched_at_ms: int | None = None
    ) -> WriteResult:
        series = prepare_writes(writes)  # before any I/O: a bad batch must write nothing
        if not series:
            return WriteResult()
        fetched = now_ms() if fetched_at_ms is None else fetched_at_ms
        await self._bars.prepare(series)
        new: list[SeriesWrite] = []
        changed: list[SeriesWrite] = []
        unchanged = updated = 0
        async with self.database.transaction("write_bars") as tx:
            # sorted by (ticker, timeframe): every writer locks in the same order
            await tx.lock_many([f":bars:{s.ticker}:{s.timeframe}" for s in series])
            spanned = [(s, span) for s in series if (span := s.span) is not None]
            # Under the series locks, what is stored in the span decides: new rows are plain
            # inserts, differing rows corrections, identical rows nothing at all.
            if isinstance(self._bars, ManyStoredTable):
                found = await self._bars.stored_many(tx, spanned)
            else:
                found = [await self._bars.stored(tx, s, span) for s, span in spanned]
            for (s, _), (stored, other_source) in zip(spanned, found, strict=True):
                diff = diff_bars(s.batch, stored, other_source)
                if len(diff.new):
                    new.append(SeriesWrite(s.ticker, s.timeframe, diff.new, RangeSet()))
                if len(diff.changed):
                    changed.append(SeriesWrite(s.ticker, s.timeframe, diff.changed, RangeSet()))
                unchanged += diff.unchanged
            # The ledger first: a failure while writing bars then also undoes the ledger rows.
            await ledger.merge_many(
                tx, [(LedgerKey(s.ticker, Dataset.BARS, s.timeframe), s.covered) for s in series], fetched
            )
            if new:
                await self._bars.insert(tx, new)
            if changed:
                updated = await self._bars.upsert(tx, changed)
                unchanged += sum(len(s.batch) for s in changed) - updated
        return WriteResult(inserted=sum(len(s.batch) for s in new), updated=updated, unchanged=unchanged)

    async def write_market(
        self, bars: MarketBars, *, days: Sequence[MarketDay] = ()
    ) -> WriteResult:
        bars = prepare_market(bars)  # before any I/O: a bad row must write nothing
        if not len(bars) and not days:
            return WriteResult()
        tf = str(bars.timeframe)
        if len(bars):
            # Only the rows' times matter here (which yearly partitions must exist).
            await self._bars.prepare([SeriesWrite(bars.tickers[0], tf, _times(bars), RangeSet())])
        inserted = updated = unchanged = 0
        async with self.database.transaction("write_market") as tx:
            # in name order: every writer locks series in the same order
            await tx.lock_many([f":bars:{name}:{tf}" for name in bars.tickers])
            if len(bars):
                span = TimeRange(int(bars.t.min()), int(bars.t.max()) + 1)
                if isinstance(self._bars, MarketBarTable):
                    diff = diff_market(bars, await self._bars.stored_market(tx, bars, span))
                    unchanged = diff.unchanged
                    new = bars if diff.unchanged == 0 and not diff.changed.any() else bars.take(diff.new)
                    if len(new):
                        await self._bars.insert_market(tx, new)
                        inserted = len(new)
                    changed = [SeriesWrite(b.ticker, tf, b, RangeSet())
                               for b in bars.take(diff.changed).batches()] if diff.changed.any() else []
                else:  # a bar table without the columnar paths: ticker by ticker
                    fresh: list[SeriesWrite] = []
                    changed = []
                    for b in bars.batches():
                        s = SeriesWrite(b.ticker, tf, b, RangeSet())
                        stored, other_source = await self._bars.stored(tx, s, TimeRange(int(b.t[0]),
                                                                                         int(b.t[-1]) + 1))
                        d = diff_bars(b, stored, other_source)
                        if len(d.new):
                            fresh.append(SeriesWrite(b.ticker, tf, d.new, RangeSet()))
                        if len(d.changed):
                            changed.append(SeriesWrite(b.ticker, tf, d.changed, RangeSet()))
                        unchanged += d.unchanged
                    if fresh:
                        await self._bars.insert(tx, fresh)
                        inserted = sum(len(s.batch) for s in fresh)
                if changed:
                    updated = await self._bars.upsert(tx, changed)
                    unchanged += sum(len(s.batch) for s in changed) - updated
            if days:
                await market_days.record_in(tx, days)
        return WriteResult(inserted=inserted, updated=updated, unchanged=unchanged)

    async def delete_range(self, ticker: str, timeframe: Timeframe | str, start_ms: int, end_ms: int) -> int:
        rng = TimeRange(int(start_ms), int(end_ms))
        tf = str(_timeframe(timeframe))
        async with self.database.transaction("delete_range") as tx:
            await tx.lock(f":bars:{ticker}:{tf}")
            deleted = await self._bars.delete(tx, ticker, tf, rng)
            await ledger.cut(tx, LedgerKey(ticker, Dataset.BARS, tf), rng)
            await market_days.punch(tx, ticker, tf, rng)
        return deleted

    # -- reads ----------------------------------------------------------------------------------

    async def bars(self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int) -> BarBatch:
        return await self._bars.read(ticker, _timeframe(timeframe), TimeRange(int(start_ms), int(end_ms)))

    async def iter_bars(
        self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int, chunk: int = 100_000
    ) -> AsyncIterator[BarBatch]:
        tf = _timeframe(timeframe)
        rng = TimeRange(int(start_ms), int(end_ms))
        lo = rng.start_ms
        while True:
            # Keyset paging on the primary key: each chunk is one short read and no connection is
            # held between chunks, so memory stays flat however long the range.
            batch = await self._bars.read(ticker, tf, TimeRange(lo, rng.end_ms), chunk)
            if not len(batch):
                return
            yield batch
            if len(batch) < chunk:
                return
            lo = int(batch.t[-1]) + 1

    async def bars_arrow(self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int) -> pa.Table:
        return to_arrow(await self.bars(ticker, timeframe, start_ms, end_ms))

    async def coverage_many(self, tickers: Sequence[str], dataset: Dataset, timeframe: str = ""
                            ) -> dict[str, RangeSet]:
        held = await ledger.ranges_many(self.database, tickers, Dataset(dataset), str(timeframe))
        if Dataset(dataset) is not Dataset.BARS:
            return held
        days = await market_days.covered_many(self.database, tickers, str(timeframe))
        return {t: held[t] | days[t] if t in days else held[t] for t in tickers}

    async def coverage(self, ticker: str, dataset: Dataset, timeframe: str = "") -> RangeSet:
        held = await ledger.ranges(self.database, LedgerKey(ticker, Dataset(dataset), str(timeframe)))
        if Dataset(dataset) is not Dataset.BARS:
            return held
        days = await market_days.covered(self.database, ticker, str(timeframe))
        return held | days if days else held


def _times(bars: MarketBars) -> BarBatch:
    """A batch carrying ``bars``' times (and values) under its first ticker, for ``BarTable.prepare``."""
    return BarBatch(bars.tickers[0], bars.timeframe, bars.t, bars.o, bars.h, bars.l, bars.c, bars.v, bars.vw,
                    bars.n, bars.source)


def _timeframe(timeframe: Timeframe | str) -> Timeframe:
    """Accept ``"1m"`` as well as ``Timeframe.parse("1m")`` at the read API."""
    return Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe
