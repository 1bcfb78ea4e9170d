"""Reading the columnar store without mdw: the DuckDB and Polars recipes of docs/columnar.md."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from mdw.domain import BarBatch, RangeSet, Timeframe
from mdw.store import BarWrite, open_store

T0 = 1_704_067_200_000  # 2024-01-01 UTC
MIN = 60_000


def _batch(ticker: str, tf: str, n: int, seed: int) -> BarBatch:
    rng = np.random.default_rng(seed)
    step = Timeframe.parse(tf).fixed_ms or MIN
    t = T0 + np.arange(n, dtype=np.int64) * step
    c = 100 + np.round(np.cumsum(rng.normal(0, 0.1, n)), 4)
    v = rng.integers(1, 10_000, n).astype(np.float64)
    v[::11] = np.nan
    return BarBatch(ticker, Timeframe.parse(tf), t, c, c + 0.5, c - 0.5, c, v, v / 7, rng.integers(1, 99, n))


async def _fill(url: str) -> None:
    async with await open_store(url) as store:
        for i, (tk, tf, n) in enumerate([("AAPL", "1m", 3000), ("MSFT", "1m", 2000), ("AAPL", "1h", 500)]):
            b = _batch(tk, tf, n, i)
            await store.write_bars([BarWrite(b, RangeSet.of([(int(b.t[0]), int(b.t[-1]) + 1)]))])
        # A correction, so the table has a copy-on-write rewrite the recipe must read right.
        fixed = _batch("AAPL", "1m", 3000, 0).take(slice(100, 200))
        fixed = BarBatch.from_columns("AAPL", Timeframe.parse("1m"), {**fixed.columns(), "c": fixed.c + 0.25})
        await store.write_bars([BarWrite(fixed, RangeSet())])


def _recipe(db: Path, ticker: str, timeframe: str, start_ms: int, end_ms: int) -> list[dict[str, object]]:
    """The DuckDB recipe, verbatim from docs/columnar.md: pyiceberg lists the files, DuckDB reads them."""
    import duckdb
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("mdw", uri=f"sqlite:///{db}")
    table = catalog.load_table("mdw.bars")
    tasks = list(table.scan(row_filter=f"timeframe = '{timeframe}'").plan_files())
    assert all(not task.delete_files for task in tasks)  # mdw writes copy-on-write only
    files = [task.file.file_path.removeprefix("file://") for task in tasks]
    rows = duckdb.sql(
        f"SELECT t, o, h, l, c, v, vw, n FROM read_parquet({files!r})"
        f" WHERE ticker = '{ticker}' AND timeframe = '{timeframe}' AND t >= {start_ms} AND t < {end_ms}"
        " ORDER BY t"
    ).fetchall()
    catalog.engine.dispose()
    return [dict(zip(("t", "o", "h", "l", "c", "v", "vw", "n"), r, strict=True)) for r in rows]


async def test_duckdb_recipe_reads_the_table_offline_equal_to_mdw_export(tmp_path: Path) -> None:
    """DuckDB, given only the catalog database and the files, returns what ``mdw export`` writes.

    Export's days are the market's (New York for stocks): the day before T0 covers T0's first hours."""
    db = tmp_path / "mdw.db"
    url = f"iceberg+sqlite:///{db}?warehouse={tmp_path / 'lake'}"
    await _fill(url)
    out = tmp_path / "aapl.parquet"
    mdw = str(Path(sys.executable).parent / "mdw")
    args = ["export", "--database-url", url, "--symbols", "AAPL", "--timeframe", "1m", "--start",
            "2023-12-31", "--end", "2024-01-03", "--format", "parquet", "--names", "vendor",
            "-o", str(out)]
    env = {**os.environ, "MDW_LOG_LEVEL": "WARNING"}
    done = await asyncio.to_thread(subprocess.run, [mdw, *args], capture_output=True, text=True, env=env,
                                   timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    exported = pq.read_table(out).to_pylist()
    got = _recipe(db, "AAPL", "1m", T0, T0 + 3 * 86_400_000)
    assert len(got) == 3000 and len(exported) == 3000
    keys = ("t", "o", "h", "l", "c", "v", "vw", "n")
    assert [[r[k] for k in keys] for r in got] == [[_ms(r["t"]), *(r[k] for k in keys[1:])] for r in exported]
    assert got[150]["c"] == _batch("AAPL", "1m", 3000, 0).c[150] + 0.25  # the correction, not the original


def _ms(value: object) -> int:
    """``mdw export`` writes t as a timestamp; the table keeps epoch ms."""
    if isinstance(value, int):
        return value
    return int(value.timestamp() * 1000)  # type: ignore[attr-defined]


async def test_polars_scan_iceberg_reads_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polars' ``scan_iceberg`` over the catalog gives the rows the store's own reads give."""
    import polars as pl

    monkeypatch.setenv("POLARS_ICEBERG_PLANNER", "pyiceberg")  # planning through pyiceberg, as documented
    from pyiceberg.catalog.sql import SqlCatalog

    db = tmp_path / "mdw.db"
    url = f"iceberg+sqlite:///{db}?warehouse={tmp_path / 'lake'}"
    await _fill(url)
    catalog = SqlCatalog("mdw", uri=f"sqlite:///{db}")
    frame = (
        pl.scan_iceberg(catalog.load_table("mdw.bars"))
        .filter((pl.col("ticker") == "MSFT") & (pl.col("timeframe") == "1m"))
        .sort("t")
        .collect()
    )
    catalog.engine.dispose()
    async with await open_store(url) as store:
        mine = await store.bars("MSFT", Timeframe.parse("1m"), 0, 2**62)
    assert frame["t"].to_list() == mine.t.tolist()
    assert frame["c"].to_list() == mine.c.tolist()
    assert frame["v"].null_count() == int(np.isnan(mine.v).sum())
