"""Fixtures: an empty store on SQLite and on PostgreSQL (a schema per test), and stream helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from mdw.store import Store, open_store

WAIT_S = 60.0  # only bounds a broken test; nothing asserts on wall time


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


async def until(check: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Wait for ``check()`` (polled); fail naming ``what`` after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
