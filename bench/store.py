"""Store benchmark: the write and read paths against the raw driver, measured side by side in one run.

1. PostgreSQL fresh insert of ``--rows`` bars through ``write_bars`` (50k-bar writes, as the engine
   sends them) against raw ``copy_records_to_table`` of the same rows into an equivalent plain
   table with the same primary key. Target: ratio (raw time / mdw time) >= 0.8.
2. Re-upsert of identical data (the ledger says covered: staging + ON CONFLICT ... IS DISTINCT
   FROM): rows/s and its ratio to the fresh insert.
3. SQLite fresh insert: rows/s (target >= 200k rows/s), and its re-upsert.
4. Read of one year of 1-minute bars of one ticker through ``bars()`` against a raw driver SELECT
   of the same rows (asyncpg ``fetch`` / sqlite3 ``fetchall``). Target: <= 1.5x its time.
5. Peak RSS growth while ``iter_bars`` streams ten years of minute bars (stock hours), next to the
   size those bars would take if loaded at once: it must stay flat.

Run: ``.venv/bin/python bench/store.py [--rows 1051200] [--years 10]``; writes
``bench/results/store.json``. Takes about a minute and a half on two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import psutil

from mdw.domain import NEW_YORK, BarBatch, RangeSet, Timeframe, local_midnight_ms
from mdw.store import BarWrite, Store, open_store

M1 = Timeframe.parse("1m")
MIN = 60_000
PAGE = 50_000
START = 1_672_531_200_000  # 2023-01-01 UTC
Pages = list[list[tuple[Any, ...]]]
RESULTS = Path(__file__).parent / "results" / "store.json"
PG_ADMIN = os.environ.get("MDW_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
SELECT = (
    "SELECT t, o, h, l, c, v, vw, n FROM bars WHERE ticker = {} AND timeframe = {} AND t >= {} AND t < {}"
)


def synth(ticker: str, t: np.ndarray[Any, Any], seed: int) -> BarBatch:
    """Random-walk bars at the given window starts (fractional volume, every 97th bar without)."""
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.0005, len(t))))
    o = np.concatenate([[100.0], c[:-1]])
    h = np.maximum(o, c) * (1 + rng.uniform(0, 0.0005, len(t)))
    low = np.minimum(o, c) * (1 - rng.uniform(0, 0.0005, len(t)))
    v = rng.uniform(1, 1e5, len(t))
    vw = (h + low) / 2
    n = rng.integers(1, 5000, len(t))
    v[::97] = np.nan
    vw[::97] = np.nan
    n[::97] = 0
    return BarBatch(ticker, M1, t.astype(np.int64), o, h, low, c, v, vw, n)


def dataset(rows: int) -> list[BarBatch]:
    """Two tickers of continuous (24/7) minute bars: ``rows // 2`` each (525,600 = one year)."""
    per = rows // 2
    t = START + np.arange(per, dtype=np.int64) * MIN
    return [synth("X:BTCUSD", t, 1), synth("X:ETHUSD", t, 2)]


def writes(batches: list[BarBatch]) -> list[list[BarWrite]]:
    """The engine's unit of work: one page of at most 50k bars with the range it covers."""
    out = []
    for b in batches:
        for i in range(0, len(b), PAGE):
            page = b.take(slice(i, i + PAGE))
            out.append([BarWrite(page, RangeSet.of([(int(page.t[0]), int(page.t[-1]) + MIN)]))])
    return out


def driver_pages(batches: list[BarBatch]) -> list[list[tuple[Any, ...]]]:
    """The rows as plain driver tuples, 50k per page: what the raw baselines write."""
    return [
        [(b.ticker, "1m", *row, b.source) for row in b.take(slice(i, i + PAGE)).rows()]
        for b in batches
        for i in range(0, len(b), PAGE)
    ]


def stock_minutes(years: int) -> np.ndarray[Any, Any]:
    """Window starts of extended-hours (04:00-20:00 ET) minutes on weekdays, ``years`` years."""
    days = [date(2014, 1, 1) + timedelta(days=i) for i in range(365 * years)]
    day_starts = [local_midnight_ms(d, NEW_YORK) + 4 * 3_600_000 for d in days if d.weekday() < 5]
    return (np.array(day_starts, dtype=np.int64)[:, None] + np.arange(960, dtype=np.int64) * MIN).ravel()


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


# -- PostgreSQL ---------------------------------------------------------------------------------


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def bench_postgres(batches: list[BarBatch], records: Pages, rounds: int) -> dict[str, Any]:
    name = f"mdw_bench_{uuid.uuid4().hex[:8]}"
    await _admin(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        return await _postgres(url, batches, records, rounds)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _postgres(url: str, batches: list[BarBatch], records: Pages, rounds: int) -> dict[str, Any]:
    total = sum(len(b) for b in batches)
    units = writes(batches)
    raw = await asyncpg.connect(url)
    store = await open_store(url)
    try:
        # The same columns, defaults, constraints and primary key, as one plain (unpartitioned) table.
        await raw.execute("CREATE TABLE raw_bars (LIKE bars INCLUDING ALL)")
        cols = ["ticker", "timeframe", "t", "o", "h", "l", "c", "v", "vw", "n", "source"]
        raw_times, mdw_times, upsert_times = [], [], []
        for _ in range(rounds):
            await raw.execute("TRUNCATE raw_bars")
            await raw.execute("CHECKPOINT")

            async def raw_copy() -> None:
                for recs in records:
                    await raw.copy_records_to_table("raw_bars", records=recs, columns=cols)

            raw_times.append(await timed(raw_copy))
            await raw.execute("TRUNCATE bars")
            await raw.execute("TRUNCATE coverage")
            await raw.execute("CHECKPOINT")

            async def mdw_write() -> None:
                for unit in units:
                    await store.write_bars(unit)

            mdw_times.append(await timed(mdw_write))
            upsert_times.append(await timed(mdw_write))
        read = await _pg_read(raw, store, batches[0])
    finally:
        await store.close()
        await raw.close()
    fresh, raw_best, upsert = min(mdw_times), min(raw_times), min(upsert_times)
    return {
        "rows": total,
        "raw_copy_rows_per_s": total / raw_best,
        "mdw_fresh_rows_per_s": total / fresh,
        "fresh_vs_raw_copy": raw_best / fresh,
        "reupsert_identical_rows_per_s": total / upsert,
        "reupsert_vs_fresh": fresh / upsert,
        "read": read,
    }


async def _pg_read(raw: Any, store: Store, year: BarBatch) -> dict[str, Any]:
    lo, hi = int(year.t[0]), int(year.t[-1]) + MIN
    sql = SELECT.format("$1", "$2", "$3", "$4") + " ORDER BY t"
    raw_t = min([await timed(lambda: raw.fetch(sql, year.ticker, "1m", lo, hi)) for _ in range(5)])
    ours = min([await timed(lambda: store.bars(year.ticker, M1, lo, hi)) for _ in range(5)])
    arrow = min([await timed(lambda: store.bars_arrow(year.ticker, M1, lo, hi)) for _ in range(5)])
    got = await store.bars(year.ticker, M1, lo, hi)
    assert got.equals(year), "postgres read back differs from what was written"
    return {
        "rows": len(year),
        "raw_fetch_s": raw_t,
        "mdw_bars_s": ours,
        "mdw_bars_arrow_s": arrow,
        "time_vs_raw": ours / raw_t,
    }


# -- SQLite -------------------------------------------------------------------------------------


async def bench_sqlite(batches: list[BarBatch], pages: Pages, tmp: Path) -> dict[str, Any]:
    total = sum(len(b) for b in batches)
    units = writes(batches)
    path = tmp / "bench.db"
    async with await open_store(f"sqlite:///{path}") as store:

        async def mdw_write() -> None:
            for unit in units:
                await store.write_bars(unit)

        fresh = await timed(mdw_write)
        upsert = await timed(mdw_write)
        raw_insert = _sqlite_raw_insert(tmp / "raw.db", pages)
        year = batches[0]
        lo, hi = int(year.t[0]), int(year.t[-1]) + MIN
        conn = sqlite3.connect(path)
        sql = SELECT.format("?", "?", "?", "?") + " ORDER BY t"
        raw_t = min(
            _sync_timed(lambda: conn.execute(sql, (year.ticker, "1m", lo, hi)).fetchall()) for _ in range(5)
        )
        conn.close()
        ours = min([await timed(lambda: store.bars(year.ticker, M1, lo, hi)) for _ in range(5)])
        got = await store.bars(year.ticker, M1, lo, hi)
        assert got.equals(year), "sqlite read back differs from what was written"
    return {
        "rows": total,
        "fresh_rows_per_s": total / fresh,
        "raw_executemany_rows_per_s": total / raw_insert,
        "fresh_vs_raw_executemany": raw_insert / fresh,
        "reupsert_identical_rows_per_s": total / upsert,
        "read": {"rows": len(year), "raw_fetchall_s": raw_t, "mdw_bars_s": ours, "time_vs_raw": ours / raw_t},
    }


def _sqlite_raw_insert(path: Path, pages: Pages) -> float:
    """Plain executemany of the same rows, 50k per transaction, into an equivalent table."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE bars (ticker TEXT NOT NULL, timeframe TEXT NOT NULL, t INTEGER NOT NULL,"
        " o REAL NOT NULL, h REAL NOT NULL, l REAL NOT NULL, c REAL NOT NULL, v REAL, vw REAL,"
        " n INTEGER NOT NULL, source TEXT NOT NULL, PRIMARY KEY (ticker, timeframe, t)) WITHOUT ROWID"
    )
    start = time.perf_counter()
    for rows in pages:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO bars VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def _sync_timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- memory -------------------------------------------------------------------------------------


async def bench_memory(url: str, years: int) -> dict[str, Any]:
    """Load ``years`` of stock minute bars, then stream them back sampling RSS at every chunk."""
    t = stock_minutes(years)
    batch = synth("SPY", t, 3)
    proc = psutil.Process()
    async with await open_store(url) as store:
        for i in range(0, len(batch), 200_000):
            page = batch.take(slice(i, i + 200_000))
            await store.write_bars([BarWrite(page, RangeSet.of([(int(page.t[0]), int(page.t[-1]) + MIN)]))])
        del batch, page
        base = proc.memory_info().rss
        samples: list[int] = []
        rows = 0
        async for chunk in store.iter_bars("SPY", M1, 0, 2**62, chunk=50_000):
            rows += len(chunk)
            samples.append(proc.memory_info().rss)
    # Flat means: once the first half has warmed up the page cache and the allocator's arenas,
    # the second half adds nothing, however many more chunks follow.
    half = len(samples) // 2
    return {
        "rows": rows,
        "chunks": len(samples),
        "rss_before_mb": base / 2**20,
        "rss_peak_growth_mb": max(0, max(samples) - base) / 2**20,
        "rss_growth_second_half_mb": max(0, max(samples[half:]) - max(samples[:half])) / 2**20,
        "all_rows_as_columns_mb": rows * 64 / 2**20,
    }


def sqlite_line(r: dict[str, Any]) -> str:
    k = 1e3
    read = r["read"]
    return (
        f"sqlite   fresh insert {r['fresh_rows_per_s'] / k:,.0f}k rows/s (target >= 200k; raw executemany "
        f"{r['raw_executemany_rows_per_s'] / k:,.0f}k, ratio {r['fresh_vs_raw_executemany']:.2f}x) | "
        f"identical re-upsert {r['reupsert_identical_rows_per_s'] / k:,.0f}k rows/s | read one ticker's "
        f"{read['rows']:,} 1m bars {read['mdw_bars_s'] * k:.0f} ms = {read['time_vs_raw']:.2f}x raw fetchall "
        "(target <= 1.5x)"
    )


def postgres_line(r: dict[str, Any]) -> str:
    k = 1e3
    read = r["read"]
    return (
        f"postgres fresh insert {r['mdw_fresh_rows_per_s'] / k:,.0f}k rows/s vs raw COPY "
        f"{r['raw_copy_rows_per_s'] / k:,.0f}k rows/s = {r['fresh_vs_raw_copy']:.2f}x (target >= 0.8x) | "
        f"identical re-upsert {r['reupsert_identical_rows_per_s'] / k:,.0f}k rows/s = "
        f"{r['reupsert_vs_fresh']:.2f}x fresh | read {read['rows']:,} bars {read['mdw_bars_s'] * k:.0f} ms "
        f"(arrow {read['mdw_bars_arrow_s'] * k:.0f} ms) = {read['time_vs_raw']:.2f}x raw fetch "
        "(target <= 1.5x)"
    )


def memory_line(r: dict[str, Any], years: int) -> str:
    return (
        f"memory   streaming {r['rows']:,} minute bars ({years}y) in {r['chunks']} chunks: peak RSS growth "
        f"{r['rss_peak_growth_mb']:.0f} MB, {r['rss_growth_second_half_mb']:.0f} MB of it in the second half "
        f"(flat); the same bars loaded at once take {r['all_rows_as_columns_mb']:.0f} MB as columns"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_051_200, help="bars written (two tickers, half each)")
    parser.add_argument("--years", type=int, default=10, help="years of minute bars streamed for memory")
    parser.add_argument("--rounds", type=int, default=2, help="PostgreSQL write rounds (best is kept)")
    args = parser.parse_args()
    batches = dataset(args.rows)
    pages = driver_pages(batches)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = await bench_sqlite(batches, pages, Path(tmp))
        print(sqlite_line(sqlite), flush=True)
        postgres = await bench_postgres(batches, pages, args.rounds)
        print(postgres_line(postgres), flush=True)
        del pages, batches  # the memory part measures streaming, not these
        memory = await bench_memory(f"sqlite:///{Path(tmp) / 'memory.db'}", args.years)
        print(memory_line(memory, args.years), flush=True)
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "sqlite": sqlite,
        "postgres": postgres,
        "memory": memory,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp_file = RESULTS.with_suffix(".json.tmp")
    tmp_file.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp_file.replace(RESULTS)


if __name__ == "__main__":
    asyncio.run(main())
