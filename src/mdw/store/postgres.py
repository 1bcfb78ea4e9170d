"""The server store's primitive: PostgreSQL through one asyncpg pool.

The pool is mdw's one PostgreSQL path for its own tables: store-package modules that keep tables
of their own take connections from :meth:`PgDatabase.acquire`, and map driver errors through
:func:`pg_errors`, the one place they become :class:`StoreError`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import date

import asyncpg

from mdw.errors import ConfigError, StoreError
from mdw.store.primitives import Dialect, Row, SqlValue, Tx, not_open, numbered, rowcount_of

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || $1, 0))"
_LOCK_MANY = (
    "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || k, 0)) FROM unnest($1::text[]) AS k"
)
_TIMESCALE_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
    " OR (EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
    " AND current_setting('shared_preload_libraries') LIKE '%timescaledb%')"
)


@contextlib.asynccontextmanager
async def pg_errors(what: str) -> AsyncIterator[None]:
    """Map driver and connection errors at this boundary to :class:`StoreError`, chained with ``from``."""
    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreError(f"postgres {what} failed: {type(exc).__name__}: {exc}") from exc
    except (OSError, TimeoutError) as exc:
        raise StoreError(f"postgres {what} failed: cannot reach the server: {exc}") from exc


def safe_url(url: str) -> str:
    """The URL without a password, for messages."""
    head, sep, tail = url.partition("://")
    if "@" in tail:
        cred, _, host = tail.rpartition("@")
        return f"{head}{sep}{cred.split(':', 1)[0]}@{host}"
    return url


@functools.lru_cache(maxsize=1024)
def _sql(text: str) -> str:
    return numbered(text)


async def _variants(tx: Tx) -> frozenset[str]:
    found = await tx.fetch(_TIMESCALE_SQL)
    return frozenset({"timescaledb"}) if found[0][0] else frozenset()


def _same_date(value: date | None) -> date | None:
    return value


def _text_array(values: tuple[str, ...]) -> list[str]:
    return list(values)


POSTGRES = Dialect("postgres", "IS DISTINCT FROM", _same_date, _text_array, _variants)


class PgTx:
    """A :class:`~mdw.store.primitives.Tx` on one pooled connection; ``conn`` for bulk paths (COPY)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, *args: SqlValue) -> int:
        return rowcount_of(await self.conn.execute(_sql(sql), *args))

    async def executemany(self, sql: str, rows: Iterable[Sequence[SqlValue]]) -> None:
        await self.conn.executemany(_sql(sql), rows)

    async def fetch(self, sql: str, *args: SqlValue) -> list[Row]:
        return [tuple(r) for r in await self.conn.fetch(_sql(sql), *args)]

    async def script(self, sql: str) -> None:
        await self.conn.execute(sql)  # no arguments: the simple protocol runs every statement

    async def lock(self, key: str) -> None:
        """A transaction-scoped advisory lock on ``key`` (within this schema)."""
        await self.conn.execute(_LOCK, key)

    async def lock_many(self, keys: Sequence[str]) -> None:
        """:meth:`lock` on each key in order, in one statement (the function scan keeps the order)."""
        if keys:
            await self.conn.execute(_LOCK_MANY, list(keys))


class PgDatabase:
    """A :class:`~mdw.store.primitives.Database` on an asyncpg pool (``postgresql://user@host/db``).

    Args:
        setup: statements every new pooled connection runs first (e.g. a temporary stage table).
    """

    dialect = POSTGRES

    def __init__(self, url: str, *, max_connections: int = 10, setup: Sequence[str] = ()) -> None:
        self.url = url
        self.dsn = "postgresql://" + url.split("://", 1)[1]
        self._max = max_connections
        self._setup = tuple(setup)
        self._pool: asyncpg.Pool | None = None

    async def _init(self, conn: asyncpg.Connection) -> None:
        for sql in self._setup:
            await conn.execute(sql)

    @property
    def pool(self) -> asyncpg.Pool:
        """The open pool (for store-package modules with tables of their own)."""
        if self._pool is None:
            raise not_open(safe_url(self.url))
        return self._pool

    @contextlib.asynccontextmanager
    async def acquire(self, what: str) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; driver errors inside the block become :class:`StoreError`."""
        pool = self.pool
        async with pg_errors(what), pool.acquire() as conn:
            yield conn

    async def open(self) -> None:
        """Create the pool.

        Raises:
            ConfigError: the server is unreachable, or the database or role does not exist.
            StoreError: the server refused otherwise.
        """
        where = safe_url(self.url)
        try:
            pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self._max, init=self._init, timeout=10
            )
        # The settings name a server, database or role that is not there: a configuration error
        # (exit 2), not a failure of a run.
        except asyncpg.InvalidCatalogNameError as exc:
            raise ConfigError(f"database_url {where}: the database does not exist ({exc})") from exc
        except (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError) as exc:
            raise ConfigError(f"database_url {where}: the server refused the role ({exc})") from exc
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"database_url {where}: cannot reach the server ({exc or type(exc).__name__})"
                              ) from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"postgres connect failed: {type(exc).__name__}: {exc}") from exc
        self._pool = pool

    async def checkpoint(self) -> bool:
        """Nothing to do: the server checkpoints and recycles its WAL on its own."""
        return True

    async def close(self) -> None:
        """Close the pool (idempotent)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            async with pg_errors("close"):
                await pool.close()

    @contextlib.asynccontextmanager
    async def transaction(self, what: str) -> AsyncIterator[PgTx]:
        async with self.acquire(what) as conn, conn.transaction():
            yield PgTx(conn)

    async def fetch(self, what: str, sql: str, *args: SqlValue) -> list[Row]:
        async with self.acquire(what) as conn:
            return [tuple(r) for r in await conn.fetch(_sql(sql), *args)]

    async def execute(self, what: str, sql: str, *args: SqlValue) -> int:
        async with self.acquire(what) as conn:
            return rowcount_of(await conn.execute(_sql(sql), *args))
