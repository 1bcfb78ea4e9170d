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
import os
import shutil
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from mdw.errors import ConfigError, StoreError
from mdw.store.migrate import split_sqlite
from mdw.store.primitives import Dialect, Row, SqlValue, Tx, not_open

T = TypeVar("T")
BUSY_TIMEOUT_MS = 30_000
# The WAL is cut back to this size whenever a checkpoint lets it restart (SQLite's default keeps it at
# its largest): a big run's WAL must not stay larger than the database it belongs to.
JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024
CHECKPOINT_BUSY_MS = 2_000  # a TRUNCATE checkpoint waits this long for readers, then gives up


@contextlib.contextmanager
def sqlite_errors(what: str) -> Iterator[None]:
    """Map driver errors at this boundary to :class:`StoreError`, chained with ``from``."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"sqlite {what} failed: {exc}") from exc


def connect(path: str, read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with the pragmas mdw relies on.

    ``read_only`` opens the file with ``mode=ro``: nothing this connection does can write to the
    database, so reads work on a full disk.
    """
    conn = _read_only(path) if read_only else sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -32000")
    conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    return conn


def _read_only(path: str) -> sqlite3.Connection:
    """A ``mode=ro`` connection, or on a full disk an ``immutable=1`` one when no WAL is pending.

    A WAL database read by a connection that finds no ``-shm`` file must create one; on a full disk
    that fails (disk I/O error). With no ``-wal`` file (or an empty one), every committed page is in
    the database file and nobody is writing, so reading it as immutable is exact.
    """
    uri = f"file:{quote(str(Path(path).expanduser().resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the header and the WAL index
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        wal_file = Path(f"{path}-wal")
        pending = wal_file.exists() and wal_file.stat().st_size > 0
        if pending or exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN):
            raise
    return sqlite3.connect(f"{uri}&immutable=1", uri=True, isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_MS / 1000)


def _truncate_wal(conn: sqlite3.Connection) -> bool:
    """Checkpoint the whole WAL into the database and truncate it to zero bytes; False if readers held it."""
    conn.execute(f"PRAGMA busy_timeout = {CHECKPOINT_BUSY_MS}")
    try:
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return not busy


def _shown(path: str) -> str:
    return repr(str(Path(path).expanduser().resolve()))


def unusable(path: str, read_only: bool = False) -> None:
    """Refuse a database path that cannot be a SQLite file (creating its directory if need be).

    Raises:
        ConfigError: the path is a directory, or its directory cannot be created or written, or
            (``read_only``) the file does not exist.
    """
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"database {_shown(path)} is a directory, not a SQLite file")
    if read_only:
        if not target.is_file():
            raise ConfigError(f"database {_shown(path)} does not exist")
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"database {_shown(path)}: cannot create its directory ({exc.strerror})") from exc
    if not target.exists() and not os.access(target.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"database {_shown(path)}: cannot create files in {str(target.parent)!r}")


def _not_sqlite(path: str, exc: sqlite3.DatabaseError) -> None:
    """A file that is not a SQLite database is a configuration error; anything else stays the driver's.

    Raises:
        ConfigError: the file is not a SQLite database.
    """
    if exc.sqlite_errorcode in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        raise ConfigError(f"database {_shown(path)} is not a SQLite database ({exc})") from exc


def _disk_full(path: str, exc: sqlite3.Error) -> None:
    """SQLite reports a full disk at open as a bare ``disk I/O error`` (it cannot size the ``-shm``
    file): say what it is.

    Raises:
        StoreError: the disk holding ``path`` has (almost) no space left.
    """
    try:
        free = shutil.disk_usage(Path(path).expanduser().resolve().parent).free
    except OSError:
        return
    if free < 64 * 1024:
        raise StoreError(f"sqlite open failed: {exc}: the disk holding {_shown(path)} is full "
                         f"({free:,} bytes free); free space and run again (reads still work)") from exc


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

    async def lock_many(self, keys: Sequence[str]) -> None:
        """Nothing to do, as for :meth:`lock`."""


class SqliteDatabase:
    """A :class:`~mdw.store.primitives.Database` in one SQLite file (or in memory)."""

    dialect = SQLITE

    def __init__(self, url: str, path: str, *, read_only: bool = False) -> None:
        self.url = url
        self._path = path
        self._memory = path == ":memory:" or path.startswith("file::memory:")
        self.read_only = read_only and not self._memory
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
            conn = connect(self._path, self.read_only)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    # -- the primitive --------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and switch to WAL (creating the file and its directory if need be).

        Raises:
            ConfigError: the path is a directory, cannot be created, or is not a SQLite database.
            StoreError: the file cannot be opened otherwise.
        """

        def start() -> None:
            if not self._memory:
                unusable(self._path, self.read_only)
            try:
                conn = connect(self._path, self.read_only)
            except sqlite3.DatabaseError as exc:
                _not_sqlite(self._path, exc)
                _disk_full(self._path, exc)
                raise
            try:
                if self.read_only:
                    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the header
                elif not self._memory:
                    wal(conn)
            except sqlite3.DatabaseError as exc:
                conn.close()
                _not_sqlite(self._path, exc)
                _disk_full(self._path, exc)
                raise
            except BaseException:
                conn.close()
                raise
            self._writer = conn

        async with self._write_lock:
            await self._submit(self._writer_pool, "open", start)

    async def checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it to zero bytes (after a big run).

        Waits at most :data:`CHECKPOINT_BUSY_MS` for readers; returns False when they kept part of
        the WAL (the next checkpoint takes it). Nothing to do in memory or read-only.
        """
        if self._memory or self.read_only:
            return True
        async with self._write_lock:
            return await self.on_writer("checkpoint", _truncate_wal)

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
