"""Shared pieces of the reliability suite: stores on SQLite and PostgreSQL, exactness checks, the CLI.

Every check here reads the database back and compares it with the simulator's ground truth
(``sim.market.aggregates``); nothing is mocked.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from mdw.backfill import BackfillSpec
from mdw.domain import parse_tickers, parse_timeframes
from mdw.simulator import SimServer
from mdw.store import Dataset, Store, open_store

MDW = str(Path(sys.executable).with_name("mdw"))


def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh schema in the session's PostgreSQL database."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'mdw.db'}"
    return str(request.getfixturevalue("pg_schema"))


@pytest.fixture
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on the test's ``backend`` parameter (resolved before the event loop runs)."""
    return db_url(str(request.node.callspec.params["backend"]), request, tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend."""
    return db_url(str(request.param), request, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mdw.db'}"


@pytest_asyncio.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await open_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()


def spec_of(symbols: str, timeframes: str, start: str, end: str, **kw: Any) -> BackfillSpec:
    return BackfillSpec(tuple(parse_tickers(symbols)), tuple(parse_timeframes(timeframes)),
                        date.fromisoformat(start), date.fromisoformat(end), **kw)


async def raw_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run SQL straight against the database behind ``url`` (not through the Store)."""
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[1]

        def query() -> list[tuple[Any, ...]]:
            with sqlite3.connect(path) as conn:
                return list(conn.execute(sql).fetchall())

        return await asyncio.to_thread(query)
    base, _, query_string = url.partition("?")
    schema = query_string.split("search_path=", 1)[1] if "search_path=" in query_string else "public"
    import asyncpg

    conn = await asyncpg.connect(base, timeout=10, server_settings={"search_path": schema})
    try:
        rows = [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()
    return rows


async def duplicate_bars(url: str) -> int:
    """Rows sharing (ticker, timeframe, t) with another row, counted in SQL (DuckDB for the lake)."""
    if url.startswith("iceberg+sqlite:///"):
        return await asyncio.to_thread(_lake_duplicates, url)
    rows = await raw_rows(url, "SELECT count(*) FROM (SELECT ticker, timeframe, t FROM bars "
                               "GROUP BY ticker, timeframe, t HAVING count(*) > 1) AS d")
    return int(rows[0][0])


def _lake_duplicates(url: str) -> int:
    """Duplicates across every data file of the columnar store's current snapshot."""
    import duckdb
    from pyiceberg.catalog.sql import SqlCatalog

    path = url.removeprefix("iceberg+sqlite:///").split("?", 1)[0]
    catalog = SqlCatalog("mdw", uri=f"sqlite:///{path}")
    try:
        tasks = catalog.load_table("mdw.bars").scan().plan_files()
        files = [t.file.file_path.removeprefix("file://") for t in tasks]
    finally:
        catalog.engine.dispose()
    if not files:
        return 0
    got = duckdb.sql(f"SELECT count(*) FROM (SELECT ticker, timeframe, t FROM read_parquet({files!r})"
                     " GROUP BY ALL HAVING count(*) > 1)").fetchall()
    return int(got[0][0])


async def total_bars(url: str) -> int:
    return int((await raw_rows(url, "SELECT count(*) FROM bars"))[0][0])


async def assert_exact(store: Store, sim: SimServer, spec: BackfillSpec) -> int:
    """Every series of ``spec`` holds exactly the simulator's bars and is covered; returns the count."""
    total = 0
    for tk in spec.tickers:
        rng = spec.wanted(tk.asset_class)
        for tf in spec.timeframes:
            truth = sim.market.aggregates(tk.symbol, tf, rng.start_ms, rng.end_ms)
            got = await store.bars(tk.symbol, tf, rng.start_ms, rng.end_ms)
            assert got.equals(truth), f"{tk} {tf}: {len(got)} stored, {len(truth)} served"
            cov = await store.coverage(tk.symbol, Dataset.BARS, str(tf))
            assert cov.clip(rng).total_ms == rng.end_ms - rng.start_ms, f"{tk} {tf} not fully covered"
            total += len(truth)
    return total


async def assert_stored_subset_exact(store: Store, sim: SimServer, spec: BackfillSpec) -> None:
    """Whatever is stored equals the vendor's bar at the same time, and covered ranges are complete."""
    for tk in spec.tickers:
        rng = spec.wanted(tk.asset_class)
        for tf in spec.timeframes:
            truth = sim.market.aggregates(tk.symbol, tf, rng.start_ms, rng.end_ms)
            got = await store.bars(tk.symbol, tf, rng.start_ms, rng.end_ms)
            index = {int(t): i for i, t in enumerate(truth.t.tolist())}
            for j, t in enumerate(got.t.tolist()):
                i = index.get(int(t))
                assert i is not None, f"{tk} {tf}: stored bar at {t} the vendor never served"
                for col in ("o", "h", "l", "c", "n"):
                    assert getattr(got, col)[j] == getattr(truth, col)[i], f"{tk} {tf} {t} {col}"
            for covered in await store.coverage(tk.symbol, Dataset.BARS, str(tf)):
                held = await store.bars(tk.symbol, tf, covered.start_ms, covered.end_ms)
                assert held.equals(sim.market.aggregates(tk.symbol, tf, covered.start_ms, covered.end_ms))


def cli_env(sim_url: str | None, key: str | None, db_url: str, **extra: str) -> dict[str, str]:
    """The environment for ``mdw`` subprocesses: no inherited MDW_/POLYGON_ settings, JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MDW_", "POLYGON_"))}
    env.update({"MDW_DATABASE_URL": db_url, "MDW_RATE_LIMIT": "unlimited", "MDW_LOG_FORMAT": "json"})
    if sim_url is not None:
        env["POLYGON_BASE_URL"] = sim_url
    if key is not None:
        env["POLYGON_API_KEY"] = key
    env.update(extra)
    return env


async def run_mdw(*args: str, env: dict[str, str], cwd: str | None = None,
                  limit_s: float = 120.0) -> tuple[int, str, str]:
    """Run ``mdw ARGS`` to completion (asyncio subprocess: an in-process simulator keeps serving)."""
    proc = await asyncio.create_subprocess_exec(MDW, *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    return (proc.returncode if proc.returncode is not None else -1), out.decode(), err.decode()
