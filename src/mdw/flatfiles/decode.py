"""Decoding a flat file as it arrives: gzip (ISA-L) -> CSV (pyarrow, one block at a time) -> bar columns.

The reader never holds more than one block of the CSV (``block_size`` bytes of text, about 65,000
rows) plus the compressed chunks waiting in a small queue, so memory stays flat whatever the size
of the file. The gzip stream is inflated by ISA-L (``isal``, about 3x zlib's speed: inflating was
40% of the decoding with the zlib inside pyarrow), one compressed chunk at a time. Each block
becomes columns of every ticker in it (:class:`~mdw.domain.MarketBars`, grouped by ticker, each
ticker's rows by time), with no per-ticker object: ``window_start`` nanoseconds become epoch ms,
``vw`` is missing (NaN, the store's missing-value convention), ``source`` is
``flatfile``, and pairs spelled ``X:BTC-USD`` become ``X:BTCUSD``. Nothing is validated here: the
ingest checks every row as the REST path does, and quarantines what breaks an invariant.

A timestamp that is not a whole millisecond is kept one millisecond off its minute, so the bar
check flags it instead of a silent rounding.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pcsv
from isal import isal_zlib

from mdw.domain import MISSING_N, BarBatch, MarketBars, Timeframe
from mdw.errors import VendorTransientError
from mdw.flatfiles.keys import vendor_ticker

SOURCE = "flatfile"
BLOCK_SIZE = 4 << 20
FIRST_BLOCK = 256 << 10  # the first block, small: the store starts writing sooner
_NS_PER_MS = 1_000_000
_TYPES: dict[str, pa.DataType] = {"ticker": pa.dictionary(pa.int32(), pa.string()), "volume": pa.float64(),
                                  "open": pa.float64(),
                          "close": pa.float64(), "high": pa.float64(), "low": pa.float64(),
                          "window_start": pa.int64(), "transactions": pa.int64()}
COLUMNS = tuple(_TYPES)
# isal's stub declares its error an instance of Exception; it is the class of a corrupt stream's error
_INFLATE_ERROR = cast(type[Exception], isal_zlib.error)


class Readable(Protocol):
    """A binary file-like that :func:`decode` reads (a :class:`ChunkReader`, an open file)."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(slots=True)
class DecodeStats:
    """Rows decoded, rows dropped for having no ticker, and blocks read."""

    rows: int = 0
    dropped: int = 0
    blocks: int = 0


class _ReadOnlyStream:
    """The rest of the file protocol pyarrow's ``PythonFile`` asks of a forward-only reader."""

    closed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


class ChunkReader(_ReadOnlyStream):
    """A blocking, file-like reader over chunks handed in from another thread (the downloader).

    ``feed`` blocks while ``depth`` chunks wait, so a slow decoder holds the download back instead
    of letting chunks pile up. ``fail`` ends the stream with an error the reader raises at once;
    ``abandon`` (the reader gave up) makes every later ``feed`` return without waiting. Neither
    ever blocks, so either side can stop the other from any thread.
    """

    def __init__(self, depth: int = 8) -> None:
        self._chunks: deque[bytes] = deque()
        self._depth = depth
        self._cond = threading.Condition()
        self._buffer = memoryview(b"")
        self._finished = False
        self._error: BaseException | None = None
        self._abandoned = False
        self.closed = False

    def feed(self, chunk: bytes) -> None:
        with self._cond:
            while len(self._chunks) >= self._depth and not (self._abandoned or self._error):
                self._cond.wait()
            if not self._abandoned:
                self._chunks.append(chunk)
                self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        with self._cond:
            self._error = self._error or exc
            self._cond.notify_all()

    def abandon(self) -> None:
        with self._cond:
            self._abandoned = True
            self._chunks.clear()
            self._cond.notify_all()

    def read(self, size: int = -1) -> bytes:
        if not len(self._buffer):
            with self._cond:
                while not self._chunks and not (self._finished or self._error or self._abandoned):
                    self._cond.wait()
                if self._error is not None:
                    raise self._error
                if not self._chunks:
                    return b""
                self._buffer = memoryview(self._chunks.popleft())
                self._cond.notify_all()
        if size < 0 or size >= len(self._buffer):
            out, self._buffer = self._buffer, memoryview(b"")
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return bytes(out)


class Gunzip(_ReadOnlyStream):
    """The inflated bytes of a gzip stream read from ``raw``, a compressed chunk at a time (ISA-L).

    Members that follow one another are read as one stream, as gzip allows. A stream that ends
    inside a member is an error (``OSError``): a file cut short is never taken for a whole one.
    """

    def __init__(self, raw: Readable, chunk: int = 1 << 20, first_read: int = FIRST_BLOCK) -> None:
        self._raw = raw
        self._chunk = chunk
        self._ramp = first_read  # the first reads are short, then double: the first rows come at once
        self._inflate = isal_zlib.decompressobj(31)  # 31: a gzip header and trailer (CRC and size)
        self._started = False  # the current member has had input
        self._buffer = memoryview(b"")
        self._end = False
        self.closed = False

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all that is left when negative); fewer only at the end of the stream
        and on the first sized reads (``first_read`` bytes, doubling each read until ``size``).

        pyarrow's CSV reader takes what one read returns as a block: reads are filled to the block
        size it asks for, except the first few, so the writer gets its first rows after a few
        thousand are decoded instead of a whole block, and the next ones while it writes those.
        """
        parts: list[bytes] = []
        wanted = size if size >= 0 else None
        if self._ramp and wanted is not None:
            if self._ramp < wanted:
                wanted, self._ramp = self._ramp, self._ramp * 2
            else:
                self._ramp = 0
        while wanted is None or wanted > 0:
            if not len(self._buffer):
                if self._end:
                    break
                self._buffer = memoryview(self._more())
                continue
            take = len(self._buffer) if wanted is None else min(wanted, len(self._buffer))
            parts.append(bytes(self._buffer[:take]))
            self._buffer = self._buffer[take:]
            if wanted is not None:
                wanted -= take
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _more(self) -> bytes:
        data = self._raw.read(self._chunk)
        if not data:
            if self._started and not self._inflate.eof:
                raise OSError("gzip stream cut short: the file ended inside a member")
            self._end = True
            return b""
        out = self._inflate.decompress(data)
        self._started = True
        while self._inflate.eof:  # a member ended: the rest of the chunk starts the next one
            rest = self._inflate.unused_data
            self._inflate = isal_zlib.decompressobj(31)
            self._started = bool(rest)
            if not rest:
                break
            out += self._inflate.decompress(rest)
        return out


def decode(raw: Readable, timeframe: Timeframe, *, block_size: int = BLOCK_SIZE,
           stats: DecodeStats | None = None) -> Iterator[Block]:
    """Decode a gzipped aggregates CSV read from ``raw`` (a file-like), one block at a time.

    Yields:
        For each block, one batch per ticker in it (a ticker can continue in the next block), and
        which batches may be invalid.

    Raises:
        VendorTransientError: the file is not a gzipped CSV of aggregates (cut short, corrupt, or
            without the ``ticker`` and ``window_start`` columns).
    """
    stats = stats if stats is not None else DecodeStats()
    try:
        stream = pa.PythonFile(Gunzip(raw), mode="r")
        reader = pcsv.open_csv(
            stream,
            read_options=pcsv.ReadOptions(block_size=block_size, use_threads=False),
            convert_options=pcsv.ConvertOptions(column_types=_TYPES, include_columns=list(COLUMNS),
                                                include_missing_columns=True, strings_can_be_null=False),
        )
        for block in reader:
            stats.blocks += 1
            yield split_block(block, timeframe, stats)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError, _INFLATE_ERROR) as exc:  # cut short or corrupt
        raise VendorTransientError(f"flat file is not a readable gzipped CSV of aggregates: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Block:
    """One decoded block: its rows as columns of many tickers, grouped by ticker, each by time.

    ``suspect`` comes from one vectorised pass over the whole block (prices, volume, alignment,
    order), so a consumer runs the full per-ticker check only where it can fail. It and
    ``batches`` (one per ticker) are built only when asked for: the ingest checks whole chunks.
    """

    bars: MarketBars

    @property
    def suspect_rows(self) -> npt.NDArray[np.bool_]:
        return self.bars.suspect()

    @property
    def batches(self) -> list[BarBatch]:
        return list(self.bars.batches())

    @property
    def suspect(self) -> list[bool]:
        """Per batch of :attr:`batches`: whether it may break an invariant."""
        if not len(self.bars):
            return []
        starts, _ = self.bars.runs()
        flags: list[bool] = (np.add.reduceat(self.suspect_rows, starts) > 0).tolist()
        return flags

    def __iter__(self) -> Iterator[BarBatch]:
        return self.bars.batches()

    def __len__(self) -> int:
        return len(self.bars.tickers)


def split_block(block: pa.RecordBatch, timeframe: Timeframe, stats: DecodeStats) -> Block:
    """One block's rows as columns, grouped by ticker in name order, each ticker's rows by time."""
    n = block.num_rows
    if not n:
        return Block(MarketBars.empty(timeframe, SOURCE))
    if block.column("ticker").null_count or block.column("window_start").null_count == n:
        # strings_can_be_null is off, so a null ticker means the column is not in the file at all
        raise VendorTransientError("flat file has no ticker or window_start column: not an aggregates file")
    encoded = block.column("ticker")  # dictionary-typed as the CSV reader parses it: no second pass
    idx = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    names = [vendor_ticker(str(t)) for t in encoded.dictionary.to_pylist()]
    if len(set(names)) < len(names):  # two spellings of one pair: one ticker
        unique: dict[str, int] = {}
        remap = np.fromiter((unique.setdefault(name, len(unique)) for name in names), dtype=np.int64,
                            count=len(names))
        idx, names = remap[idx], list(unique)
    ns = block.column("window_start").fill_null(1).to_numpy(zero_copy_only=False)
    t = ns // _NS_PER_MS
    t += (ns % _NS_PER_MS != 0)  # not a whole ms: left one ms off the grid for the bar check to flag
    bars = MarketBars(
        tuple(names), timeframe, idx, t,
        _floats(block, "open"), _floats(block, "high"), _floats(block, "low"), _floats(block, "close"),
        _floats(block, "volume"), np.full(n, np.nan),
        block.column("transactions").fill_null(MISSING_N).to_numpy(zero_copy_only=False).astype(np.int64),
        SOURCE,
    )
    blank = [k for k, name in enumerate(names) if not name.strip()]
    if blank:
        drop = np.isin(idx, blank)
        stats.dropped += int(drop.sum())
        bars = bars.take(~drop)
    stats.rows += n
    bars = bars.normalised()
    return Block(bars)


def _floats(block: pa.RecordBatch, name: str) -> npt.NDArray[np.float64]:
    col = block.column(name)
    if col.null_count:
        col = col.fill_null(float("nan"))
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
