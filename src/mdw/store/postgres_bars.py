"""PostgreSQL's bar table: binary COPY in and out, yearly partitions, a staged upsert for corrections.

Writes COPY binary rows built by NumPy (:mod:`mdw.store.pgcopy`). New rows go straight into their
year's partition; corrections go through a per-connection temporary stage and
``INSERT ... ON CONFLICT DO UPDATE ... WHERE ... IS DISTINCT FROM ...``, which stays correct even
if a writer outside mdw (holding no series lock) touched those rows meanwhile.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import asyncpg
import numpy as np
import numpy.typing as npt
import structlog

from mdw.domain import BarBatch, MarketBars, RangeSet, Timeframe, TimeRange
from mdw.store import pgcopy
from mdw.store.base import SeriesStats, WriteSize
from mdw.store.pgpartitions import split_by_year, year_bounds, years_of
from mdw.store.postgres import PgDatabase, PgTx
from mdw.store.sqlbars import bar_stats, delete_bars
from mdw.store.writes import SeriesWrite

# The stored rows of many tickers, one primary-key range scan per ticker (NULL comes back as NaN).
_MARKET = (
    "SELECT k.i - 1, b.t, b.o, b.h, b.l, b.c, b.v, b.vw, b.n, b.otc::int, (b.source IS DISTINCT FROM $5)::int"
    " FROM unnest($1::text[]) WITH ORDINALITY AS k(ticker, i)"
    " JOIN bars AS b ON b.ticker = k.ticker AND b.timeframe = $2 AND b.t >= $3 AND b.t < $4 ORDER BY 1, 2"
)

log = structlog.get_logger(__name__)

STAGE = "mdw_stage"
# One stage per pooled connection; ON COMMIT DELETE ROWS empties it at every commit.
STAGE_SQL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (ticker TEXT, timeframe TEXT, t BIGINT, o FLOAT8, h FLOAT8,"
    " l FLOAT8, c FLOAT8, v FLOAT8, vw FLOAT8, n BIGINT, source TEXT, otc BOOLEAN) ON COMMIT DELETE ROWS"
)
_VALUES = ("o", "h", "l", "c", "v", "vw", "n", "source", "otc")
_COLS = ", ".join(pgcopy.WRITE_COLUMNS)
_UPSERT = (
    f"WITH up AS (INSERT INTO bars ({_COLS}) SELECT {_COLS} FROM {STAGE}"
    " ON CONFLICT (ticker, timeframe, t) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _VALUES)
    + f" WHERE ({', '.join('bars.' + c for c in _VALUES)}) IS DISTINCT FROM"
    f" ({', '.join('EXCLUDED.' + c for c in _VALUES)})"
    " RETURNING 1) SELECT count(*) FROM up"
)
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || $1, 0))"
_PARTITIONS = (
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    " WHERE i.inhparent = 'bars'::regclass"
)


class PgBars:
    """A :class:`~mdw.store.primitives.BarTable`: ``bars`` partitioned by year, or a hypertable."""

    write_size = WriteSize()  # what is queued, when the writer is free

    def __init__(self, db: PgDatabase) -> None:
        self._db = db
        self._partitioned = True
        self._partitions: set[int] = set()

    async def open(self) -> None:
        async with self._db.acquire("layout") as conn:
            kind = await conn.fetchval("SELECT relkind FROM pg_class WHERE oid = 'bars'::regclass")
        self._partitioned = kind in (b"p", "p")
        if not self._partitioned:
            log.info("store.layout", backend="postgres", partitioned=False,
                     why="bars is a TimescaleDB hypertable; partitions are not managed")

    async def close(self) -> None:
        """Nothing held beyond the database's pool."""

    async def prepare(self, series: Sequence[SeriesWrite]) -> None:
        """Create missing yearly partitions, each in its own short transaction before the data write.

        An advisory lock serialises creators (in this and other processes), and ``IF NOT EXISTS``
        under that lock makes a lost race harmless.
        """
        if not self._partitioned:
            return
        years: set[int] = set()
        for s in series:
            if len(s.batch):
                years |= years_of(s.batch.t)
        if not years - self._partitions:
            return
        async with self._db.acquire("partitions") as conn:
            rows = await conn.fetch(_PARTITIONS)
            self._partitions |= {int(r[0][len("bars_y") :]) for r in rows if r[0].startswith("bars_y")}
            for year in sorted(years - self._partitions):
                lo, hi = year_bounds(year)
                async with conn.transaction():
                    await conn.execute(_LOCK, ":mdw-partitions")
                    await conn.execute(
                        f"CREATE TABLE IF NOT EXISTS bars_y{year:04d} PARTITION OF bars"
                        f" FOR VALUES FROM ({lo}) TO ({hi})"
                    )
                log.info("store.partition", backend="postgres", table=f"bars_y{year:04d}")
                self._partitions.add(year)

    async def stored(
        self, tx: PgTx, series: SeriesWrite, span: TimeRange
    ) -> tuple[BarBatch, npt.NDArray[np.bool_]]:
        data = await _copy_out(tx.conn, pgcopy.DIFF_SQL, series.ticker, series.timeframe, span.start_ms,
                               span.end_ms, series.batch.source)
        return pgcopy.decode_diff(series.ticker, series.batch.timeframe, data)

    async def insert(self, tx: PgTx, series: Sequence[SeriesWrite]) -> None:
        """COPY straight into each year's partition (no per-row routing through the parent)."""
        if not self._partitioned:
            await _copy(tx.conn, "bars", series)
            return
        for year, parts in split_by_year(series).items():
            await _copy(tx.conn, f"bars_y{year:04d}" if year in self._partitions else "bars", parts)

    async def stored_market(self, tx: PgTx, bars: MarketBars, span: TimeRange) -> npt.NDArray[np.float64]:
        rows = await tx.conn.fetch(_MARKET, list(bars.tickers), str(bars.timeframe), span.start_ms,
                                   span.end_ms, bars.source)
        if not rows:
            return np.empty((0, 11), dtype=np.float64)
        return np.array([tuple(r) for r in rows], dtype=np.float64)

    async def insert_market(self, tx: PgTx, bars: MarketBars) -> None:
        tf = str(bars.timeframe)
        await self.insert(tx, [SeriesWrite(b.ticker, tf, b, RangeSet()) for b in bars.batches()])

    async def upsert(self, tx: PgTx, series: Sequence[SeriesWrite]) -> int:
        await _copy(tx.conn, STAGE, series)
        return int(await tx.conn.fetchval(_UPSERT))

    async def delete(self, tx: PgTx, ticker: str, timeframe: str | None, rng: TimeRange | None) -> int:
        return await delete_bars(tx, ticker, timeframe, rng)

    async def read(
        self, ticker: str, timeframe: Timeframe, rng: TimeRange, limit: int | None = None
    ) -> BarBatch:
        sql = pgcopy.READ_SQL if limit is None else f"{pgcopy.READ_SQL} LIMIT {int(limit)}"
        async with self._db.acquire("bars") as conn:
            data = await _copy_out(conn, sql, ticker, str(timeframe), rng.start_ms, rng.end_ms)
        return pgcopy.decode(ticker, timeframe, data)

    async def stats(self, ticker: str | None = None) -> list[SeriesStats]:
        return await bar_stats(self._db, ticker)


async def _copy(conn: asyncpg.Connection, table: str, series: Sequence[SeriesWrite]) -> None:
    """One binary COPY of every group's rows into ``table``."""
    body = b"".join(pgcopy.encode_rows(s.ticker, s.timeframe, s.batch) for s in series)
    await conn.copy_to_table(
        table,
        source=io.BytesIO(pgcopy.HEADER + body + pgcopy.TRAILER),
        columns=list(pgcopy.WRITE_COLUMNS),
        format="binary",
    )


async def _copy_out(conn: asyncpg.Connection, sql: str, *args: str | int) -> bytearray:
    buf = bytearray()

    async def sink(chunk: bytes) -> None:
        buf.extend(chunk)

    await conn.copy_from_query(sql, *args, output=sink, format="binary")
    return buf
