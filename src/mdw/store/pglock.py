"""A session-level PostgreSQL advisory lock on a connection of its own (the scheduler's leader lock).

Not a pooled connection: the lock lives and dies with its session, so a crashed holder releases it
at once, and a pool could hand the session to someone else. The lock *is* the connection.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from mdw.errors import StoreError

if TYPE_CHECKING:
    import asyncpg


class PgAdvisoryLock:
    """``pg_try_advisory_lock`` on a connection of its own."""

    def __init__(self, url: str, key: int) -> None:
        self.url = url
        self.key = key
        self._conn: asyncpg.Connection | None = None

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
