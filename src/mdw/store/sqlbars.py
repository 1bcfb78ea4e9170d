"""The parts of a bar table that are plain SQL, the same in SQLite and PostgreSQL: delete and stats."""

from __future__ import annotations

from mdw.domain import TimeRange
from mdw.store.base import SeriesStats
from mdw.store.primitives import Database, Tx
from mdw.store.rows import as_int, as_opt_int, as_str


async def delete_bars(tx: Tx, ticker: str, timeframe: str | None, rng: TimeRange | None) -> int:
    """Delete a ticker's bars, of one timeframe and within ``rng`` when given; returns how many."""
    sql, args = "DELETE FROM bars WHERE ticker = ?", [ticker]
    if timeframe is not None:
        sql, args = sql + " AND timeframe = ?", [*args, timeframe]
    if rng is not None:
        return await tx.execute(sql + " AND t >= ? AND t < ?", *args, rng.start_ms, rng.end_ms)
    return await tx.execute(sql, *args)


async def bar_stats(db: Database[Tx], ticker: str | None) -> list[SeriesStats]:
    """Per (ticker, timeframe): count, first and last t, sorted; one ticker's when given."""
    where, args = (" WHERE ticker = ?", (ticker,)) if ticker is not None else ("", ())
    rows = await db.fetch(
        "series_stats",
        f"SELECT ticker, timeframe, count(*), min(t), max(t) FROM bars{where}"
        " GROUP BY ticker, timeframe ORDER BY ticker, timeframe",
        *args,
    )
    return [SeriesStats(as_str(r[0]), as_str(r[1]), as_int(r[2]), as_opt_int(r[3]), as_opt_int(r[4]))
            for r in rows]
