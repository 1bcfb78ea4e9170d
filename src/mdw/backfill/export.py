"""Reading bars back out: CSV, JSON lines or Parquet, optionally adjusted, written atomically.

Rows are streamed chunk by chunk from the store (flat memory) into a temp file beside the target,
which is renamed into place only when complete, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import BinaryIO

from mdw.adjust import ADJUST_MODES, adjust_bars, boundary_ms
from mdw.backfill.report import cannot_write_in
from mdw.backfill.stitch import Stitched, iter_stitched
from mdw.bar_schema import BarSchema, check_names
from mdw.domain import (
    DAY_MS,
    NEW_YORK,
    BarBatch,
    Dividend,
    Split,
    Ticker,
    Timeframe,
    TimeRange,
    parse_ticker,
)
from mdw.errors import UsageError
from mdw.store.base import Store

FORMATS = ("csv", "jsonl", "parquet")


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
    why = cannot_write_in(target.parent)  # checked before anything is read or written
    if why:
        raise UsageError(f"output path {text!r}: cannot create files in {str(target.parent)!r} ({why})")
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
    store: Store, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int, adjust: str = "none",
    as_of: date | None = None,
) -> AsyncIterator[BarBatch]:
    """Stored bars in chunks, adjusted as of ``as_of`` (the market's today when None) when asked.

    Raises:
        UsageError: ``adjust`` is not none, splits or all.
    """
    if adjust not in ADJUST_MODES:
        raise UsageError(f"invalid --adjust {adjust!r}; expected one of {', '.join(ADJUST_MODES)}")
    splits: list[Split] = []
    dividends: list[Dividend] = []
    closes: dict[str, float] = {}
    day = as_of or market_today(ticker)
    if adjust != "none":
        splits = await store.actions.splits(ticker)
        if adjust == "all":
            dividends = await store.actions.dividends(ticker)
            closes = await _closes(store, ticker, timeframe, dividends)
    async for chunk in store.iter_bars(ticker, timeframe, start_ms, end_ms):
        yield adjust_bars(chunk, splits, dividends, adjust, closes=closes, as_of=day) if adjust != "none" \
            else chunk


async def _chunks(
    store: Store, tk: Ticker, rng: TimeRange, timeframe: Timeframe, adjust: str, as_of: date | None,
    stitched: Mapping[str, Stitched],
) -> AsyncIterator[BarBatch]:
    plan = stitched.get(tk.symbol)
    if plan is None:
        async for chunk in read_bars(store, tk.symbol, timeframe, rng.start_ms, rng.end_ms, adjust, as_of):
            yield chunk
        return
    async for chunk in iter_stitched(store, plan.parts, timeframe, rng.start_ms, rng.end_ms,
                                     label=plan.ticker):
        yield chunk


def market_today(ticker: str) -> date:
    """Today in the ticker's market (an adjustment is as of this day: later actions are not effective)."""
    try:
        tz = parse_ticker(ticker).asset_class.tz
    except UsageError:
        tz = NEW_YORK
    return datetime.now(UTC).astimezone(tz).date()


def export_schema(reads: Sequence[tuple[Ticker, TimeRange]], timeframe: Timeframe, adjust: str,
                  names: str) -> BarSchema:
    """The schema of an export: one file may hold several tickers, so it leads with ticker, timeframe."""
    tickers = [tk.symbol for tk, _ in reads]
    return BarSchema(",".join(tickers), timeframe, adjust, market_today(tickers[0]) if tickers else None,
                     names, series_columns=True)


class _TextSink:
    def __init__(self, fh: BinaryIO, fmt: str, schema: BarSchema) -> None:
        self.fh, self.fmt, self.schema = fh, fmt, schema
        if fmt == "csv":
            fh.write(schema.csv_header())

    def write(self, batch: BarBatch) -> None:
        self.fh.write(self.schema.csv(batch) if self.fmt == "csv" else self.schema.jsonl(batch))


async def export_bars(
    store: Store, reads: Sequence[tuple[Ticker, TimeRange]], timeframe: Timeframe, *,
    fmt: str = "csv", adjust: str = "none", output: Path | None = None, stdout: BinaryIO | None = None,
    names: str = "long", extra: Mapping[str, str] | None = None,
    stitched: Mapping[str, Stitched] | None = None,
) -> int:
    """Write the bars of each (ticker, range) to ``output`` (atomically) or to ``stdout``; returns the
    row count. Each ticker has its own range: its market's days (see :func:`mdw.api.window`). The
    columns are :class:`~mdw.bar_schema.BarSchema`'s, led by ticker and timeframe; ``extra`` goes
    into Parquet's schema metadata (the coverage). A ticker in ``stitched`` is read across its
    ticker changes (raw), its rows labelled with today's ticker.

    Raises:
        UsageError: an unknown format or naming, or parquet without an output file.
    """
    if fmt not in FORMATS:
        raise UsageError(f"invalid --format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "parquet" and output is None:
        raise UsageError("parquet needs an output file: add -o FILE")
    schema = replace(export_schema(reads, timeframe, adjust, check_names(names)), extra=dict(extra or {}))
    stitched = stitched or {}
    rows = 0
    if output is None:
        sink = _TextSink(stdout or sys.stdout.buffer, fmt, schema)
        for tk, rng in reads:
            async for chunk in _chunks(store, tk, rng, timeframe, adjust, schema.as_of, stitched):
                sink.write(chunk)
                rows += len(chunk)
        (stdout or sys.stdout.buffer).flush()
        return rows
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    try:
        if fmt == "parquet":
            os.close(fd)
            rows = await _write_parquet(store, reads, timeframe, schema, tmp, stitched)
        else:
            with os.fdopen(fd, "wb") as fh:
                text_sink = _TextSink(fh, fmt, schema)
                for tk, rng in reads:
                    async for chunk in _chunks(store, tk, rng, timeframe, adjust, schema.as_of, stitched):
                        text_sink.write(chunk)
                        rows += len(chunk)
        os.replace(tmp, output)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return rows


async def _write_parquet(
    store: Store, reads: Sequence[tuple[Ticker, TimeRange]], timeframe: Timeframe, schema: BarSchema,
    path: str, stitched: Mapping[str, Stitched],
) -> int:
    import pyarrow.parquet as pq

    rows = 0
    with pq.ParquetWriter(path, schema.arrow_schema()) as writer:
        for tk, rng in reads:
            async for chunk in _chunks(store, tk, rng, timeframe, schema.adjust, schema.as_of, stitched):
                if len(chunk):
                    writer.write_batch(schema.record_batch(chunk))
                    rows += len(chunk)
    return rows
