"""The columnar store's bar table: bars in the Iceberg table, its pointer and counts in the SQL database.

An :class:`IcebergBars` is a :class:`~mdw.store.primitives.BarTable` over the same database that
holds the ledger and the records, so :class:`~mdw.store.sqlstore.SqlStore` runs unchanged on top.
Inside a write's transaction it takes the catalog row's lock and reads the table's pointer (once
per transaction), diffs against that snapshot, stages the new files, swaps the pointer in the same
transaction and keeps ``lake_series`` (per-series counts and bounds, for status and the catalog)
exact. The commit order and why a crash cannot separate bars from coverage: ADR 0012.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mdw.domain import BarBatch, Timeframe, TimeRange
from mdw.errors import StoreError
from mdw.logs import get_logger
from mdw.store.base import SeriesStats, WriteSize
from mdw.store.lake import housekeeping, layout
from mdw.store.lake.catalog import CATALOG, CATALOG_DDL, CommitConflict, StagingCatalog, pointer_key
from mdw.store.lake.table import LakeTable, RangeDelete
from mdw.store.lake.url import LakeConfig
from mdw.store.primitives import Database, Tx, placeholders
from mdw.store.rows import as_int, as_opt_int, as_str
from mdw.store.writes import SeriesWrite

log = get_logger(__name__)
KEY = pointer_key(layout.NAMESPACE, layout.TABLE)
_WHERE = "catalog_name = ? AND table_namespace = ? AND table_name = ?"
_POINTER = f"SELECT metadata_location FROM iceberg_tables WHERE {_WHERE}"
_SWAP = (
    "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ?"
    f" WHERE {_WHERE} AND metadata_location = ?"
)
_SERIES_DDL = (
    "CREATE TABLE IF NOT EXISTS lake_series (ticker TEXT NOT NULL, timeframe TEXT NOT NULL,"
    " bars BIGINT NOT NULL, first_t BIGINT NOT NULL, last_t BIGINT NOT NULL, PRIMARY KEY (ticker, timeframe))"
)
_ORPHANS_DDL = "CREATE TABLE IF NOT EXISTS lake_orphans (path TEXT PRIMARY KEY, seen_at_ms BIGINT NOT NULL)"
_READ_COLUMNS = ("t", "o", "h", "l", "c", "v", "vw", "n", "otc")
# Add n bars between first_t and last_t to a series' row (one statement per series, batched).
_COUNT = (
    "INSERT INTO lake_series (ticker, timeframe, bars, first_t, last_t) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (ticker, timeframe) DO UPDATE SET bars = lake_series.bars + excluded.bars,"
    " first_t = CASE WHEN excluded.first_t < lake_series.first_t THEN excluded.first_t"
    " ELSE lake_series.first_t END,"
    " last_t = CASE WHEN excluded.last_t > lake_series.last_t THEN excluded.last_t"
    " ELSE lake_series.last_t END"
)
R = TypeVar("R")
# Threads of the store's own blocking work (table reads, staging a commit). Not the event loop's
# default executor: in a backfill that one decodes the vendor's pages, and a writer's step queued
# behind a dozen page decodes held up the whole pipeline. Two: one writer, one reader at a time.
LAKE_THREADS = 2


class IcebergBars:
    """A :class:`~mdw.store.primitives.BarTable` whose bars live in an Iceberg table."""

    # A commit writes data files, manifests and a metadata file whatever its size: a backfill's
    # writer groups pages into fewer, larger commits (waiting up to a second for 400k bars while
    # fetches run); a commit's files then hold whole timeframes of many series (ADR 0012).
    write_size = WriteSize(rows=1_000_000, writes=4096, queued=32, min_rows=400_000, max_wait_s=1.0)

    def __init__(self, db: Database[Tx], config: LakeConfig) -> None:
        self._db = db
        self._config = config
        catalog = StagingCatalog(CATALOG, uri="sqlite://", init_catalog_tables="false",
                                 warehouse=config.warehouse, **config.io_properties)  # fmt: skip
        self.lake = LakeTable(catalog)
        self._pointers: weakref.WeakKeyDictionary[Tx, str] = weakref.WeakKeyDictionary()
        self._commits = 0
        self._executor: ThreadPoolExecutor | None = None

    async def _run(self, fn: Callable[..., R], *args: object) -> R:
        """``fn(*args)`` on the store's own threads (with the caller's context, as ``to_thread``)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(LAKE_THREADS, thread_name_prefix="mdw-lake")
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    # -- lifecycle --------------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the catalog tables and the bars table when missing (idempotent, any process)."""
        async with self._db.transaction("lake.open") as tx:
            await tx.lock(":lake:create")  # first opens in several processes create the tables once
            for ddl in (*CATALOG_DDL, _SERIES_DDL, _ORPHANS_DDL):
                await tx.execute(ddl)
            if await tx.fetch(_POINTER, *KEY):
                return
            location = await self._run(self.lake.new_table, self._config.warehouse)
            await tx.execute(
                "INSERT INTO iceberg_namespace_properties (catalog_name, namespace, property_key,"
                " property_value) VALUES (?, ?, 'exists', 'true') ON CONFLICT DO NOTHING",
                CATALOG, layout.NAMESPACE,
            )  # fmt: skip
            await tx.execute(
                "INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, metadata_location,"
                " previous_metadata_location) VALUES (?, ?, ?, ?, NULL) ON CONFLICT DO NOTHING",
                *KEY, location,
            )  # fmt: skip

    async def close(self) -> None:
        """Stop the store's threads (a later call starts them again); caches stay."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    async def prepare(self, series: Sequence[SeriesWrite]) -> None:
        """Before a write's transaction: housekeeping, when enough commits have accumulated."""
        await self.maybe_maintain()

    # -- the pointer, under the transaction's lock -----------------------------------------------

    async def _pointer(self, tx: Tx) -> str:
        """The table's metadata location in this transaction, read once under the catalog row's lock."""
        held = self._pointers.get(tx)
        if held is not None:
            return held
        await tx.lock(":lake:bars")
        lock = " FOR UPDATE" if self._db.dialect.name == "postgres" else ""
        rows = await tx.fetch(_POINTER + lock, *KEY)
        if not rows:
            raise StoreError("the bars table is missing from the catalog (iceberg_tables)")
        self._pointers[tx] = as_str(rows[0][0])
        return self._pointers[tx]

    async def _swap(self, tx: Tx, old: str, new: str) -> None:
        if new == old:
            return
        if await tx.execute(_SWAP, new, old, *KEY, old) != 1:
            raise CommitConflict("the bars table was committed by another writer under this one's lock")
        self._pointers[tx] = new
        self._commits += 1

    async def current(self) -> str:
        """The committed pointer, outside any transaction (what a reader sees now)."""
        rows = await self._db.fetch("lake.pointer", _POINTER, *KEY)
        if not rows:
            raise StoreError("the bars table is missing from the catalog (iceberg_tables)")
        return as_str(rows[0][0])

    # -- writes -----------------------------------------------------------------------------------

    async def stored(
        self, tx: Tx, series: SeriesWrite, span: TimeRange
    ) -> tuple[BarBatch, npt.NDArray[np.bool_]]:
        return (await self.stored_many(tx, [(series, span)]))[0]

    async def stored_many(
        self, tx: Tx, series: Sequence[tuple[SeriesWrite, TimeRange]]
    ) -> list[tuple[BarBatch, npt.NDArray[np.bool_]]]:
        """The stored bars of each series' span at this transaction's snapshot, in one thread hop.

        ``lake_series`` holds each series' first and last ``t`` exactly, in the transaction that
        moves the pointer, so a span outside them (a new series, the next page of a backfill) is
        known empty without opening a file.
        """
        at = await self._pointer(tx)
        bounds = await self._bounds(tx, sorted({s.ticker for s, _ in series}))
        wanted = [
            (i, s, span) for i, (s, span) in enumerate(series)
            if (b := bounds.get((s.ticker, s.timeframe))) is not None
            and span.start_ms <= b[1] and span.end_ms > b[0]
        ]  # fmt: skip

        def read() -> dict[int, tuple[BarBatch, npt.NDArray[np.bool_]]]:
            out = {}
            for i, s, span in wanted:
                rows = self.lake.read(at, s.timeframe, s.ticker, span.start_ms, span.end_ms,
                                      (*_READ_COLUMNS, "source"))  # fmt: skip
                stored = layout.table_batch(s.ticker, s.batch.timeframe, rows)
                other = pc.not_equal(rows["source"], s.batch.source).to_numpy(zero_copy_only=False)
                out[i] = (stored, np.asarray(other, dtype=np.bool_))
            return out

        found = await self._run(read) if wanted else {}
        return [
            found.get(i) or (BarBatch.empty(s.ticker, s.batch.timeframe), np.zeros(0, dtype=np.bool_))
            for i, (s, _) in enumerate(series)
        ]  # fmt: skip

    async def _bounds(self, tx: Tx, tickers: Sequence[str]) -> dict[tuple[str, str], tuple[int, int]]:
        """``(ticker, timeframe) -> (first_t, last_t)`` of the stored series of ``tickers``."""
        out: dict[tuple[str, str], tuple[int, int]] = {}
        for lo in range(0, len(tickers), 500):
            chunk = tickers[lo : lo + 500]
            rows = await tx.fetch(
                "SELECT ticker, timeframe, first_t, last_t FROM lake_series"
                f" WHERE ticker IN ({placeholders(len(chunk))})", *chunk,
            )  # fmt: skip
            out.update({(as_str(r[0]), as_str(r[1])): (as_int(r[2]), as_int(r[3])) for r in rows})
        return out

    async def insert(self, tx: Tx, series: Sequence[SeriesWrite]) -> None:
        at = await self._pointer(tx)
        appends = _appends(series)
        new = await self._run(self.lake.stage, at, appends, [])
        await self._swap(tx, at, new)
        await tx.executemany(_COUNT, [(s.ticker, s.timeframe, len(s.batch), int(s.batch.t[0]),
                                       int(s.batch.t[-1])) for s in series])  # fmt: skip

    async def upsert(self, tx: Tx, series: Sequence[SeriesWrite]) -> int:
        """Replace the changed bars: delete each series' changed span, append the span merged.

        Stored bars inside a span that the write does not carry are read back and re-appended, so
        exactly the changed rows change (copy-on-write; mdw never writes delete files).
        """
        at = await self._pointer(tx)

        def stage() -> str:
            deletes, tables = [], []
            for s in series:
                lo, hi = int(s.batch.t[0]), int(s.batch.t[-1]) + 1
                kept = self.lake.read(at, s.timeframe, s.ticker, lo, hi)
                kept = kept.filter(pc.invert(pc.is_in(kept["t"], value_set=pa.array(s.batch.t))))
                merged = pa.concat_tables([kept.cast(layout.write_schema()), layout.write_table(s.batch)])
                tables.append(merged.sort_by("t"))
                deletes.append(RangeDelete(s.ticker, s.timeframe, lo, hi))
            appends: dict[str, list[pa.Table]] = {}
            for s, table in sorted(
                zip(series, tables, strict=True), key=lambda p: (p[0].timeframe, p[0].ticker)
            ):
                appends.setdefault(s.timeframe, []).append(table)
            return self.lake.stage(at, appends, deletes)

        new = await self._run(stage)
        await self._swap(tx, at, new)
        return sum(len(s.batch) for s in series)

    async def delete(self, tx: Tx, ticker: str, timeframe: str | None, rng: TimeRange | None) -> int:
        at = await self._pointer(tx)
        refs = [r for r in self.lake.files(at) if r.ticker_lo <= ticker <= r.ticker_hi]
        timeframes = sorted({r.timeframe for r in refs if timeframe is None or r.timeframe == timeframe})
        lo, hi = (rng.start_ms, rng.end_ms) if rng is not None else (-(2**62), 2**62)

        def stage() -> tuple[int, str]:
            count = sum(self.lake.read(at, tf, ticker, lo, hi, ("t",)).num_rows for tf in timeframes)
            if not count:
                return 0, at
            return count, self.lake.stage(at, {}, [RangeDelete(ticker, tf, lo, hi) for tf in timeframes])

        count, new = await self._run(stage)
        await self._swap(tx, at, new)
        for tf in timeframes:
            t = await self._run(self.lake.read, new, tf, ticker, -(2**62), 2**62, ("t",))
            await tx.execute("DELETE FROM lake_series WHERE ticker = ? AND timeframe = ?", ticker, tf)
            if t.num_rows:
                first, last = pc.min_max(t["t"]).values()
                await tx.execute(_COUNT, ticker, tf, t.num_rows, int(first.as_py()), int(last.as_py()))
        return count

    # -- reads ------------------------------------------------------------------------------------

    async def read(
        self, ticker: str, timeframe: Timeframe, rng: TimeRange, limit: int | None = None
    ) -> BarBatch:
        at = await self.current()
        rows = await self._run(self.lake.read, at, str(timeframe), ticker, rng.start_ms, rng.end_ms,
                                       _READ_COLUMNS)  # fmt: skip
        if limit is not None and rows.num_rows > limit:
            rows = rows.slice(0, limit)
        return layout.table_batch(ticker, timeframe, rows)

    async def stats(self, ticker: str | None = None) -> list[SeriesStats]:
        where, args = (" WHERE ticker = ?", (ticker,)) if ticker is not None else ("", ())
        rows = await self._db.fetch(
            "series_stats",
            f"SELECT ticker, timeframe, bars, first_t, last_t FROM lake_series{where}"
            " ORDER BY ticker, timeframe",
            *args,
        )
        return [SeriesStats(as_str(r[0]), as_str(r[1]), as_int(r[2]), as_opt_int(r[3]), as_opt_int(r[4]))
                for r in rows]  # fmt: skip

    # -- housekeeping -----------------------------------------------------------------------------

    async def maintain(self, *, keep_ms: int | None = None, grace_ms: int | None = None) -> dict[str, int]:
        """Compact small files, expire old snapshots, then delete files nothing references.

        Each step is its own transaction under the writers' lock; the deletion runs after the
        expiry has committed and spares files younger than ``grace_ms``.
        """
        keep = self._config.snapshot_keep_ms if keep_ms is None else keep_ms
        grace = self._config.orphan_grace_ms if grace_ms is None else grace_ms
        before = len(self.lake.files(await self.current()))
        for what, step in (("lake.compact", lambda at: housekeeping.compact(self.lake, at)),
                           ("lake.expire", lambda at: housekeeping.expire(self.lake, at, keep))):  # fmt: skip
            async with self._db.transaction(what) as tx:
                at = await self._pointer(tx)
                await self._swap(tx, at, await self._run(step, at))
        async with self._db.transaction("lake.clean") as tx:
            at = await self._pointer(tx)  # under the writers' lock: no commit moves it meanwhile
            seen = {
                as_str(r[0]): as_int(r[1])
                for r in await tx.fetch("SELECT path, seen_at_ms FROM lake_orphans")
            }
            removed, still = await self._run(housekeeping.remove_unreferenced, self.lake, at,
                                                     self._config.filesystem(), grace, seen)  # fmt: skip
            await tx.execute("DELETE FROM lake_orphans")
            await tx.executemany(
                "INSERT INTO lake_orphans (path, seen_at_ms) VALUES (?, ?)", list(still.items())
            )
        after = len(self.lake.files(at))
        log.info("lake maintained", action="lake.maintain", files_before=before, files_after=after,
                 removed=removed)  # fmt: skip
        return {"files_before": before, "files_after": after, "removed": removed}

    async def maybe_maintain(self) -> None:
        """Run :meth:`maintain` when enough commits have accumulated since the last run, or when a
        timeframe holds ``compact_files`` small files (what a series read before compaction pays
        for: one footer and row group per file its bounds cannot rule out)."""
        every, files = self._config.maintain_every, self._config.compact_files
        if not every:
            return
        due = self._commits >= every
        if not due and files and self._commits:
            small = housekeeping.small_counts(self.lake, await self.current())
            due = any(n >= files for n in small.values())
        if due:
            self._commits = 0
            started = time.perf_counter()
            await self.maintain()
            log.info(
                "lake maintenance", action="lake.maintain", seconds=round(time.perf_counter() - started, 3)
            )


def _appends(series: Sequence[SeriesWrite]) -> dict[str, list[pa.Table]]:
    """Per timeframe, each series' bars as a table, in ticker order (the files' sort order)."""
    out: dict[str, list[pa.Table]] = {}
    for s in sorted(series, key=lambda s: (s.timeframe, s.ticker)):
        out.setdefault(s.timeframe, []).append(layout.write_table(s.batch))
    return out
