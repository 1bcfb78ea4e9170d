"""Reading bars back out: CSV, JSON lines or Parquet, optionally adjusted, written atomically.

Rows are streamed chunk by chunk from the store (flat memory) into a temp file beside the target,
which is renamed into place only when complete, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TextIO

from mdw.adjust import ADJUST_MODES, adjust_bars, boundary_ms
from mdw.domain import DAY_MS, BarBatch, Dividend, Split, Ticker, Timeframe, TimeRange, from_ms
from mdw.errors import UsageError
from mdw.store.base import Store

FORMATS = ("csv", "jsonl", "parquet")
COLUMNS = ("ticker", "timeframe", "t", "time", "o", "h", "l", "c", "v", "vw", "n")


def safe_output_path(path: str | Path, base_dir: str | Path | None = None) -> Path:
    """Check an output path: no NUL byte, not a directory, and inside ``base_dir`` when given.

    Raises:
        UsageError: the path is unusable or escapes ``base_dir`` (``..``, absolute or symlinked).
    """
    text = str(path)
    if not text or "\x00" in text:
        raise UsageError("invalid output path: empty or contains a NUL byte")
    target = Path(text).expanduser()
    if base_dir is not None:
        root = Path(base_dir).resolve()
        resolved = (root / target).resolve()
        if resolved != root and root not in resolved.parents:
            raise UsageError(f"output path {text!r} escapes {root}")
        target = resolved
    if target.is_dir():
        raise UsageError(f"output path {text!r} is a directory; give a file name")
    if not target.parent.exists():
        raise UsageError(f"output directory {str(target.parent)!r} does not exist")
    return target


async def _closes(
    store: Store, ticker: str, tf: Timeframe, dividends: Sequence[Dividend]
) -> dict[str, float]:
    """The raw close before each ex-date, read from the store (it may lie outside the export)."""
    out: dict[str, float] = {}
    for d in dividends:
        cut = boundary_ms(ticker, d.ex_dividend_date)
        prev = await store.bars(ticker, tf, cut - 14 * DAY_MS, cut)
        if len(prev):
            out[d.id] = float(prev.c[-1])
    return out


async def read_bars(
    store: Store, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int, adjust: str = "none"
) -> AsyncIterator[BarBatch]:
    """Stored bars in chunks, adjusted as of today when asked.

    Raises:
        UsageError: ``adjust`` is not none, splits or all.
    """
    if adjust not in ADJUST_MODES:
        raise UsageError(f"invalid --adjust {adjust!r}; expected one of {', '.join(ADJUST_MODES)}")
    splits: list[Split] = []
    dividends: list[Dividend] = []
    closes: dict[str, float] = {}
    if adjust != "none":
        splits = await store.actions.splits(ticker)
        if adjust == "all":
            dividends = await store.actions.dividends(ticker)
            closes = await _closes(store, ticker, timeframe, dividends)
    async for chunk in store.iter_bars(ticker, timeframe, start_ms, end_ms):
        yield adjust_bars(chunk, splits, dividends, adjust, closes=closes) if adjust != "none" else chunk


# ticker, timeframe, t, time (ISO), o, h, l, c, v, vw, n; None where the vendor gave no v or vw.
Record = tuple[str, str, int, str, float, float, float, float, float | None, float | None, int]


def _records(batch: BarBatch) -> list[Record]:
    tf = str(batch.timeframe)
    return [(batch.ticker, tf, t, from_ms(t).isoformat().replace("+00:00", "Z"), o, h, lo, c, v, vw, n)
            for (t, o, h, lo, c, v, vw, n) in batch.rows()]


class _TextSink:
    def __init__(self, fh: TextIO, fmt: str) -> None:
        self.fh, self.fmt = fh, fmt
        self.writer = csv.writer(fh, lineterminator="\n") if fmt == "csv" else None
        if self.writer:
            self.writer.writerow(COLUMNS)

    def write(self, batch: BarBatch) -> None:
        for rec in _records(batch):
            if self.writer:
                self.writer.writerow(["" if x is None else x for x in rec])
            else:
                self.fh.write(json.dumps(dict(zip(COLUMNS, rec, strict=True))) + "\n")


async def export_bars(
    store: Store, reads: Sequence[tuple[Ticker, TimeRange]], timeframe: Timeframe, *,
    fmt: str = "csv", adjust: str = "none", output: Path | None = None, stdout: TextIO | None = None,
) -> int:
    """Write the bars of each (ticker, range) to ``output`` (atomically) or to ``stdout``; returns the
    row count. Each ticker has its own range: its market's days (see :func:`mdw.api.window`).

    Raises:
        UsageError: an unknown format, or parquet without an output file.
    """
    if fmt not in FORMATS:
        raise UsageError(f"invalid --format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "parquet" and output is None:
        raise UsageError("parquet needs an output file: add -o FILE")
    rows = 0
    if output is None:
        sink = _TextSink(stdout or sys.stdout, fmt)
        for tk, rng in reads:
            async for chunk in read_bars(store, tk.symbol, timeframe, rng.start_ms, rng.end_ms, adjust):
                sink.write(chunk)
                rows += len(chunk)
        return rows
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    try:
        if fmt == "parquet":
            os.close(fd)
            rows = await _write_parquet(store, reads, timeframe, adjust, tmp)
        else:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                text_sink = _TextSink(fh, fmt)
                for tk, rng in reads:
                    async for chunk in read_bars(store, tk.symbol, timeframe, rng.start_ms, rng.end_ms,
                                                 adjust):
                        text_sink.write(chunk)
                        rows += len(chunk)
        os.replace(tmp, output)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return rows


async def _write_parquet(
    store: Store, reads: Sequence[tuple[Ticker, TimeRange]], timeframe: Timeframe, adjust: str, path: str,
) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("ticker", pa.string()), ("timeframe", pa.string()), ("t", pa.int64()),
                        ("time", pa.timestamp("ms", tz="UTC")), ("o", pa.float64()), ("h", pa.float64()),
                        ("l", pa.float64()), ("c", pa.float64()), ("v", pa.float64()),
                        ("vw", pa.float64()), ("n", pa.int64())])
    rows = 0
    with pq.ParquetWriter(path, schema) as writer:
        for tk, rng in reads:
            async for chunk in read_bars(store, tk.symbol, timeframe, rng.start_ms, rng.end_ms, adjust):
                size = len(chunk)
                cols = [pa.array([tk.symbol] * size, pa.string()),
                        pa.array([str(timeframe)] * size, pa.string()),
                        pa.array(chunk.t), pa.array(chunk.t, pa.timestamp("ms", tz="UTC")),
                        pa.array(chunk.o), pa.array(chunk.h), pa.array(chunk.l), pa.array(chunk.c),
                        pa.array(chunk.v, from_pandas=True), pa.array(chunk.vw, from_pandas=True),
                        pa.array(chunk.n)]
                writer.write_table(pa.Table.from_arrays(cols, schema=schema))
                rows += size
    return rows

