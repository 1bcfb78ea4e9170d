"""Stores: the :class:`Store` protocol, its record types, and :func:`open_store` keyed by URL scheme.

Backends are imported lazily, so ``asyncpg`` is only loaded when a PostgreSQL URL is opened::

    async with await open_store("sqlite:///data/mdw.db") as store:
        batch = await store.bars("AAPL", Timeframe.parse("1d"), start_ms, end_ms)
        info = await store.symbols.get("AAPL")
"""

from __future__ import annotations

from pathlib import Path

from mdw.errors import ConfigError, StoreError, UsageError
from mdw.store.base import (
    ActionStore,
    ActionWrite,
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
    "ActionWrite",
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
    "is_memory",
    "open_store",
    "refuse_memory",
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


def is_memory(url: str) -> bool:
    """True for an in-memory SQLite URL (``sqlite://``, ``sqlite://:memory:``), columnar or not."""
    text = url.strip()
    if text.lower().startswith("iceberg+"):
        text = text[len("iceberg+"):].split("?", 1)[0]
    if not text.lower().startswith("sqlite:"):
        return False
    try:
        return sqlite_path(text) == ":memory:"
    except UsageError:
        return False  # a malformed URL: opening it names the accepted forms


def refuse_memory(url: str, command: str) -> None:
    """Refuse an in-memory database for a command that writes: what it wrote would vanish at exit.

    Raises:
        ConfigError: ``url`` is an in-memory SQLite database.
    """
    if is_memory(url):
        raise ConfigError(f"database_url {url!r} is an in-memory database: {command} would write into it "
                          "and lose everything when it exits; give a file, such as sqlite:///mdw.db")


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


def _build(url: str, read_only: bool = False) -> Store:
    """The store for ``url``, not yet opened; the backend's modules are imported here, on demand."""
    text = url.strip()
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    if scheme.startswith("iceberg+"):
        return _build_lake(text)
    if scheme == "sqlite":
        from mdw.store.sqlite import SqliteDatabase
        from mdw.store.sqlite_bars import SqliteBars
        from mdw.store.sqlstore import SqlStore

        lite = SqliteDatabase(text, sqlite_path(text), read_only=read_only)
        return SqlStore(text, lite, SqliteBars(lite), read_only=lite.read_only)
    if scheme in ("postgresql", "postgres") and text.split(":", 1)[1].startswith("//"):
        from mdw.store.postgres import PgDatabase
        from mdw.store.postgres_bars import STAGE_SQL, PgBars
        from mdw.store.sqlstore import SqlStore

        pg = PgDatabase(text, setup=(STAGE_SQL,))
        return SqlStore(text, pg, PgBars(pg), read_only=read_only)
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


async def open_store(url: str, *, read_only: bool = False) -> Store:
    """Open (connect and migrate) the store at ``url``; close it with ``await store.close()``.

    The returned store is also an async context manager that closes it on exit.

    ``read_only`` (the read commands): a SQLite file is opened with ``mode=ro`` and no schema work,
    so reading works on a full disk or a read-only mount; only a schema older than this mdw is
    opened for writing, to migrate it. A PostgreSQL store skips the migration when current. The
    columnar store always opens for writing.

    Raises:
        UsageError: the URL has an unknown scheme or shape; the message lists the accepted forms.
        SchemaVersionError: the database was written by a newer mdw.
        StoreError: the database cannot be reached or migrated.
    """
    if read_only and not url.strip().lower().startswith("iceberg+"):
        store = await _opened(_build(url, read_only=True))
        try:
            version = await store.ping()
        except StoreError:
            version = None  # no schema yet (an empty file): a writable open migrates it
        if version is not None and version.database == version.code:
            return store
        await store.close()  # an older schema: open it for writing once, which migrates it
    return await _opened(_build(url))


async def _opened(store: Store) -> Store:
    try:
        await store.open()
    except BaseException:
        await store.close()  # release threads/pool of a store that never opened
        raise
    return store
