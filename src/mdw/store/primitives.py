"""What a backend implements: a SQL ``Database`` with its ``Tx``, and a ``BarTable`` for the bars.

Everything else (the ledger merge, one transaction per write, counted corrections, keyset reads,
the migration loop, the corporate-action write loop and every record store) is written once in
:mod:`mdw.store.sqlstore`, :mod:`mdw.store.records` and :mod:`mdw.store.migrate` over these.

Shared SQL is written with ``?`` placeholders; a backend whose driver numbers its parameters
(asyncpg's ``$1``) rewrites them. What differs between dialects beyond that is in a
:class:`Dialect`, or in the backend's own ``BarTable``, where the bulk paths (COPY, executemany)
live.

Bars and the rest are separable on purpose: a columnar bar table can sit beside the ledger and
the records in SQLite or PostgreSQL, by implementing :class:`BarTable` over that database's ``Tx``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from mdw.domain import BarBatch, MarketBars, Timeframe, TimeRange
from mdw.errors import StoreError
from mdw.store.base import SeriesStats, WriteSize
from mdw.store.writes import SeriesWrite

SqlValue = str | int | float | bool | bytes | date | list[str] | None
"""A parameter the drivers accept (``list[str]`` only where a dialect stores a text array)."""
Row = tuple[object, ...]
"""A result row as the driver returns it; :mod:`mdw.store.rows` checks each value's type."""


class Tx(Protocol):
    """One connection inside one open transaction."""

    async def execute(self, sql: str, *args: SqlValue) -> int:
        """Run one statement; returns the rows it changed (0 for other statements)."""

    async def executemany(self, sql: str, rows: Iterable[Sequence[SqlValue]]) -> None:
        """Run one statement for every row of parameters (pipelined where the driver can)."""

    async def fetch(self, sql: str, *args: SqlValue) -> list[Row]: ...

    async def script(self, sql: str) -> None:
        """Run a script of several statements (a migration)."""

    async def lock(self, key: str) -> None:
        """Serialise writers of ``key`` until this transaction ends (a no-op where the database
        admits one writer at a time anyway)."""

    async def lock_many(self, keys: Sequence[str]) -> None:
        """:meth:`lock` each of ``keys`` in the given order, in one round trip where it can."""


TxT = TypeVar("TxT", bound=Tx)
TxT_co = TypeVar("TxT_co", bound=Tx, covariant=True)
TxT_contra = TypeVar("TxT_contra", bound=Tx, contravariant=True)


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one SQL dialect differs where the shared SQL cannot hide it.

    Attributes:
        name: the folder of its migrations under ``store/migrations``.
        differs: the operator that compares row values with NULL equal to NULL (``IS NOT`` in
            SQLite, ``IS DISTINCT FROM`` in PostgreSQL), for "update only what changed" upserts.
        date: a date as the driver stores it (ISO text for SQLite, ``date`` for PostgreSQL).
        text_list: a tuple of text as the driver stores it (comma-joined text, or a ``TEXT[]``).
        variants: which migration variants apply to this database (e.g. ``timescaledb``).
    """

    name: str
    differs: str
    date: Callable[[date | None], SqlValue]
    text_list: Callable[[tuple[str, ...]], SqlValue]
    variants: Callable[[Tx], Awaitable[frozenset[str]]]


class Database(Protocol[TxT_co]):
    """The tiny per-backend primitive: connections, transactions and single statements."""

    dialect: Dialect

    async def open(self) -> None:
        """Connect (no schema work: the migration loop runs on top)."""

    async def close(self) -> None:
        """Release every connection (idempotent)."""

    def transaction(self, what: str) -> AbstractAsyncContextManager[TxT_co]:
        """A transaction that commits when the block ends and rolls back when it raises.

        ``what`` names the operation in error messages. Driver errors become :class:`StoreError`.
        """

    async def fetch(self, what: str, sql: str, *args: SqlValue) -> list[Row]:
        """One read outside any transaction (it may run beside a writer)."""

    async def execute(self, what: str, sql: str, *args: SqlValue) -> int:
        """One statement in a transaction of its own; returns the rows it changed."""

    async def checkpoint(self) -> bool:
        """Give back the write-ahead log's space after a big write (False: it could not all be)."""


class BarTable(Protocol[TxT_contra]):
    """Where the bars live, with the bulk paths of one backend.

    Writes take the transaction :class:`~mdw.store.sqlstore.SqlStore` opened on the database, so
    the bars commit with their ledger entries; reads run on their own.
    """

    write_size: WriteSize  # how the backfill writer should group pages for this table

    async def open(self) -> None:
        """Learn the table's layout once the schema is migrated."""

    async def close(self) -> None: ...

    async def prepare(self, series: Sequence[SeriesWrite]) -> None:
        """Before the write's transaction: anything that must not run inside it (new partitions)."""

    async def stored(
        self, tx: TxT_contra, series: SeriesWrite, span: TimeRange
    ) -> tuple[BarBatch, npt.NDArray[np.bool_]]:
        """The stored bars of ``span`` sorted by t, and which of them have another source."""

    async def insert(self, tx: TxT_contra, series: Sequence[SeriesWrite]) -> None:
        """Add bars at times nothing is stored at (the caller holds each series' lock)."""

    async def upsert(self, tx: TxT_contra, series: Sequence[SeriesWrite]) -> int:
        """Replace stored bars whose values differ; returns how many changed."""

    async def delete(self, tx: TxT_contra, ticker: str, timeframe: str | None, rng: TimeRange | None) -> int:
        """Delete a ticker's bars (of one timeframe, within ``rng``, when given); returns how many."""

    async def read(
        self, ticker: str, timeframe: Timeframe, rng: TimeRange, limit: int | None = None
    ) -> BarBatch:
        """Bars of ``rng`` sorted by t, at most ``limit`` of them (the first ones)."""

    async def stats(self, ticker: str | None = None) -> list[SeriesStats]:
        """Per (ticker, timeframe): count, first and last t; sorted."""


@runtime_checkable
class MarketBarTable(Protocol[TxT_contra]):
    """A :class:`BarTable` that also diffs and inserts many tickers' rows as whole columns.

    Where a bar table lacks these, :meth:`SqlStore.write_market` goes ticker by ticker through
    the :class:`BarTable` methods instead.
    """

    async def stored_market(
        self, tx: TxT_contra, bars: MarketBars, span: TimeRange
    ) -> npt.NDArray[np.float64]:
        """The stored rows of ``bars``' tickers at its timeframe within ``span``, as a grid of
        ``(code, t, o, h, l, c, v, vw, n, otc, other source)`` sorted by code and t (NULL as NaN;
        ``code`` indexes ``bars.tickers``; ``other source`` is 1 where the stored source differs)."""

    async def insert_market(self, tx: TxT_contra, bars: MarketBars) -> None:
        """Add rows at times nothing is stored at (the caller holds every ticker's series lock)."""


@runtime_checkable
class ManyStoredTable(Protocol[TxT_contra]):
    """A :class:`BarTable` that reads the stored bars of many series at once (one round trip to
    where the bars are, instead of one per series)."""

    async def stored_many(
        self, tx: TxT_contra, series: Sequence[tuple[SeriesWrite, TimeRange]]
    ) -> list[tuple[BarBatch, npt.NDArray[np.bool_]]]:
        """:meth:`BarTable.stored` of each ``(series, span)``, in order."""


def numbered(sql: str) -> str:
    """``?`` placeholders as ``$1, $2, ...`` (for drivers that number them).

    mdw's shared SQL never holds a ``?`` inside a literal, so a plain split is exact.
    """
    parts = sql.split("?")
    if len(parts) == 1:
        return sql
    out = [parts[0]]
    for i, part in enumerate(parts[1:], 1):
        out.append(f"${i}{part}")
    return "".join(out)


def placeholders(n: int) -> str:
    """``?, ?, ?`` for ``n`` values."""
    return ", ".join("?" * n)


def rowcount_of(status: str) -> int:
    """The row count at the end of a command tag (``INSERT 0 3``, ``UPDATE 1``); 0 when none."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def not_open(url: str) -> StoreError:
    return StoreError(f"the store {url} is not open")
