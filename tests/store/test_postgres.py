"""PostgreSQL quirks: yearly partitions created on demand, race-safe writers, error mapping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from mdw.errors import ConfigError
from mdw.store import WriteResult, open_store

from .helpers import D1, M1, make_batch, write

pytestmark = pytest.mark.postgres


def _ms(year: int, month: int = 1, day: int = 1) -> int:
    return int(datetime(year, month, day, 5, tzinfo=UTC).timestamp() * 1000)


async def _partitions(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'bars'::regclass ORDER BY 1"
        )
    finally:
        await conn.close()
    return [r[0] for r in rows]


@pytest.fixture
def pg_url(pg_schema: str) -> str:
    """An empty schema of its own in the session database."""
    return pg_schema


async def test_postgres_partitions_are_created_on_demand(pg_url: str) -> None:
    """Only the years written get a partition; rows land and read back across them."""
    async with await open_store(pg_url) as store:
        assert await _partitions(pg_url) == []
        old, new = (
            make_batch("IBM", n=3, t0=_ms(2015, 6), tf=D1),
            make_batch("IBM", n=3, t0=_ms(2031, 12, 30), tf=D1),
        )
        await store.write_bars([write(old), write(new, None)])
        await store.write_bars([write(make_batch("IBM", n=2, t0=_ms(2015, 9), tf=D1))])
        assert await _partitions(pg_url) == ["bars_y2015", "bars_y2031", "bars_y2032"]
        assert len(await store.bars("IBM", D1, 0, 2**62)) == 8


async def test_postgres_concurrent_writers_create_one_partition_safely(pg_url: str) -> None:
    """Two stores (two processes' worth of pools) racing into a new year both succeed."""
    first, second = await open_store(pg_url), await open_store(pg_url)
    try:
        results = await asyncio.gather(
            *(
                s.write_bars([write(make_batch(tk, n=500, t0=_ms(2027, 3)))])
                for s, tk in ((first, "AAA"), (second, "BBB"))
            )
        )
        assert results == [WriteResult(inserted=500), WriteResult(inserted=500)]
        assert await _partitions(pg_url) == ["bars_y2027"]
    finally:
        await first.close()
        await second.close()


async def test_postgres_concurrent_writes_of_one_series_neither_fail_nor_duplicate(pg_url: str) -> None:
    """Writers of the same empty range serialise on the series: one inserts, the other finds it all."""
    batch = make_batch(n=2_000, t0=_ms(2026, 4))
    first, second = await open_store(pg_url), await open_store(pg_url)
    try:
        results = await asyncio.gather(first.write_bars([write(batch)]), second.write_bars([write(batch)]))
        assert sorted(r.inserted for r in results) == [0, 2_000]
        assert sorted(r.unchanged for r in results) == [0, 2_000]
        assert (await first.bars("AAPL", M1, 0, 2**62)).equals(batch)
    finally:
        await first.close()
        await second.close()


async def test_postgres_unreachable_server_is_a_configuration_error() -> None:
    """A refused connection is a ConfigError at open (a wrong URL is the user's to fix: exit 2 on the
    CLI, #23 item 6), naming the server, not a driver exception."""
    with pytest.raises(ConfigError, match="cannot reach the server"):
        await open_store("postgresql://postgres@127.0.0.1:1/nothing")
