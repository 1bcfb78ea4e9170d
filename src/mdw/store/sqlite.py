"""The embedded default store: the stdlib ``sqlite3`` driver in WAL mode, driven from worker threads.

One writer connection lives on a dedicated single thread and every write takes an asyncio lock,
so writes are serialised in this process; other processes wait on ``busy_timeout``. Reads use
per-thread connections on a small reader pool, so WAL lets them proceed while a write commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from mdw.domain import BarBatch, Dividend, RangeSet, Split, Timeframe, TimeRange
from mdw.errors import StoreError
from mdw.store import migrate
from mdw.store.base import Dataset, WriteResult
from mdw.store.common import StoreBase, as_timeframe, check_range, tf_text
from mdw.store.ledger import (
    LedgerChange,
    LedgerRow,
    SeriesWrite,
    cut_rule,
    diff_bars,
    hull,
    merge_rule,
    now_ms,
)
from mdw.store.sqlite_records import SqliteRecords

log = logging.getLogger(__name__)
T = TypeVar("T")
BUSY_TIMEOUT_MS = 30_000
_COLS = "ticker, timeframe, t, o, h, l, c, v, vw, n, source"
_VALUES = "o, h, l, c, v, vw, n, source"
_INSERT = f"INSERT INTO bars ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_UPSERT = (
    _INSERT
    + " ON CONFLICT (ticker, timeframe, t) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _VALUES.split(", "))
    + f" WHERE ({_VALUES}) IS NOT ("
    + ", ".join(f"excluded.{c}" for c in _VALUES.split(", "))
    + ")"
)
_FETCH = 8192
_DIFF = (
    "SELECT t, o, h, l, c, v, vw, n, source IS NOT ? FROM bars"
    " WHERE ticker = ? AND timeframe = ? AND t >= ? AND t < ? ORDER BY t"
)
_SELECT = "SELECT t, o, h, l, c, v, vw, n FROM bars WHERE ticker = ? AND timeframe = ? AND t >= ? AND t < ?"


@contextlib.contextmanager
def sqlite_errors(what: str) -> Iterator[None]:
    """Map driver errors at this boundary to :class:`StoreError`, chained with ``from``."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"sqlite {what} failed: {exc}") from exc


def connect(path: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with the pragmas mdw relies on."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -32000")
    return conn


def wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL; if a first open elsewhere holds the file, wait for its write lock, then switch.

    SQLite answers BUSY at once (no busy handler: that could deadlock) when this connection would
    convert a file another connection is converting or migrating; ``BEGIN IMMEDIATE`` does wait.
    """
    try:
        conn.execute("PRAGMA journal_mode = WAL")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
            raise
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = WAL")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` (take the write lock up front, so no upgrade deadlock), commit or roll back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


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
        n=grid[:, 7].astype(np.int64),
    )


class SqliteStore(SqliteRecords, StoreBase):
    """A :class:`~mdw.store.base.Store` in one SQLite file (``sqlite:///path.db``)."""

    def __init__(self, url: str, path: str) -> None:
        self.url = url
        self._path = path
        self._memory = path == ":memory:" or path.startswith("file::memory:")
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="mdw-sqlite-writer")
        self._reader_pool = (
            self._writer_pool
            if self._memory
            else ThreadPoolExecutor(2, thread_name_prefix="mdw-sqlite-reader")
        )
        self._write_lock = asyncio.Lock()
        self._writer: sqlite3.Connection | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------------

    async def _run(self, pool: ThreadPoolExecutor, what: str, fn: Callable[..., T], *args: Any) -> T:
        def call() -> T:
            with sqlite_errors(what):
                return fn(*args)

        return await asyncio.get_running_loop().run_in_executor(pool, call)

    async def _write(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        # The lock keeps this process's writers in order; the single writer thread then owns the
        # connection, so a cancelled caller never leaves a half-used connection behind.
        async with self._write_lock:
            return await self._run(self._writer_pool, what, lambda: fn(self._conn()))

    async def _read(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(self._reader_pool, what, lambda: fn(self._reader()))

    def _conn(self) -> sqlite3.Connection:
        if self._writer is None:
            raise StoreError(f"the store {self.url} is not open")
        return self._writer

    def _reader(self) -> sqlite3.Connection:
        if self._memory:
            return self._conn()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self._path)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    async def open(self) -> None:
        """Connect, switch to WAL and apply pending migrations.

        Raises:
            SchemaVersionError: the file was written by a newer mdw.
            StoreError: the file cannot be opened.
        """

        def start() -> None:
            if not self._memory:
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self._path)
            try:
                if not self._memory:
                    wal(conn)
                self._migrate(conn)
            except BaseException:
                conn.close()
                raise
            self._writer = conn

        async with self._write_lock:
            await self._run(self._writer_pool, "open", start)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        with transaction(conn):  # IMMEDIATE: a second process migrating waits, then sees our version
            conn.execute(migrate.SCHEMA_TABLE_SQL)
            current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
            for step in migrate.pending("sqlite", int(current)):
                log.info(
                    "applying migration %04d_%s",
                    step.version,
                    step.name,
                    extra={"action": "store.migrate", "backend": "sqlite"},
                )
                for stmt in migrate.split_sqlite(step.sql):
                    conn.execute(stmt)
                conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at_ms) VALUES (?, ?, ?)",
                    (step.version, step.name, now_ms()),
                )

    async def close(self) -> None:
        """Close every connection and stop the worker threads (idempotent)."""

        def stop() -> None:
            with self._readers_lock:
                readers, self._readers = self._readers, []
            for conn in readers:
                conn.close()
            if self._writer is not None:
                self._writer.close()
                self._writer = None

        if self._writer is not None or self._readers:
            async with self._write_lock:
                await self._run(self._writer_pool, "close", stop)
        self._writer_pool.shutdown(wait=True)
        if self._reader_pool is not self._writer_pool:
            self._reader_pool.shutdown(wait=True)

    async def ping(self) -> None:
        await self._read("ping", lambda c: c.execute("SELECT 1").fetchone())

    async def schema_version(self) -> tuple[int, int]:
        got = await self._read(
            "schema_version",
            lambda c: c.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0],
        )
        return int(got), migrate.latest("sqlite")

    # -- bars -----------------------------------------------------------------------------------

    async def _write_series(self, series: list[SeriesWrite], fetched_at_ms: int) -> WriteResult:
        def work(conn: sqlite3.Connection) -> WriteResult:
            total = WriteResult()
            with transaction(conn):
                for s in series:
                    total += _write_one(conn, s)
                    _apply_ledger(
                        conn,
                        s.ticker,
                        Dataset.BARS,
                        s.timeframe,
                        s.covered,
                        functools.partial(merge_rule, new=s.covered, fetched_at_ms=fetched_at_ms),
                    )
            return total

        return await self._write("write_bars", work)

    async def bars(self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int) -> BarBatch:
        timeframe = as_timeframe(timeframe)
        rng = check_range(start_ms, end_ms)
        args = (ticker, tf_text(timeframe), rng.start_ms, rng.end_ms)
        grid = await self._read("bars", lambda c: fetch_grid(c.execute(_SELECT + " ORDER BY t", args)))
        return grid_to_batch(ticker, timeframe, grid)

    async def iter_bars(
        self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int, chunk: int = 100_000
    ) -> AsyncIterator[BarBatch]:
        timeframe = as_timeframe(timeframe)
        rng = check_range(start_ms, end_ms)
        cursor_ms = rng.start_ms
        tf = tf_text(timeframe)
        while True:
            # Keyset paging on the primary key: each chunk is one short read, memory stays flat.
            args = (ticker, tf, cursor_ms, rng.end_ms, chunk)
            grid = await self._read("iter_bars", functools.partial(_page, args=args))
            if not len(grid):
                return
            yield grid_to_batch(ticker, timeframe, grid)
            if len(grid) < chunk:
                return
            cursor_ms = int(grid[-1, 0]) + 1

    async def delete_range(self, ticker: str, timeframe: Timeframe | str, start_ms: int, end_ms: int) -> int:
        rng = check_range(start_ms, end_ms)
        tf = tf_text(timeframe)

        def work(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                cur = conn.execute(
                    "DELETE FROM bars WHERE ticker = ? AND timeframe = ? AND t >= ? AND t < ?",
                    (ticker, tf, rng.start_ms, rng.end_ms),
                )
                _apply_ledger(
                    conn, ticker, Dataset.BARS, tf, RangeSet.of([rng]), lambda rows: cut_rule(rows, rng)
                )
                return cur.rowcount

        return await self._write("delete_range", work)

    async def coverage(self, ticker: str, dataset: Dataset, timeframe: str = "") -> RangeSet:
        rows = await self._read(
            "coverage",
            lambda c: c.execute(
                "SELECT start_ms, end_ms FROM coverage WHERE ticker = ? AND dataset = ? AND timeframe = ?",
                (ticker, Dataset(dataset).value, str(timeframe)),
            ).fetchall(),
        )
        return RangeSet.of(rows)

    # -- corporate actions ----------------------------------------------------------------------

    async def write_corporate_actions(
        self,
        ticker: str,
        dividends: Sequence[Dividend] | None,
        splits: Sequence[Split] | None,
        covered: TimeRange,
    ) -> WriteResult:
        fetched = now_ms()

        def work(conn: sqlite3.Connection) -> WriteResult:
            total = WriteResult()
            with transaction(conn):
                for dataset, items in ((Dataset.DIVIDENDS, dividends), (Dataset.SPLITS, splits)):
                    if items is None:
                        continue
                    total += self._upsert_actions(conn, dataset, items)
                    _apply_ledger(
                        conn,
                        ticker,
                        dataset,
                        "",
                        RangeSet.of([covered]),
                        lambda rows: merge_rule(rows, RangeSet.of([covered]), fetched),
                    )
            return total

        return await self._write("write_corporate_actions", work)


def _page(conn: sqlite3.Connection, args: tuple[Any, ...]) -> npt.NDArray[np.float64]:
    return fetch_grid(conn.execute(_SELECT + " ORDER BY t LIMIT ?", args))


def _driver_rows(ticker: str, timeframe: str, b: BarBatch) -> Iterator[tuple[Any, ...]]:
    # NaN v/vw are stored as NULL by the driver.
    return zip(
        repeat(ticker), repeat(timeframe), b.t.tolist(), b.o.tolist(), b.h.tolist(), b.l.tolist(),
        b.c.tolist(), b.v.tolist(), b.vw.tolist(), b.n.tolist(), repeat(b.source), strict=False,
    )  # fmt: skip


def _write_one(conn: sqlite3.Connection, s: SeriesWrite) -> WriteResult:
    """Diff the batch against the stored span, insert new rows, upsert only the corrections."""
    span = s.span
    if span is None:
        return WriteResult()
    grid = fetch_grid(
        conn.execute(_DIFF, (s.batch.source, s.ticker, s.timeframe, span.start_ms, span.end_ms))
    )
    diff = diff_bars(s.batch, grid_to_batch(s.ticker, s.batch.timeframe, grid), grid[:, 8] != 0)
    if len(diff.new):  # plain INSERT: nothing is stored at these t (we hold the write lock)
        conn.executemany(_INSERT, _driver_rows(s.ticker, s.timeframe, diff.new))
    updated = 0
    if len(diff.changed):
        updated = conn.executemany(_UPSERT, _driver_rows(s.ticker, s.timeframe, diff.changed)).rowcount
    unchanged = diff.unchanged + len(diff.changed) - updated
    return WriteResult(inserted=len(diff.new), updated=updated, unchanged=unchanged)


def _apply_ledger(
    conn: sqlite3.Connection,
    ticker: str,
    dataset: Dataset,
    timeframe: str,
    ranges: RangeSet,
    rule: Callable[[list[LedgerRow]], LedgerChange],
) -> None:
    """Read the ledger rows near ``ranges``, apply ``rule``, write the change (same transaction)."""
    box = hull(ranges)
    if box is None:
        return
    key = (ticker, dataset.value, timeframe)
    rows = [
        LedgerRow(*r)
        for r in conn.execute(
            "SELECT start_ms, end_ms, fetched_at_ms FROM coverage WHERE ticker = ? AND dataset = ?"
            " AND timeframe = ? AND start_ms <= ? AND end_ms >= ?",
            (*key, box.end_ms, box.start_ms),
        )
    ]
    change = rule(rows)
    conn.executemany(
        "DELETE FROM coverage WHERE ticker = ? AND dataset = ? AND timeframe = ? AND start_ms = ?",
        [(*key, s) for s in change.delete_starts],
    )
    conn.executemany(
        "INSERT INTO coverage (ticker, dataset, timeframe, start_ms, end_ms, fetched_at_ms)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(*key, r.start_ms, r.end_ms, r.fetched_at_ms) for r in change.insert],
    )
