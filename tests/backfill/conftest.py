"""Fixtures: an empty store URL on SQLite and on PostgreSQL (a schema per test), and helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from mdw.store import Store, open_store


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh schema in the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mdw.db'}"
    return str(request.getfixturevalue("pg_schema"))


@pytest_asyncio.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """The opened (migrated) store at ``store_url``."""
    opened = await open_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()
