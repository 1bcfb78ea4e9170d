"""Market-day coverage: one row per (asset class, timeframe, day) instead of one per ticker and day.

A vendor flat file holds one day of every ticker of a market, so once it is stored the day is held
for every ticker of that asset class: those in the file have their bars, the others are confirmed
empty. Writing that as ledger rows would touch one row per ticker (10,000 for the US market) every
day; here it is one row per timeframe, and :meth:`SqlStore.coverage` adds these ranges to a
ticker's own ledger when it is read.

Where one ticker's bars are deleted inside such a day (``delete_range``, a purge), a *hole* keeps
that ticker's coverage honest: ``ledger ∪ (market days − holes)``. Storing a file for the day again
fills the holes of its timeframes over that day, since it rewrites every ticker's bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic

from mdw.domain import AssetClass, RangeSet, TimeRange, parse_ticker
from mdw.errors import UsageError
from mdw.store.base import MarketDay
from mdw.store.primitives import Database, Tx, TxT, placeholders
from mdw.store.rows import as_int, as_str

_COLUMNS = ("asset", "timeframe", "start_ms", "end_ms", "dataset", "etag", "size", "last_modified_ms",
            "fetched_at_ms")
_UPSERT = (
    f"INSERT INTO market_days ({', '.join(_COLUMNS)}) VALUES ({placeholders(len(_COLUMNS))})"
    " ON CONFLICT (asset, timeframe, start_ms) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[3:])
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM market_days"
_RANGES = "SELECT start_ms, end_ms FROM market_days WHERE asset = ? AND timeframe = ?"
_ANY = "SELECT 1 FROM market_days WHERE asset = ? AND timeframe = ? AND start_ms < ? AND end_ms > ? LIMIT 1"
_HOLES = "SELECT start_ms, end_ms FROM coverage_holes WHERE ticker = ? AND timeframe = ?"
_HOLES_OVER = ("SELECT ticker, start_ms, end_ms FROM coverage_holes WHERE asset = ? AND timeframe = ?"
               " AND start_ms < ? AND end_ms > ?")
_HOLE_DELETE = "DELETE FROM coverage_holes WHERE ticker = ? AND timeframe = ? AND start_ms = ?"
_HOLE_INSERT = ("INSERT INTO coverage_holes (ticker, asset, timeframe, start_ms, end_ms)"
                " VALUES (?, ?, ?, ?, ?)")
_TIMEFRAMES = "SELECT DISTINCT timeframe FROM market_days WHERE asset = ?"
EVER = TimeRange(-(2**62), 2**62)


def asset_of(ticker: str) -> AssetClass | None:
    """The asset class whose market days cover ``ticker`` (None for a string that is no ticker)."""
    try:
        return parse_ticker(ticker).asset_class
    except UsageError:
        return None


def _day(r: Sequence[object]) -> MarketDay:
    return MarketDay(as_str(r[0]), as_str(r[1]), as_int(r[2]), as_int(r[3]), as_str(r[4]), as_str(r[5]),
                     as_int(r[6]), as_int(r[7]), as_int(r[8]))


class SqlMarketDays(Generic[TxT]):
    """:class:`~mdw.store.base.MarketDayStore` over a database."""

    def __init__(self, db: Database[TxT]) -> None:
        self._db = db

    async def record(self, days: Sequence[MarketDay]) -> None:
        async with self._db.transaction("record_market_days") as tx:
            await record_in(tx, days)

    async def recorded(self, dataset: str, start_ms: int, end_ms: int) -> list[MarketDay]:
        rows = await self._db.fetch(
            "market_days", _SELECT + " WHERE dataset = ? AND start_ms >= ? AND start_ms < ?"
            " ORDER BY start_ms, timeframe", dataset, int(start_ms), int(end_ms))
        return [_day(r) for r in rows]


async def record_in(tx: Tx, days: Sequence[MarketDay]) -> None:
    """Record ``days`` as held for their whole market, inside the caller's transaction."""
    for d in sorted(days, key=lambda d: (d.asset, d.timeframe, d.start_ms)):
        await tx.execute(_UPSERT, d.asset, d.timeframe, d.start_ms, d.end_ms, d.dataset, d.etag,
                         d.size, d.last_modified_ms, d.fetched_at_ms)
        await _fill_holes(tx, d.asset, d.timeframe, TimeRange(d.start_ms, d.end_ms))


async def covered(db: Database[TxT], ticker: str, timeframe: str) -> RangeSet:
    """The market-day ranges that hold ``ticker`` at ``timeframe`` (its holes taken out)."""
    asset = asset_of(ticker)
    if asset is None or not timeframe:
        return RangeSet()
    days = RangeSet.of((as_int(r[0]), as_int(r[1]))
                       for r in await db.fetch("market_days", _RANGES, asset.value, timeframe))
    if not days:
        return days
    holes = RangeSet.of((as_int(r[0]), as_int(r[1]))
                        for r in await db.fetch("coverage_holes", _HOLES, ticker, timeframe))
    return days - holes if holes else days


async def covered_many(db: Database[TxT], tickers: Sequence[str], timeframe: str) -> dict[str, RangeSet]:
    """:func:`covered` of many tickers: two queries per asset class instead of two per ticker."""
    out: dict[str, RangeSet] = {}
    by_asset: dict[AssetClass, list[str]] = {}
    for t in tickers:
        asset = asset_of(t)
        if asset is not None and timeframe:
            by_asset.setdefault(asset, []).append(t)
    for asset, names in by_asset.items():
        days = RangeSet.of((as_int(r[0]), as_int(r[1]))
                           for r in await db.fetch("market_days", _RANGES, asset.value, timeframe))
        if not days:
            continue
        holes: dict[str, list[tuple[int, int]]] = {}
        for r in await db.fetch("coverage_holes", _HOLES_OVER, asset.value, timeframe, 2**62, -(2**62)):
            holes.setdefault(str(r[0]), []).append((as_int(r[1]), as_int(r[2])))
        for t in names:
            out[t] = days - RangeSet.of(holes[t]) if t in holes else days
    return out


async def punch(tx: Tx, ticker: str, timeframe: str, rng: TimeRange) -> None:
    """Take ``rng`` out of ``ticker``'s market-day coverage (inside the caller's transaction)."""
    asset = asset_of(ticker)
    if asset is None or not await tx.fetch(_ANY, asset.value, timeframe, rng.end_ms, rng.start_ms):
        return
    rows = await tx.fetch(_HOLES, ticker, timeframe)
    old = [(as_int(r[0]), as_int(r[1])) for r in rows]
    merged = RangeSet.of(old) | RangeSet.of([rng])
    await tx.executemany(_HOLE_DELETE, [(ticker, timeframe, start) for start, _ in old])
    await tx.executemany(_HOLE_INSERT,
                         [(ticker, asset.value, timeframe, r.start_ms, r.end_ms) for r in merged])


async def punch_all(tx: Tx, ticker: str) -> None:
    """Take every market day out of ``ticker``'s coverage, at every timeframe (a purge)."""
    asset = asset_of(ticker)
    if asset is None:
        return
    for row in await tx.fetch(_TIMEFRAMES, asset.value):
        await punch(tx, ticker, as_str(row[0]), EVER)


async def _fill_holes(tx: Tx, asset: str, timeframe: str, rng: TimeRange) -> None:
    """A day stored again from its file holds every ticker again: cut it out of the holes."""
    for row in await tx.fetch(_HOLES_OVER, asset, timeframe, rng.end_ms, rng.start_ms):
        ticker, start, end = as_str(row[0]), as_int(row[1]), as_int(row[2])
        await tx.execute(_HOLE_DELETE, ticker, timeframe, start)
        for piece in RangeSet.of([(start, end)]) - RangeSet.of([rng]):
            await tx.execute(_HOLE_INSERT, ticker, asset, timeframe, piece.start_ms, piece.end_ms)
