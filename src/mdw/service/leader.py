"""Exactly one scheduler leader across processes and machines.

* PostgreSQL: a session-level advisory lock held on a dedicated connection (not a pooled one:
  the lock lives and dies with its session, so a crashed leader releases it at once and a pool
  could hand the session to someone else). This is the one place outside the store that opens a
  database connection, because the lock *is* the connection.
* SQLite: an exclusive ``flock`` on ``<database>.scheduler.lock`` next to the database file; the
  kernel drops it when the process dies. SQLite is single-machine by nature, so that is enough.
  An in-memory database gets a lock private to the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from typing import Any, Protocol

from mdw.errors import StoreError

log = logging.getLogger(__name__)
# A fixed 63-bit key derived from a name, so unrelated applications sharing the server do not clash.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"mdw.scheduler.leader").digest()[:8], "big") >> 1


class LeaderLock(Protocol):
    """A non-blocking, process-crash-safe mutual exclusion lock."""

    async def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this process now holds it."""

    async def held(self) -> bool:
        """Whether the lock is still ours (a dropped connection loses it)."""

    async def release(self) -> None: ...


class PgAdvisoryLock:
    """``pg_try_advisory_lock`` on a connection of its own."""

    def __init__(self, url: str, key: int = LOCK_KEY) -> None:
        self.url = url
        self.key = key
        self._conn: Any = None

    async def try_acquire(self) -> bool:
        import asyncpg

        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self.url, timeout=10)
            got = bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key))
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            await self._drop()
            raise StoreError(f"leader lock: cannot reach PostgreSQL ({type(exc).__name__})") from exc
        return got

    async def held(self) -> bool:
        import asyncpg

        if self._conn is None or self._conn.is_closed():
            return False
        try:
            return bool(await self._conn.fetchval(
                "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                " AND granted AND ((classid::bigint << 32) | objid::bigint) = $1", self.key))
        except (OSError, asyncpg.PostgresError, TimeoutError):
            await self._drop()
            return False

    async def release(self) -> None:
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            # Closing the session releases every advisory lock it holds.
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)


class FileLock:
    """``flock(LOCK_EX | LOCK_NB)`` on a file; the kernel releases it with the process."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    async def held(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class LocalLock:
    """For an in-memory database: only this process can see it, so it always leads."""

    def __init__(self) -> None:
        self._held = False

    async def try_acquire(self) -> bool:
        self._held = True
        return True

    async def held(self) -> bool:
        return self._held

    async def release(self) -> None:
        self._held = False


def lock_for(database_url: str) -> LeaderLock:
    """The leader lock that fits the database URL."""
    if database_url.startswith(("postgresql://", "postgres://")):
        return PgAdvisoryLock(database_url)
    from mdw.store import sqlite_path

    path = sqlite_path(database_url)
    if path == ":memory:":
        return LocalLock()
    return FileLock(os.path.abspath(path) + ".scheduler.lock")
