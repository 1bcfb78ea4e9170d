"""Exactly one scheduler leader across processes and machines.

* PostgreSQL: a session-level advisory lock held on a dedicated connection
  (:class:`mdw.store.pglock.PgAdvisoryLock`; the lock lives and dies with its session, so a crashed
  leader releases it at once).
* SQLite: an exclusive ``flock`` on ``<database>.scheduler.lock`` next to the database file; the
  kernel drops it when the process dies. SQLite is single-machine by nature, so that is enough.
  An in-memory database gets a lock private to the process.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from typing import Protocol

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
        from mdw.store.pglock import PgAdvisoryLock

        return PgAdvisoryLock(database_url, LOCK_KEY)
    from mdw.store import sqlite_path

    path = sqlite_path(database_url)
    if path == ":memory:":
        return LocalLock()
    return FileLock(os.path.abspath(path) + ".scheduler.lock")
