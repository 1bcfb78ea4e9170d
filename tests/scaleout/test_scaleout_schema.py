"""The queue's schema: procrastinate's installed once and upgraded through its own migrations."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from mdw.store import open_store
from mdw.store.pgqueue import COMPONENT, ensure_queue_schema, queue_migrations

pytestmark = pytest.mark.postgres


async def _migrated(url: str) -> None:
    store = await open_store(url)
    await store.close()


async def _fetch(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_queue_schema_installs_once_when_workers_start_together(fresh_pg_url: str) -> None:
    """Five concurrent preparations: exactly one installs, all agree on the version recorded."""
    await _migrated(fresh_pg_url)
    changes = await asyncio.gather(*(ensure_queue_schema(fresh_pg_url) for _ in range(5)))
    assert sum(c.installed for c in changes) == 1
    assert all(c.applied == () for c in changes)
    latest = queue_migrations()[-1].name
    assert {c.version for c in changes} == {latest}
    rows = await _fetch(fresh_pg_url, "SELECT version FROM queue_schema WHERE component = $1", COMPONENT)
    assert [r["version"] for r in rows] == [latest]
    tables = await _fetch(fresh_pg_url,
                          "SELECT count(*) AS n FROM pg_class WHERE relname = 'procrastinate_jobs'")
    assert tables[0]["n"] == 1


async def test_queue_schema_applies_pending_migrations_once_when_procrastinate_is_newer(
    fresh_pg_url: str,
) -> None:
    """A database recorded one migration behind gets exactly procrastinate's next migration, once."""
    await _migrated(fresh_pg_url)
    await ensure_queue_schema(fresh_pg_url)
    steps = queue_migrations()
    # procrastinate's last migration re-creates a trigger and its function (DROP IF EXISTS first),
    # so it can be replayed on an installed schema: record the database as one step behind it.
    await _fetch(fresh_pg_url, "UPDATE queue_schema SET version = $1 WHERE component = $2", steps[-2].name,
                 COMPONENT)
    first = await ensure_queue_schema(fresh_pg_url)
    assert first.applied == (steps[-1].name,) and first.version == steps[-1].name and not first.installed
    again = await ensure_queue_schema(fresh_pg_url)
    assert again.applied == () and again.version == steps[-1].name
