"""Migrations: applied automatically to an empty database, once, and refused when newer."""

from __future__ import annotations

import asyncio

import pytest

from mdw.errors import SchemaVersionError
from mdw.store import Store, open_store

from ..conftest import Backend
from ..helpers import M1, make_batch, write


async def test_open_store_migrates_an_empty_database(backend: Backend) -> None:
    """Opening an empty database creates the schema at the code's version, ready for writes."""
    async with await open_store(backend.url) as store:
        db, code = await store.ping()
        assert (db, code) == (code, code)
        assert (await store.write_bars([write(make_batch(n=3))])).inserted == 3


async def test_open_store_twice_keeps_the_data_and_the_version(backend: Backend) -> None:
    """Re-opening applies nothing new and finds what was written."""
    async with await open_store(backend.url) as store:
        await store.write_bars([write(make_batch(n=4))])
        version = await store.ping()
    async with await open_store(backend.url) as again:
        assert await again.ping() == version
        assert len(await again.bars("AAPL", M1, 0, 2**62)) == 4


async def test_open_store_concurrent_first_opens_migrate_once(backend: Backend) -> None:
    """Two processes' worth of first opens race on an empty database; both succeed."""
    stores: list[Store] = list(await asyncio.gather(open_store(backend.url), open_store(backend.url)))
    try:
        versions = [await s.ping() for s in stores]
        assert versions[0] == versions[1] and versions[0][0] == versions[0][1]
    finally:
        for s in stores:
            await s.close()


async def test_open_store_refuses_a_database_from_a_newer_mdw(backend: Backend) -> None:
    """A schema version above the code's is refused with a message naming both versions."""
    async with await open_store(backend.url) as store:
        _, code = await store.ping()
    await backend.execute(
        f"INSERT INTO schema_version (version, name, applied_at_ms) VALUES ({code + 7}, 'future', 0)"
    )
    with pytest.raises(SchemaVersionError, match=rf"version {code + 7}.*\({code}\)"):
        await open_store(backend.url)
