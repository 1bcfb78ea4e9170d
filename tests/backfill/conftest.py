"""Fixtures: an empty store URL on SQLite and on PostgreSQL (a schema per test), and helpers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from mdw.store import Store, open_store


async def _pg(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_schema_url(database_url: str) -> str:
    """A new, empty schema in ``database_url``; the returned URL makes it the search path."""
    schema = f"bf_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg(database_url, f'CREATE SCHEMA "{schema}"'))
    return f"{database_url}?search_path={schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh schema in the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mdw.db'}"
    return pg_schema_url(request.getfixturevalue("pg_database"))


@pytest_asyncio.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """The opened (migrated) store at ``store_url``."""
    opened = await open_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()
