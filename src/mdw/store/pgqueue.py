"""The job queue's PostgreSQL side: procrastinate's connector and schema, and mdw's queue tables.

This is the only place that builds procrastinate's connector (psycopg is procrastinate's driver;
mdw's own tables go through asyncpg like the rest of the store), and the only place that applies
procrastinate's schema. procrastinate ships a full ``schema.sql`` for new databases and a folder of
ordered migrations for existing ones, but keeps no record of which it has run; ``queue_schema``
(a versioned mdw migration) holds that record, so a newer procrastinate applies exactly its
pending migrations, once, under an advisory lock that makes N workers starting together safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from mdw.store.postgres import pg_errors

# An arbitrary constant: serialises queue DDL across workers starting together.
DDL_LOCK_KEY = 7_310_042_017
_MIGRATION = re.compile(r"^(\d+)\.(\d+)\.(\d+)_(\d+)_[a-z0-9_]+\.sql$")
COMPONENT = "procrastinate"


def dsn(url: str) -> str:
    """The libpq form of a warehouse URL (``postgres://`` and driver suffixes normalised)."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    return url


async def create_pool(url: str, *, max_size: int) -> asyncpg.Pool:
    """An asyncpg pool of at most ``max_size`` connections, opened lazily beyond the first.

    Raises:
        StoreError: the server is unreachable.
    """
    async with pg_errors("connect"):
        return await asyncpg.create_pool(dsn(url), min_size=1, max_size=max(1, max_size), timeout=10)


def queue_connector(url: str, *, max_size: int) -> Any:
    """procrastinate's connector for the warehouse (a psycopg pool of at most ``max_size``).

    procrastinate's worker holds one pool connection for LISTEN for its whole life and takes one
    briefly to fetch, finish or retry a job, so ``max_size`` >= 2.
    """
    from procrastinate import PsycopgConnector

    return PsycopgConnector(conninfo=dsn(url), min_size=1, max_size=max(2, max_size))


def migration_key(name: str) -> tuple[int, int, int, int] | None:
    """``03.04.00_01_pre_x.sql`` -> ``(3, 4, 0, 1)``; None for a file that is not a migration."""
    m = _MIGRATION.fullmatch(name)
    return None if m is None else (int(m[1]), int(m[2]), int(m[3]), int(m[4]))


@dataclass(frozen=True, slots=True)
class QueueMigration:
    key: tuple[int, int, int, int]
    name: str
    sql: str


def queue_migrations() -> list[QueueMigration]:
    """procrastinate's migrations, in the order procrastinate documents (version, then number)."""
    from procrastinate.schema import SchemaManager

    out = []
    for path in Path(SchemaManager.get_migrations_path()).iterdir():
        key = migration_key(path.name)
        if key is not None:
            out.append(QueueMigration(key, path.name, path.read_text(encoding="utf-8")))
    return sorted(out, key=lambda m: m.key)


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """What :func:`ensure_queue_schema` did: installed fresh, or the migrations it applied."""

    installed: bool
    applied: tuple[str, ...]
    version: str


async def ensure_queue_schema(url: str) -> SchemaChange:
    """Install procrastinate's schema, or apply its pending migrations; record the version reached.

    A database whose queue predates ``queue_schema`` (installed by an older mdw) is recorded at the
    installed procrastinate's latest migration: older mdw installed ``schema.sql`` of the
    procrastinate it ran, and mdw pins a procrastinate major version.

    Raises:
        StoreError: the database refused the DDL.
    """
    from procrastinate.schema import SchemaManager

    steps = queue_migrations()
    latest = steps[-1].name if steps else ""
    conn = None
    try:
        async with pg_errors("queue schema"):
            conn = await asyncpg.connect(dsn(url), timeout=10)
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", DDL_LOCK_KEY)
                present = await conn.fetchval("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
                recorded = await conn.fetchval(
                    "SELECT version FROM queue_schema WHERE component = $1", COMPONENT)
                if not present:
                    await conn.execute(SchemaManager.get_schema())
                    await _record(conn, latest)
                    return SchemaChange(True, (), latest)
                if recorded is None:
                    await _record(conn, latest)
                    return SchemaChange(False, (), latest)
                done = migration_key(str(recorded))
                todo = [m for m in steps if done is None or m.key > done]
                for step in todo:
                    await conn.execute(step.sql)
                if todo:
                    await _record(conn, todo[-1].name)
                reached = todo[-1].name if todo else str(recorded)
                return SchemaChange(False, tuple(m.name for m in todo), reached)
    finally:
        if conn is not None:
            await conn.close()


async def _record(conn: asyncpg.Connection, version: str) -> None:
    await conn.execute(
        "INSERT INTO queue_schema (component, version) VALUES ($1, $2) ON CONFLICT (component)"
        " DO UPDATE SET version = EXCLUDED.version, applied_at = now()", COMPONENT, version)


async def queue_ready(url: str) -> bool:
    """Whether the queue's schema is installed (a worker has started here at least once).

    Raises:
        StoreError: the server is unreachable.
    """
    conn = None
    try:
        async with pg_errors("queue check"):
            conn = await asyncpg.connect(dsn(url), timeout=10)
            return bool(await conn.fetchval(
                "SELECT to_regclass('procrastinate_jobs') IS NOT NULL"
                " AND to_regclass('queue_schema') IS NOT NULL"))
    finally:
        if conn is not None:
            await conn.close()
