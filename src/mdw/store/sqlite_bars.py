"""SQLite's bar table: ``executemany`` from NumPy columns in, float grids out, on the store's threads."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from itertools import chain, repeat

import numpy as np
import numpy.typing as npt

from mdw.domain import (
    BarBatch,
    MarketBars,
    Timeframe,
    TimeRange,
    n_from_float,
    n_values,
    otc_from_float,
    otc_values,
)
from mdw.store.base import SeriesStats, WriteSize
from mdw.store.primitives import placeholders
from mdw.store.sqlbars import bar_stats, delete_bars
from mdw.store.sqlite import SqliteDatabase, SqliteTx
from mdw.store.writes import SeriesWrite

_COLS = "ticker, timeframe, t, o, h, l, c, v, vw, n, source"
_VALUES = "o, h, l, c, v, vw, n, source, otc"
# Series whose bars carry no otc flag (every listed name) leave the column out of the statement:
# it defaults to NULL, and binding one more None per row would cost a quarter of the insert's CPU.
_INSERT = {False: f"INSERT INTO bars ({_COLS}) VALUES ({placeholders(11)})",
           True: f"INSERT INTO bars ({_COLS}, otc) VALUES ({placeholders(12)})"}
_UPSERT = {
    flagged: sql
    + " ON CONFLICT (ticker, timeframe, t) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _VALUES.split(", "))  # excluded.otc: NULL when left out
    + f" WHERE ({_VALUES}) IS NOT ("
    + ", ".join(f"excluded.{c}" for c in _VALUES.split(", "))
    + ")"
    for flagged, sql in _INSERT.items()
}
_FETCH = 8192
_MARKET_SLICE = 8192
_DIFF = (
    "SELECT t, o, h, l, c, v, vw, n, otc, source IS NOT ? FROM bars"
    " WHERE ticker = ? AND timeframe = ? AND t >= ? AND t < ? ORDER BY t"
)
# The stored rows of many tickers: json_each drives one primary-key range scan per ticker.
_MARKET = (
    "SELECT j.key, b.t, b.o, b.h, b.l, b.c, b.v, b.vw, b.n, b.otc, b.source IS NOT ? FROM json_each(?) AS j"
    " JOIN bars AS b ON b.ticker = j.value AND b.timeframe = ? AND b.t >= ? AND b.t < ? ORDER BY j.key, b.t"
)
_SELECT = (
    "SELECT t, o, h, l, c, v, vw, n, otc FROM bars WHERE ticker = ? AND timeframe = ? AND t >= ? AND t < ?"
    " ORDER BY t"
)


def fetch_grid(cursor: sqlite3.Cursor) -> npt.NDArray[np.float64]:
    """The (rows x columns) float grid of a bars SELECT, converted in slices (NULL becomes NaN).

    Converting a slice at a time keeps only a few thousand row tuples alive at once, which is
    both faster (cache-friendly) and lighter than ``fetchall`` followed by one conversion.
    """
    parts = []
    while rows := cursor.fetchmany(_FETCH):
        parts.append(np.array(rows, dtype=np.float64))
    if not parts:
        return np.empty((0, len(cursor.description)), dtype=np.float64)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def grid_to_batch(ticker: str, timeframe: Timeframe, grid: npt.NDArray[np.float64]) -> BarBatch:
    """A batch from the grid of :func:`fetch_grid` (epoch ms and counts are exact in float64)."""
    if not len(grid):
        return BarBatch.empty(ticker, timeframe)
    return BarBatch(
        ticker,
        timeframe,
        t=grid[:, 0].astype(np.int64),
        o=grid[:, 1],
        h=grid[:, 2],
        l=grid[:, 3],
        c=grid[:, 4],
        v=grid[:, 5],
        vw=grid[:, 6],
        n=n_from_float(grid[:, 7]),
        otc=otc_from_float(grid[:, 8]),
    )


def _flagged(s: SeriesWrite) -> bool:
    return bool((s.batch.otc >= 0).any())


def _groups(series: Sequence[SeriesWrite]) -> list[tuple[bool, list[SeriesWrite]]]:
    """The series split by whether any of their bars carries an otc flag (non-empty groups only)."""
    out: dict[bool, list[SeriesWrite]] = {}
    for s in series:
        out.setdefault(_flagged(s), []).append(s)
    return sorted(out.items())


def _execute(cursor: sqlite3.Connection, sql: dict[bool, str],
             series: Sequence[SeriesWrite]) -> int:
    """``executemany`` of each group's rows (see :func:`_groups`); the rows it changed."""
    changed = 0
    for flagged, group in _groups(series):
        changed += cursor.executemany(sql[flagged], _driver_rows(group, flagged)).rowcount
    return changed


def _driver_rows(series: Sequence[SeriesWrite], flagged: bool) -> Iterator[tuple[object, ...]]:
    # NaN v/vw are stored as NULL by the driver; a missing n or otc is None, so NULL too.
    return chain.from_iterable(
        zip(
            repeat(s.ticker), repeat(s.timeframe), b.t.tolist(), b.o.tolist(), b.h.tolist(), b.l.tolist(),
            b.c.tolist(), b.v.tolist(), b.vw.tolist(), n_values(b.n), repeat(b.source),
            *([otc_values(b.otc)] if flagged else []), strict=False,
        )
        for s in series
        for b in (s.batch,)
    )


def _market_rows(bars: MarketBars, flagged: bool) -> Iterator[tuple[object, ...]]:
    # A slice of _MARKET_SLICE rows at a time: the Python values of a whole chunk (a quarter of a
    # million rows times eleven) would cost tens of MB at once.
    names = np.asarray(bars.tickers, dtype=object)
    tf = str(bars.timeframe)

    def rows(lo: int, hi: int) -> Iterator[tuple[object, ...]]:
        part = bars.take(slice(lo, hi))
        return zip(
            names[part.code].tolist(), repeat(tf), part.t.tolist(), part.o.tolist(), part.h.tolist(),
            part.l.tolist(), part.c.tolist(), part.v.tolist(), part.vw.tolist(), n_values(part.n),
            repeat(bars.source), *([otc_values(part.otc)] if flagged else []), strict=False,
        )

    return chain.from_iterable(rows(lo, lo + _MARKET_SLICE) for lo in range(0, len(bars), _MARKET_SLICE))


class SqliteBars:
    """A :class:`~mdw.store.primitives.BarTable` in the SQLite file's ``bars`` table."""

    write_size = WriteSize()  # what is queued, when the writer is free

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def open(self) -> None:
        """Nothing to learn: one plain table."""

    async def close(self) -> None:
        """Nothing held beyond the database's connections."""

    async def prepare(self, series: Sequence[SeriesWrite]) -> None:
        """Nothing to do outside the transaction."""

    async def stored(
        self, tx: SqliteTx, series: SeriesWrite, span: TimeRange
    ) -> tuple[BarBatch, npt.NDArray[np.bool_]]:
        args = (series.batch.source, series.ticker, series.timeframe, span.start_ms, span.end_ms)
        grid = await tx.run(lambda c: fetch_grid(c.execute(_DIFF, args)))
        return grid_to_batch(series.ticker, series.batch.timeframe, grid), grid[:, 9] != 0

    async def insert(self, tx: SqliteTx, series: Sequence[SeriesWrite]) -> None:
        await tx.run(lambda c: _execute(c, _INSERT, series))

    async def stored_market(self, tx: SqliteTx, bars: MarketBars, span: TimeRange) -> npt.NDArray[np.float64]:
        args = (bars.source, json.dumps(bars.tickers), str(bars.timeframe), span.start_ms, span.end_ms)
        return await tx.run(lambda c: fetch_grid(c.execute(_MARKET, args)))

    async def insert_market(self, tx: SqliteTx, bars: MarketBars) -> None:
        flagged = bool((bars.otc >= 0).any())  # flat files carry no flag: the column is left out
        await tx.run(lambda c: c.executemany(_INSERT[flagged], _market_rows(bars, flagged)))

    async def upsert(self, tx: SqliteTx, series: Sequence[SeriesWrite]) -> int:
        return await tx.run(lambda c: _execute(c, _UPSERT, series))

    async def delete(self, tx: SqliteTx, ticker: str, timeframe: str | None, rng: TimeRange | None) -> int:
        return await delete_bars(tx, ticker, timeframe, rng)

    async def read(
        self, ticker: str, timeframe: Timeframe, rng: TimeRange, limit: int | None = None
    ) -> BarBatch:
        sql, args = _SELECT, [ticker, str(timeframe), rng.start_ms, rng.end_ms]
        if limit is not None:
            sql, args = sql + " LIMIT ?", [*args, int(limit)]
        grid = await self._db.read("bars", lambda c: fetch_grid(c.execute(sql, args)))
        return grid_to_batch(ticker, timeframe, grid)

    async def stats(self, ticker: str | None = None) -> list[SeriesStats]:
        return await bar_stats(self._db, ticker)
