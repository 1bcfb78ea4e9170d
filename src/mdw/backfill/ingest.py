"""Flat-file ingest: one (dataset, day) file downloaded, decoded and stored as one pipeline.

Three stages run at once, each bounded, so memory stays flat whatever the size of the file:

- the download (async, the file source) feeds compressed chunks into a :class:`ChunkReader` of a
  few chunks;
- the decoder (one worker thread) turns the CSV into columns of every ticker of a block
  (:class:`~mdw.domain.MarketBars`, no per-ticker object), one block at a time, onto a queue of
  at most eight blocks (of at most 4 MB of text each; a file's first blocks are smaller);
- the writer (this coroutine) takes, whenever the store is free for it, every block decoded so
  far (at most ``rows_per_write`` rows) as one chunk, so the store starts after the first block
  and never waits while the decoder is ahead; per chunk it screens every row in one vectorised
  pass as the REST path checks its bars (invalid bars go to the quarantine, the rest is kept),
  builds the derived timeframes of each completed ticker when asked, and writes the chunk with
  :meth:`~mdw.store.base.Store.write_market`: one transaction, one diff against what is stored
  and one bulk insert for the whole chunk.

With several files in flight (:func:`~mdw.backfill.filerun.run_files`), :class:`WriteTurns` gives
the store to the earliest file with rows ready; the next file downloads and decodes meanwhile
(ADR 0020).

The day is recorded as covered, as a whole-market day (:class:`~mdw.store.base.MarketDay`: one
row per timeframe, however many tickers the file holds; tickers absent from it are confirmed
empty), only in the transaction that stores the file's last rows (or, with derived timeframes,
after those are stored too). A run killed or failing anywhere before leaves bars that a re-run
rewrites identically and no coverage, so no day is ever half covered; a re-run downloads the
file again from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import queue
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import numpy as np

from mdw.backfill.derive import resample
from mdw.backfill.quarantine import quarantine_error
from mdw.domain import BarBatch, MarketBars, RangeSet, Timeframe, reasons_by_row
from mdw.errors import MdwError, ValidationError
from mdw.flatfiles.decode import SOURCE, Block, ChunkReader, DecodeStats, decode
from mdw.flatfiles.keys import FileDataset, FileInfo, TransferStats
from mdw.logs import get_logger
from mdw.store.base import BarWrite, MarketDay, Store, WriteResult

log = get_logger(__name__)
ROWS_PER_WRITE = 250_000
_BLOCKS_QUEUED = 8
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


class WriteTurns:
    """Whose turn it is at the store when several files are in flight: the lowest rank that waits.

    The store takes one transaction at a time anyway; without turns the files in flight would
    alternate chunk by chunk and end together, and the next file would start decoding only then,
    with the store idle. With turns the earliest file (in plan order) writes whenever it has rows
    ready and the later ones decode ahead, so one day completes after another and the store always
    has the next chunk waiting.
    """

    def __init__(self) -> None:
        self._busy = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []  # a heap by rank, then arrival
        self._arrivals = itertools.count()

    @contextlib.asynccontextmanager
    async def turn(self, rank: int) -> AsyncIterator[None]:
        if self._busy:
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (rank, next(self._arrivals), granted))
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._release()  # handed the turn as it was cancelled: pass it on
                raise
        self._busy = True
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():  # a cancelled waiter's future is done: skip it
                granted.set_result(None)
                return  # still busy: the turn passed straight to that waiter
        self._busy = False


class _Ingest:
    """The state of one file's pipeline."""

    def __init__(self, source: FileSource, store: Store, job: FileJob, run_id: str,
                 rows_per_write: int, turns: WriteTurns | None, rank: int) -> None:
        self.source, self.store, self.job = source, store, job
        self.run_id = run_id
        self.turns, self.rank = turns or WriteTurns(), rank
        self.rows_per_write = rows_per_write
        self.result = FileResult(job)
        self.reader = ChunkReader(depth=_CHUNKS_QUEUED)
        self.blocks: queue.Queue[Block | BaseException | None] = queue.Queue(maxsize=_BLOCKS_QUEUED)
        self.stop = threading.Event()
        self.decoded = threading.Event()  # the whole file is decoded and queued
        self.stats = DecodeStats()
        self.pending: list[MarketBars] = []  # decoded blocks not yet written
        self.pending_rows = 0
        self.derived: list[BarWrite] = []  # derived bars not yet written
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
            if self._put(None):
                self.decoded.set()  # the end is queued, behind the last blocks
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
        """Write the decoded rows as they come: whatever is decoded when the store is ours is one chunk.

        The writer waits (without the store) for a block, then for its turn at the store, then
        takes every block decoded meanwhile, up to ``rows_per_write`` rows, and writes them. While
        the store writes, the decoder runs ahead, so the next chunk is ready when the store is free:
        the first write starts after one block, and later chunks grow to ``rows_per_write``. The turn
        is kept while more blocks wait, so another file in flight writes only when this one has
        nothing ready.
        """
        ended = False
        while not ended:
            ended = self._take(await asyncio.get_running_loop().run_in_executor(None, self.blocks.get))
            async with self.turns.turn(self.rank):
                while not ended:
                    ended = self._drain()
                    if ended:
                        break
                    await self._flush()
                    if self.blocks.empty():
                        break  # nothing decoded yet: the store may serve another file meanwhile
                if ended:
                    await self._finish()

    def _take(self, item: Block | BaseException | None) -> bool:
        """Add a decoded block to the pending rows; True at the end of the file."""
        if item is None:
            return True
        if isinstance(item, BaseException):
            raise item
        if len(item.bars):
            self.pending.append(item.bars)
            self.pending_rows += len(item.bars)
        return False

    def _drain(self) -> bool:
        """Take the blocks already decoded, without waiting, up to ``rows_per_write`` rows (and the
        end of the file when only it is left, so the day commits with the last rows)."""
        while self.pending_rows < self.rows_per_write or (self.decoded.is_set() and self.blocks.qsize() == 1):
            try:
                item = self.blocks.get_nowait()
            except queue.Empty:
                return False
            if self._take(item):
                return True
        return False

    async def _finish(self) -> None:
        self.result.rows = self.stats.rows
        # One transaction holds the day for every ticker of the market (absent ones are confirmed
        # empty), at every timeframe, or for none of them: with the last minutes when nothing is
        # derived, else after the derived bars are stored.
        days = market_days(self.job, int(time.time() * 1000))
        if not self.job.derive:
            await self._flush(days)
        else:
            await self._flush()
            self._derive_carry()
            await self._write_derived()
            await self._rederive()
            await self._write(MarketBars.empty(self.job.dataset.timeframe, SOURCE), days)
        self.result.tickers = len(self.tickers)

    # ------------------------------------------------------------------ writing

    async def _flush(self, days: Sequence[MarketDay] = ()) -> None:
        """Screen the pending rows as one chunk, derive from them, and write them (with ``days``)."""
        tf = self.job.dataset.timeframe
        chunk = MarketBars.concat(self.pending).normalised() if self.pending else MarketBars.empty(tf, SOURCE)
        self.pending, self.pending_rows = [], 0
        self.tickers.update(chunk.tickers)
        chunk = await self._screen(chunk)
        if self.job.derive:
            for batch in chunk.batches():
                self._carry(batch)
        await self._write(chunk, days)
        await self._write_derived()

    async def _screen(self, chunk: MarketBars) -> MarketBars:
        """Quarantine the rows that break an invariant (checked as REST bars are), keep the rest."""
        problems = chunk.problems()  # one vectorised pass; the full check only where it can fail
        if not problems:
            return chunk
        keep = np.ones(len(chunk), dtype=bool)
        for ticker, found in problems.items():
            why = reasons_by_row(found)
            rows = np.asarray(sorted(why), dtype=np.int64)
            first = int(np.argmax(chunk.code == chunk.tickers.index(ticker)))  # the ticker's own row 0
            error = ValidationError(f"{ticker} {chunk.timeframe}: {len(rows)} invalid bar(s) in "
                                    f"{self.job.info.key}", rows=(rows - first).tolist(),
                                    bars=chunk.take(rows).batch(0, len(rows)),
                                    reasons=[why[int(r)] for r in rows], url=self.job.info.key)
            kept, _ = await quarantine_error(self.store, error, self.run_id)
            self.result.quarantined += kept
            keep[rows] = False
        return chunk.take(keep)

    async def _write(self, chunk: MarketBars, days: Sequence[MarketDay]) -> None:
        """One transaction: the chunk's bars, and ``days`` when given."""
        if not len(chunk) and not days:
            return
        started = time.perf_counter()
        try:
            try:
                self.result.written = self.result.written + await self.store.write_market(chunk, days=days)
                self.result.transactions += 1
            except ValidationError:
                # What the screen let through and the store still refuses: ticker by ticker, keeping
                # aside what is refused; then the day.
                await self._write_each([BarWrite(b, RangeSet()) for b in chunk.batches()])
                if days:
                    await self.store.write_market(MarketBars.empty(chunk.timeframe, SOURCE), days=days)
                    self.result.transactions += 1
        finally:
            self.result.db_s += time.perf_counter() - started

    def _carry(self, batch: BarBatch) -> None:
        if self.carry and self.carry[0].ticker != batch.ticker:
            self._derive_carry()
        if not self.carry and batch.ticker in self.derived_done:
            self.rederive.add(batch.ticker)  # its minutes were not contiguous in the file
        self.carry.append(batch)

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
            self.derived.append(BarWrite(bars, RangeSet()))

    async def _rederive(self) -> None:
        """Tickers whose minutes were not contiguous in the file: derive from what is now stored."""
        rng = self.job.dataset.day_range(self.job.day)
        for ticker in sorted(self.rederive):
            minutes = await self.store.bars(ticker, self.job.dataset.timeframe, rng.start_ms, rng.end_ms)
            for tf in self.job.derive:
                bars = resample(minutes, self.job.dataset.asset, tf)
                self.result.derived += len(bars)
                self.derived.append(BarWrite(bars, RangeSet()))
        await self._write_derived()

    async def _write_derived(self) -> None:
        if not self.derived:
            return
        writes, self.derived = self.derived, []
        started = time.perf_counter()
        try:
            try:
                self.result.written = self.result.written + await self.store.write_bars(writes)
                self.result.transactions += 1
            except ValidationError:
                await self._write_each(writes)
        finally:
            self.result.db_s += time.perf_counter() - started

    async def _write_each(self, writes: Sequence[BarWrite]) -> None:
        """Each write alone, quarantining what the store refuses."""
        for one in writes:
            try:
                self.result.written = self.result.written + await self.store.write_bars([one])
                self.result.transactions += 1
            except ValidationError as exc:
                exc.url = exc.url or self.job.info.key
                kept, _ = await quarantine_error(self.store, exc, self.run_id)
                self.result.quarantined += kept


async def ingest_file(source: FileSource, store: Store, job: FileJob, *, run_id: str = "",
                      rows_per_write: int = ROWS_PER_WRITE, turns: WriteTurns | None = None,
                      rank: int = 0, decoded: asyncio.Event | None = None) -> FileResult:
    """Download, decode and store one day's file; record the day covered only once all of it is stored.

    With several files in flight, ``turns`` (shared by them) gives the store to the file of the
    lowest ``rank`` that has rows ready; the others decode ahead, within their bounded queues.
    ``decoded`` is set once the whole file is decoded (queued for the writer) or the ingest ends.

    Failures (the vendor's or the store's) are returned in the result, not raised, so a caller
    running many files isolates them; ``CancelledError`` propagates, after the decoder thread has
    been told to stop.
    """
    run = _Ingest(source, store, job, run_id, rows_per_write, turns, rank)
    started = time.perf_counter()
    downloader = asyncio.create_task(run.download(), name=f"flatfile-download-{job.info.key}")
    decoder = asyncio.create_task(asyncio.to_thread(run.decode), name=f"flatfile-decode-{job.info.key}")
    if decoded is not None:
        decoder.add_done_callback(lambda _: decoded.set())
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
        if decoded is not None:
            decoded.set()
        run.result.seconds = time.perf_counter() - started
    return run.result
