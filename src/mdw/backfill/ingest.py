"""Flat-file ingest: one (dataset, day) file downloaded, decoded and stored as one pipeline.

Three stages run at once, each bounded, so memory stays flat whatever the size of the file:

- the download (async, the file source) feeds compressed chunks into a :class:`ChunkReader` of a
  few chunks;
- the decoder (one worker thread) turns the CSV into per-ticker batches, one block at a time,
  onto a queue of two blocks;
- the writer (this coroutine) screens each batch as the REST path does (invalid bars go to the
  quarantine, the rest is kept), builds the derived timeframes of each completed ticker, and
  writes the bars in transactions of about ``rows_per_write`` rows, **without coverage**.

Only when the whole file has been stored does one last transaction record the day as covered,
as a whole-market day (:class:`~mdw.store.base.MarketDay`): one row per timeframe, however many
tickers the file holds, and tickers absent from it are confirmed empty.
A run killed or failing anywhere before leaves bars that a re-run rewrites identically and no
coverage, so no day is ever half covered; a re-run downloads the file again from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import numpy as np

from mdw.backfill.derive import resample
from mdw.backfill.quarantine import quarantine_error
from mdw.domain import BarBatch, RangeSet, Timeframe, reasons_by_row
from mdw.errors import MdwError, ValidationError
from mdw.flatfiles.decode import Block, ChunkReader, DecodeStats, decode
from mdw.flatfiles.keys import FileDataset, FileInfo, TransferStats
from mdw.logs import get_logger
from mdw.store.base import BarWrite, MarketDay, Store, WriteResult

log = get_logger(__name__)
ROWS_PER_WRITE = 250_000
_BLOCKS_QUEUED = 2
_CHUNKS_QUEUED = 8
_POLL_S = 0.1


class FileSource(Protocol):
    """What the ingest needs of the flat-file bucket (``mdw.flatfiles.s3.FlatFileClient`` fits)."""

    stats: TransferStats

    async def list_month(self, ds: FileDataset, year: int, month: int) -> list[FileInfo]: ...

    async def head(self, key: str) -> FileInfo: ...

    def download(self, info: FileInfo, chunk: int = ...) -> AsyncIterator[bytes]: ...


@dataclass(frozen=True, slots=True)
class FileJob:
    """One day's file of one dataset, as listed, and the coarser timeframes to build from it."""

    dataset: FileDataset
    day: date
    info: FileInfo
    derive: tuple[Timeframe, ...] = ()

    @property
    def label(self) -> str:
        return f"flatfile:{self.dataset.prefix}"

    @property
    def timeframes(self) -> tuple[Timeframe, ...]:
        return (self.dataset.timeframe, *self.derive)


@dataclass(slots=True)
class FileResult:
    """What ingesting one file did."""

    job: FileJob
    rows: int = 0  # decoded
    tickers: int = 0
    written: WriteResult = field(default_factory=WriteResult)
    derived: int = 0  # bars built for the derived timeframes
    quarantined: int = 0
    bytes: int = 0
    transactions: int = 0
    db_s: float = 0.0
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def market_days(job: FileJob, fetched_at_ms: int) -> list[MarketDay]:
    """The whole-market days a stored file holds: its day, at its timeframe and each derived one."""
    rng = job.dataset.day_range(job.day)
    return [MarketDay(job.dataset.asset.value, str(tf), rng.start_ms, rng.end_ms, job.dataset.prefix,
                      job.info.etag, job.info.size, job.info.last_modified_ms, fetched_at_ms)
            for tf in job.timeframes]


class _Ingest:
    """The state of one file's pipeline."""

    def __init__(self, source: FileSource, store: Store, job: FileJob, run_id: str,
                 rows_per_write: int) -> None:
        self.source, self.store, self.job = source, store, job
        self.run_id = run_id
        self.rows_per_write = rows_per_write
        self.result = FileResult(job)
        self.reader = ChunkReader(depth=_CHUNKS_QUEUED)
        self.blocks: queue.Queue[Block | BaseException | None] = queue.Queue(maxsize=_BLOCKS_QUEUED)
        self.stop = threading.Event()
        self.stats = DecodeStats()
        self.pending: list[BarWrite] = []
        self.pending_rows = 0
        self.tickers: set[str] = set()
        self.carry: list[BarBatch] = []  # the current ticker's minutes, for derived timeframes
        self.derived_done: set[str] = set()
        self.rederive: set[str] = set()  # tickers met again after they were derived (unsorted file)

    # ------------------------------------------------------------------ stages

    async def download(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for chunk in self.source.download(self.job.info):
                self.result.bytes += len(chunk)
                await loop.run_in_executor(None, self.reader.feed, chunk)
        except BaseException as exc:
            self.reader.fail(exc)
            raise
        self.reader.finish()

    def decode(self) -> None:
        """The decoder thread: blocks onto the queue, then None (or the error that ended it)."""
        try:
            for block in decode(self.reader, self.job.dataset.timeframe, stats=self.stats):
                if not self._put(block):
                    return
            self._put(None)
        except BaseException as exc:
            self._put(exc)
        finally:
            self.reader.abandon()

    def _put(self, item: Block | BaseException | None) -> bool:
        while not self.stop.is_set():
            try:
                self.blocks.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    async def write(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await loop.run_in_executor(None, self.blocks.get)
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            for batch, suspect in zip(item.batches, item.suspect, strict=True):
                await self._take(batch, suspect)
            if self.pending_rows >= self.rows_per_write:
                await self._flush()
        self._derive_carry()
        await self._flush()
        await self._rederive()
        self.result.rows = self.stats.rows
        self.result.tickers = len(self.tickers)
        started = time.perf_counter()
        try:
            # One transaction: the day is held for every ticker of the market (absent ones are
            # confirmed empty), at every timeframe, or for none of them.
            await self.store.market_days.record(market_days(self.job, int(time.time() * 1000)))
        finally:
            self.result.db_s += time.perf_counter() - started
        self.result.transactions += 1

    # ------------------------------------------------------------------ writing

    async def _take(self, batch: BarBatch, suspect: bool) -> None:
        self.tickers.add(batch.ticker)
        problems = batch.problems() if suspect else None  # the block's vectorised pass cleared the rest
        if problems:
            why = reasons_by_row(problems)
            rows = np.asarray(sorted(why), dtype=np.int64)
            error = ValidationError(f"{batch.ticker} {batch.timeframe}: {len(rows)} invalid bar(s) in "
                                    f"{self.job.info.key}", rows=rows.tolist(), bars=batch.take(rows),
                                    reasons=[why[int(r)] for r in rows], url=self.job.info.key)
            kept, _ = await quarantine_error(self.store, error, self.run_id)
            self.result.quarantined += kept
            keep = np.ones(len(batch), dtype=bool)
            keep[rows] = False
            batch = batch.take(keep)
        if self.job.derive:
            if self.carry and self.carry[0].ticker != batch.ticker:
                self._derive_carry()
            if not self.carry and batch.ticker in self.derived_done:
                self.rederive.add(batch.ticker)  # its minutes were not contiguous in the file
            self.carry.append(batch)
        if len(batch):
            self.pending.append(BarWrite(batch, RangeSet()))
            self.pending_rows += len(batch)

    def _derive_carry(self) -> None:
        if not self.carry:
            return
        minutes = BarBatch.concat(self.carry) if len(self.carry) > 1 else self.carry[0]
        self.carry = []
        self.derived_done.add(minutes.ticker)
        if minutes.ticker in self.rederive or not len(minutes):
            return
        for tf in self.job.derive:
            bars = resample(minutes, self.job.dataset.asset, tf)
            self.result.derived += len(bars)
            self.pending.append(BarWrite(bars, RangeSet()))
            self.pending_rows += len(bars)

    async def _rederive(self) -> None:
        """Tickers whose minutes were not contiguous in the file: derive from what is now stored."""
        rng = self.job.dataset.day_range(self.job.day)
        for ticker in sorted(self.rederive):
            minutes = await self.store.bars(ticker, self.job.dataset.timeframe, rng.start_ms, rng.end_ms)
            for tf in self.job.derive:
                bars = resample(minutes, self.job.dataset.asset, tf)
                self.result.derived += len(bars)
                self.pending.append(BarWrite(bars, RangeSet()))
        await self._flush()

    async def _flush(self) -> None:
        if not self.pending:
            return
        writes, self.pending, self.pending_rows = self.pending, [], 0
        started = time.perf_counter()
        try:
            try:
                self.result.written = self.result.written + await self.store.write_bars(writes)
                self.result.transactions += 1
            except ValidationError:
                # Two rows of one ticker and minute in one file: write each batch alone, keep aside
                # what the store still refuses.
                for one in writes:
                    try:
                        self.result.written = self.result.written + await self.store.write_bars([one])
                        self.result.transactions += 1
                    except ValidationError as exc:
                        exc.url = exc.url or self.job.info.key
                        kept, _ = await quarantine_error(self.store, exc, self.run_id)
                        self.result.quarantined += kept
        finally:
            self.result.db_s += time.perf_counter() - started


async def ingest_file(source: FileSource, store: Store, job: FileJob, *, run_id: str = "",
                      rows_per_write: int = ROWS_PER_WRITE) -> FileResult:
    """Download, decode and store one day's file; record the day covered only once all of it is stored.

    Failures (the vendor's or the store's) are returned in the result, not raised, so a caller
    running many files isolates them; ``CancelledError`` propagates, after the decoder thread has
    been told to stop.
    """
    run = _Ingest(source, store, job, run_id, rows_per_write)
    started = time.perf_counter()
    downloader = asyncio.create_task(run.download(), name=f"flatfile-download-{job.info.key}")
    decoder = asyncio.create_task(asyncio.to_thread(run.decode), name=f"flatfile-decode-{job.info.key}")
    try:
        await run.write()
        await downloader
    except MdwError as exc:
        run.result.error = str(exc)
        log.warning("flat-file ingest failed", action="flatfiles.ingest_failed", key=job.info.key,
                    error=str(exc))
    finally:
        run.stop.set()
        run.reader.fail(asyncio.CancelledError())  # unblocks a decoder waiting for bytes
        with contextlib.suppress(queue.Full):
            run.blocks.put_nowait(None)  # ... and a writer's executor thread waiting for a block
        downloader.cancel()
        with contextlib.suppress(BaseException):
            await downloader
        await asyncio.shield(decoder)  # the thread ends once the reader fails; never leave it behind
        run.result.seconds = time.perf_counter() - started
    return run.result
