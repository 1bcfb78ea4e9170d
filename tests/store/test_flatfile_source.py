"""The 'flatfile' bar source: accepted by both backends, and added to databases of an older mdw."""

from __future__ import annotations

import pytest

from mdw.store import open_store
from mdw.store.migrate import migrations

from .conftest import Backend
from .helpers import M1, T0, make_batch, write


async def test_store_accepts_flatfile_bars_and_counts_a_source_change_as_an_update(backend: Backend) -> None:
    """Bars written with source 'flatfile' read back; the same values from REST later count as updated."""
    async with await open_store(backend.url) as store:
        assert (await store.write_bars([write(make_batch(n=5, source="flatfile"))])).inserted == 5
        stored = await store.bars("AAPL", M1, 0, 2**62)
        assert len(stored) == 5
        again = await store.write_bars([write(make_batch(n=5, source="rest"))])
        assert again.updated == 5


async def _old_schema(backend: Backend, upto: int) -> None:
    """The schema an mdw from before the 'flatfile' source created, with one stored bar."""
    dialect = "sqlite" if backend.name == "sqlite" else "postgres"
    steps = [m for m in migrations(dialect) if m.version <= upto]
    sql = ["CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
           " applied_at_ms BIGINT NOT NULL);"]
    for m in steps:
        sql.append(m.sql)
        sql.append(f"INSERT INTO schema_version VALUES ({m.version}, '{m.name}', 0);")
    if dialect == "postgres":
        sql.append("CREATE TABLE bars_y2024 PARTITION OF bars"
                   " FOR VALUES FROM (1704067200000) TO (1735689600000);")
    sql.append(f"INSERT INTO bars (ticker, timeframe, t, o, h, l, c, v, vw, n, source) VALUES "
               f"('KO', '1m', {T0}, 60, 61, 59, 60.5, 100, 60.2, 3, 'grouped');")
    await backend.execute("\n".join(sql))


@pytest.mark.parametrize("upto", [{"sqlite": 2, "postgres": 3}])
async def test_store_upgrade_keeps_old_bars_and_then_accepts_flatfile(
    backend: Backend, upto: dict[str, int],
) -> None:
    """A database migrated by the previous mdw keeps its bars and takes 'flatfile' bars after opening."""
    if backend.name not in upto:
        pytest.skip("the columnar store is new: no earlier schema held its bars")
    await _old_schema(backend, upto[backend.name])
    async with await open_store(backend.url) as store:
        version = await store.ping()
        assert version.database == version.code
        old = await store.bars("KO", M1, 0, 2**62)
        assert old.t.tolist() == [T0] and old.n.tolist() == [3] and old.vw.tolist() == [60.2]
        assert (await store.write_bars([write(make_batch("KO", n=2, t0=T0 + 60_000, source="flatfile"))])
                ).inserted == 2
