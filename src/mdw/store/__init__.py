"""Stores: the :class:`Store` protocol, its record types, and :func:`open_store` keyed by URL scheme.

Backends are imported lazily, so ``asyncpg`` is only loaded when a PostgreSQL URL is opened::

    async with await open_store("sqlite:///data/mdw.db") as store:
        batch = await store.bars("AAPL", Timeframe.parse("1d"), start_ms, end_ms)
        info = await store.symbols.get("AAPL")
"""

from __future__ import annotations

from pathlib import Path

from mdw.errors import ConfigError, UsageError
from mdw.store.base import (
    ActionStore,
    ApiKeyRecord,
    AuditEntry,
    AuditLog,
    BarWrite,
    Catalog,
    CoverageEntry,
    Dataset,
    KeyStore,
    MarketDay,
    MarketDayStore,
    QuarantinedBar,
    QuarantineStore,
    RunKind,
    RunRecord,
    RunStatus,
    RunStore,
    SchemaVersion,
    SeriesStats,
    Store,
    SymbolInfo,
    SymbolStore,
    WriteResult,
)

__all__ = [
    "URL_FORMS",
    "ActionStore",
    "ApiKeyRecord",
    "AuditEntry",
    "AuditLog",
    "BarWrite",
    "Catalog",
    "CoverageEntry",
    "Dataset",
    "KeyStore",
    "MarketDay",
    "MarketDayStore",
    "QuarantineStore",
    "QuarantinedBar",
    "RunKind",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "SchemaVersion",
    "SeriesStats",
    "Store",
    "SymbolInfo",
    "SymbolStore",
    "WriteResult",
    "open_store",
    "sqlite_path",
]

URL_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite://:memory:, "
    "postgresql://user@host:port/dbname (postgres:// also accepted), "
    "or the columnar store iceberg+sqlite:///path.db[?warehouse=dir] or "
    "iceberg+postgresql://user@host:port/dbname?warehouse=s3://bucket/prefix"
)


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:`` URL (``:memory:`` for an in-memory database).

    Raises:
        UsageError: the URL is not one of the accepted SQLite forms.
    """
    if url in ("sqlite://:memory:", "sqlite:///:memory:", "sqlite://"):
        return ":memory:"
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return url[len("sqlite:///") :]
    raise UsageError(f"invalid store URL {url!r}; expected {URL_FORMS}")


def missing_database(url: str) -> str | None:
    """Why the SQLite database at ``url`` is not there (naming its absolute path), or None if it is.

    Only SQLite files are checked: a server database's existence is the server's to report.
    """
    text = url.strip()
    if text.lower().startswith("iceberg+"):
        from mdw.store.lake.url import split_url

        text = split_url(text)[0]
    if not text.lower().startswith("sqlite:"):
        return None
    path = sqlite_path(text)
    if path == ":memory:":
        return None
    resolved = Path(path).expanduser().resolve()
    if resolved.exists():
        return None
    hint = ""
    if not path.startswith("/") and "/" in path:  # the three-or-four-slashes surprise
        hint = (f"; {text!r} names a path relative to the working directory {str(Path.cwd())!r}"
                f" (sqlite:////{path} is the absolute path /{path})")
    return f"database {str(resolved)!r} does not exist{hint}"


def require_existing(url: str) -> None:
    """Refuse a SQLite URL whose file does not exist, naming the absolute path it resolved to.

    Read commands call this first so that they never create a database: a mistyped path (or
    ``sqlite:///tmp/x.db``, which is ``./tmp/x.db``) is an error, not an empty warehouse.

    Raises:
        ConfigError: the file is missing.
    """
    why = missing_database(url)
    if why:
        raise ConfigError(f"{why}; a command that writes (mdw backfill) creates it")


def _build(url: str) -> Store:
    """The store for ``url``, not yet opened; the backend's modules are imported here, on demand."""
    text = url.strip()
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    if scheme.startswith("iceberg+"):
        return _build_lake(text)
    if scheme == "sqlite":
        from mdw.store.sqlite import SqliteDatabase
        from mdw.store.sqlite_bars import SqliteBars
        from mdw.store.sqlstore import SqlStore

        lite = SqliteDatabase(text, sqlite_path(text))
        return SqlStore(text, lite, SqliteBars(lite))
    if scheme in ("postgresql", "postgres") and text.split(":", 1)[1].startswith("//"):
        from mdw.store.postgres import PgDatabase
        from mdw.store.postgres_bars import STAGE_SQL, PgBars
        from mdw.store.sqlstore import SqlStore

        pg = PgDatabase(text, setup=(STAGE_SQL,))
        return SqlStore(text, pg, PgBars(pg))
    raise UsageError(f"invalid store URL {url!r}; expected {URL_FORMS}")


def _build_lake(url: str) -> Store:
    """The columnar store: bars in an Iceberg table, the rest in the SQLite or PostgreSQL database."""
    from mdw.store.lake.bars import IcebergBars
    from mdw.store.lake.url import split_url
    from mdw.store.sqlstore import SqlStore

    database_url, config = split_url(url)
    if database_url.startswith("sqlite:"):
        from mdw.store.sqlite import SqliteDatabase

        lite = SqliteDatabase(database_url, sqlite_path(database_url))
        return SqlStore(url, lite, IcebergBars(lite, config))
    from mdw.store.postgres import PgDatabase

    pg = PgDatabase(database_url)
    return SqlStore(url, pg, IcebergBars(pg, config))


async def open_store(url: str) -> Store:
    """Open (connect and migrate) the store at ``url``; close it with ``await store.close()``.

    The returned store is also an async context manager that closes it on exit.

    Raises:
        UsageError: the URL has an unknown scheme or shape; the message lists the accepted forms.
        SchemaVersionError: the database was written by a newer mdw.
        StoreError: the database cannot be reached or migrated.
    """
    store = _build(url)
    try:
        await store.open()
    except BaseException:
        await store.close()  # release threads/pool of a store that never opened
        raise
    return store
