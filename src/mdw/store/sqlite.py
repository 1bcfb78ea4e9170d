"""The embedded default store's primitive: the stdlib ``sqlite3`` driver in WAL mode, on worker threads.

One writer connection lives on a dedicated single thread and every write takes an asyncio lock,
so writes are serialised in this process; other processes wait on ``busy_timeout``. Reads use
per-thread connections on a small reader pool, so WAL lets them proceed while a write commits.
Because the writer thread runs jobs in the order they were queued, a transaction's statements,
its COMMIT or its ROLLBACK never interleave with another transaction's.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import TypeVar

from mdw.errors import StoreError
from mdw.store.migrate import split_sqlite
from mdw.store.primitives import Dialect, Row, SqlValue, Tx, not_open

T = TypeVar("T")
BUSY_TIMEOUT_MS = 30_000


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


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _changed(cursor: sqlite3.Cursor) -> int:
    return max(cursor.rowcount, 0)  # -1 for statements that change no rows


def _script(conn: sqlite3.Connection, sql: str) -> None:
    for stmt in split_sqlite(sql):  # one statement at a time, inside the open transaction
        conn.execute(stmt)


async def _no_variants(tx: Tx) -> frozenset[str]:
    return frozenset()


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _joined(values: tuple[str, ...]) -> str:
    return ",".join(values)


SQLITE = Dialect("sqlite", "IS NOT", _iso, _joined, _no_variants)


class SqliteTx:
    """A :class:`~mdw.store.primitives.Tx` on the writer connection, each statement on its thread."""

    def __init__(self, db: SqliteDatabase, conn: sqlite3.Connection, what: str) -> None:
        self._db = db
        self._conn = conn
        self._what = what

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the raw connection in the writer thread (the bar table's bulk paths)."""
        return await self._db.on_writer(self._what, fn, self._conn)

    async def execute(self, sql: str, *args: SqlValue) -> int:
        return await self.run(lambda c: _changed(c.execute(sql, args)))

    async def executemany(self, sql: str, rows: Iterable[Sequence[SqlValue]]) -> None:
        await self.run(lambda c: c.executemany(sql, rows))

    async def fetch(self, sql: str, *args: SqlValue) -> list[Row]:
        return await self.run(lambda c: c.execute(sql, args).fetchall())

    async def script(self, sql: str) -> None:
        await self.run(lambda c: _script(c, sql))

    async def lock(self, key: str) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the database's one write lock."""


class SqliteDatabase:
    """A :class:`~mdw.store.primitives.Database` in one SQLite file (or in memory)."""

    dialect = SQLITE

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

    # -- threads --------------------------------------------------------------------------------

    async def _submit(self, pool: ThreadPoolExecutor, what: str, fn: Callable[[], T]) -> T:
        def call() -> T:
            with sqlite_errors(what):
                return fn()

        return await asyncio.get_running_loop().run_in_executor(pool, call)

    async def on_writer(self, what: str, fn: Callable[[sqlite3.Connection], T],
                        conn: sqlite3.Connection | None = None) -> T:
        """Run ``fn`` with the writer connection on the writer thread (the caller holds the lock)."""
        return await self._submit(self._writer_pool, what, lambda: fn(conn or self._conn()))

    async def read(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with this thread's reader connection on a reader thread."""
        if self._memory:
            # One connection serves both: take the write lock, so a read never sees a write half done.
            async with self._write_lock:
                return await self.on_writer(what, fn)
        return await self._submit(self._reader_pool, what, lambda: fn(self._reader()))

    def _conn(self) -> sqlite3.Connection:
        if self._writer is None:
            raise not_open(self.url)
        return self._writer

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self._path)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    # -- the primitive --------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and switch to WAL (creating the file and its directory if need be).

        Raises:
            StoreError: the file cannot be opened.
        """

        def start() -> None:
            if not self._memory:
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self._path)
            try:
                if not self._memory:
                    wal(conn)
            except BaseException:
                conn.close()
                raise
            self._writer = conn

        async with self._write_lock:
            await self._submit(self._writer_pool, "open", start)

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
                await self._submit(self._writer_pool, "close", stop)
        self._writer_pool.shutdown(wait=True)
        if self._reader_pool is not self._writer_pool:
            self._reader_pool.shutdown(wait=True)

    @contextlib.asynccontextmanager
    async def transaction(self, what: str) -> AsyncIterator[SqliteTx]:
        """``BEGIN IMMEDIATE`` (the write lock up front, so no upgrade deadlock), then commit or roll back."""
        async with self._write_lock:
            conn = self._conn()
            try:
                await self.on_writer(what, lambda c: c.execute("BEGIN IMMEDIATE"), conn)
                yield SqliteTx(self, conn, what)
                await self.on_writer(what, lambda c: c.execute("COMMIT"), conn)
            except BaseException:
                # Queued behind whatever this transaction still has running on the writer thread,
                # and shielded: a cancelled caller must not leave the connection inside a transaction.
                with contextlib.suppress(StoreError):
                    await asyncio.shield(self.on_writer(what, _rollback, conn))
                raise

    async def fetch(self, what: str, sql: str, *args: SqlValue) -> list[Row]:
        return await self.read(what, lambda c: c.execute(sql, args).fetchall())

    async def execute(self, what: str, sql: str, *args: SqlValue) -> int:
        async with self._write_lock:  # autocommit: the statement is its own transaction
            return await self.on_writer(what, lambda c: _changed(c.execute(sql, args)))
