"""Corporate actions and the catalog: the record stores that also touch the ledger or the bars.

:class:`SqlActions` is the corporate-action write loop, written once: for each kind fetched, lock
the ticker's kind, upsert by vendor id (counting new, corrected and unchanged rows), and merge the
covered range into that kind's ledger, all in one transaction (one per call: ``write_many`` puts
many tickers' actions and coverage in the same transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic

from mdw.clock import now_ms
from mdw.domain import Dividend, RangeSet, Split, TimeRange
from mdw.store import ledger
from mdw.store.base import ActionWrite, CoverageEntry, Dataset, SeriesStats, WriteResult
from mdw.store.ledger import LedgerKey
from mdw.store.primitives import BarTable, Database, Dialect, SqlValue, Tx, TxT, placeholders
from mdw.store.rows import DIVIDEND_COLUMNS, SPLIT_COLUMNS, as_int, dividend_from_row, split_from_row

_CHUNK = 500  # rows per statement: well inside both drivers' parameter limits


def _values(item: Dividend | Split, dialect: Dialect) -> tuple[SqlValue, ...]:
    if isinstance(item, Dividend):
        return (item.id, item.ticker, dialect.date(item.ex_dividend_date), item.cash_amount, item.currency,
                dialect.date(item.declaration_date), dialect.date(item.record_date),
                dialect.date(item.pay_date), item.frequency, item.dividend_type)
    return item.id, item.ticker, dialect.date(item.execution_date), item.split_from, item.split_to


def _upsert_sql(table: str, columns: tuple[str, ...], rows: int, differs: str) -> str:
    """A multi-row upsert by id that touches only rows whose values differ (so its count is exact)."""
    rest = columns[1:]
    values = ", ".join([f"({placeholders(len(columns))})"] * rows)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"
        f" ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in rest)}"
        f" WHERE ({', '.join(f'{table}.{c}' for c in rest)}) {differs}"
        f" ({', '.join('excluded.' + c for c in rest)})"
    )


async def _upsert(tx: Tx, dialect: Dialect, table: str, columns: tuple[str, ...],
                  items: Sequence[Dividend] | Sequence[Split]) -> WriteResult:
    """Upsert by vendor id inside the caller's transaction; the last of repeated ids wins."""
    rows = list({item.id: _values(item, dialect) for item in items}.values())
    known = changed = 0
    for i in range(0, len(rows), _CHUNK):
        part = rows[i : i + _CHUNK]
        ids = [row[0] for row in part]
        found = await tx.fetch(f"SELECT count(*) FROM {table} WHERE id IN ({placeholders(len(ids))})", *ids)
        known += as_int(found[0][0])
        sql = _upsert_sql(table, columns, len(part), dialect.differs)
        changed += await tx.execute(sql, *(value for row in part for value in row))
    inserted = len(rows) - known
    return WriteResult(inserted=inserted, updated=changed - inserted, unchanged=len(rows) - changed)


class SqlActions:
    """:class:`~mdw.store.base.ActionStore` over a database."""

    def __init__(self, db: Database[Tx]) -> None:
        self._db = db

    async def write(
        self, ticker: str, dividends: Sequence[Dividend] | None, splits: Sequence[Split] | None,
        covered: TimeRange, *, fetched_at_ms: int | None = None,
    ) -> WriteResult:
        one = ActionWrite(ticker, dividends, splits, covered)
        return await self.write_many([one], fetched_at_ms=fetched_at_ms)

    async def write_many(
        self, writes: Sequence[ActionWrite], *, fetched_at_ms: int | None = None,
    ) -> WriteResult:
        fetched = now_ms() if fetched_at_ms is None else fetched_at_ms
        total = WriteResult()
        divs = [(w, w.dividends) for w in writes if w.dividends is not None]
        splits = [(w, w.splits) for w in writes if w.splits is not None]
        kinds: tuple[tuple[Dataset, str, tuple[str, ...], list[tuple[ActionWrite, Sequence[Dividend]]]
                           | list[tuple[ActionWrite, Sequence[Split]]]], ...] = (
            (Dataset.DIVIDENDS, "dividends", DIVIDEND_COLUMNS, divs),
            (Dataset.SPLITS, "splits", SPLIT_COLUMNS, splits))
        async with self._db.transaction("write_corporate_actions") as tx:
            for dataset, table, columns, fetched_writes in kinds:
                # locks in one order, so two batched writers never wait on each other in a cycle
                for ticker in sorted({w.ticker for w, _ in fetched_writes}):
                    await tx.lock(f":{dataset.value}:{ticker}")
                rows: list[Dividend | Split] = [item for _, items in fetched_writes for item in items]
                if rows:
                    total += await _upsert(tx, self._db.dialect, table, columns, rows)  # type: ignore[arg-type]
                for w, _ in fetched_writes:
                    await ledger.merge(tx, LedgerKey(w.ticker, dataset), RangeSet.of([w.covered]), fetched)
        return total

    async def dividends(self, ticker: str) -> list[Dividend]:
        rows = await self._db.fetch(
            "dividends",
            f"SELECT {', '.join(DIVIDEND_COLUMNS)} FROM dividends WHERE ticker = ?"
            " ORDER BY ex_dividend_date, id",
            ticker,
        )
        return [dividend_from_row(r) for r in rows]

    async def splits(self, ticker: str) -> list[Split]:
        rows = await self._db.fetch(
            "splits",
            f"SELECT {', '.join(SPLIT_COLUMNS)} FROM splits WHERE ticker = ? ORDER BY execution_date, id",
            ticker,
        )
        return [split_from_row(r) for r in rows]


class SqlCatalog(Generic[TxT]):
    """:class:`~mdw.store.base.Catalog`: bar counts from the bar table, ranges from the ledger."""

    def __init__(self, db: Database[TxT], bars: BarTable[TxT]) -> None:
        self._db = db
        self._bars = bars

    async def series(self, ticker: str | None = None) -> list[SeriesStats]:
        return await self._bars.stats(ticker)

    async def ledger(self, ticker: str | None = None) -> list[CoverageEntry]:
        return await ledger.entries(self._db, ticker)
