"""Columnar store benchmark (issue #19): the standard workload end to end into the Iceberg store,
against the raw fetch floor and beside SQLite and PostgreSQL, measured in one run.

1. A raw concurrent fetch of the standard workload's pages (decoded, nothing stored), then the
   same workload backfilled end to end (unlimited plan) into ``iceberg+sqlite``, SQLite and
   PostgreSQL, each against the same warmed simulator process: wall time / raw fetch time.
2. Bytes per bar on disk of each store after the run (the Iceberg warehouse plus its catalog
   database, before and after one housekeeping pass; the SQLite file), and the Iceberg reads
   again after housekeeping.
3. One series-year read (AAPL 5m, the whole year) and one market-day read (every 5m bar of the
   last day, all 25 tickers) through the Store API, median of 7.
4. Ingest from the engine's batches: the same bars re-written into a fresh Iceberg store in
   250,000-bar ``write_bars`` calls (the backfill writer's largest transaction), bars/s, beside
   the floor under any Parquet table: encoding the same bars with the same options in memory.

Run: ``.venv/bin/python bench/columnar.py [--pg postgresql://postgres@127.0.0.1:5432/postgres]``;
writes ``bench/results/columnar.json``. ``--tickers 5`` runs a smaller workload.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backfill import END, drop_pg, external_simulator, fresh_pg, raw_fetch
from common import write_result
from mdw.backfill import plan_only, run_backfill
from mdw.backfill.demo import standard_spec
from mdw.domain import RangeSet, Timeframe
from mdw.polygon import Pacing, PolygonClient
from mdw.store import BarWrite, Store, open_store

M5 = Timeframe.parse("5m")


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


async def median_ms(fn: Any, rounds: int = 7) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def reads(store: Store, spec: Any) -> dict[str, float]:
    aapl = next(t for t in spec.tickers if t.symbol == "AAPL")
    rng = spec.wanted(aapl.asset_class)
    day_end = rng.end_ms
    day_start = day_end - 86_400_000

    async def series_year() -> None:
        await store.bars("AAPL", M5, rng.start_ms, rng.end_ms)

    async def market_day() -> None:
        for tk in spec.tickers:
            await store.bars(tk.symbol, M5, day_start, day_end)

    return {"series_year_ms": await median_ms(series_year), "market_day_ms": await median_ms(market_day)}


async def backfill_into(url: str, base: str, key: str, spec: Any) -> tuple[Any, dict[str, float]]:
    store = await open_store(url)
    try:
        async with PolygonClient(key, base, pacing=Pacing("unlimited", max_in_flight=16)) as client:
            report = await run_backfill(store, client, spec, rate_limit="unlimited")
        figures = await reads(store, spec)
    finally:
        await store.close()
    return report, figures


async def ingest(source_url: str, spec: Any, tmp: Path) -> dict[str, float]:
    """Every stored bar re-written into a fresh Iceberg store in 250k-bar write_bars calls."""
    async with await open_store(source_url) as src:
        batches = []
        for tk in spec.tickers:
            rng = spec.wanted(tk.asset_class)
            for tf in spec.timeframes:
                b = await src.bars(tk.symbol, tf, rng.start_ms, rng.end_ms)
                if len(b):
                    batches.append(b)
    groups: list[list[BarWrite]] = [[]]
    rows = 0
    for b in batches:
        if rows + len(b) > 250_000 and groups[-1]:
            groups.append([])
            rows = 0
        groups[-1].append(BarWrite(b, RangeSet.of([(int(b.t[0]), int(b.t[-1]) + 1)])))
        rows += len(b)
    url = f"iceberg+sqlite:///{tmp / 'ingest.db'}?warehouse={tmp / 'ingest-lake'}&maintain_every=0"
    async with await open_store(url) as dst:
        start, cpu = time.perf_counter(), time.process_time()
        for group in groups:
            await dst.write_bars(group)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    total = sum(len(b) for b in batches)
    # The floor under any Parquet-based engine: encoding the same bars with the same options, in memory.
    import io

    import pyarrow.parquet as pq

    from mdw.store.lake import layout

    tables = [layout.write_table(b) for b in batches]
    start, encode_cpu = time.perf_counter(), time.process_time()
    for table in tables:
        pq.write_table(table, io.BytesIO(), row_group_size=layout.ROW_GROUP_ROWS, **layout.WRITER_OPTIONS)
    encode_s, encode_cpu = time.perf_counter() - start, time.process_time() - encode_cpu
    # CPU seconds (every thread of this process) beside wall seconds: on a shared host the wall
    # figure depends on the other load, the CPU figure much less.
    return {"bars": total, "commits": len(groups), "seconds": seconds, "bars_per_s": total / seconds,
            "cpu_s": cpu, "bars_per_cpu_s": total / cpu,
            "parquet_encode_bars_per_s": total / encode_s,
            "parquet_encode_bars_per_cpu_s": total / encode_cpu,
            "ingest_over_encode": encode_s / seconds}  # fmt: skip


async def main(pg: str, tickers: int) -> dict[str, Any]:
    spec = standard_spec(END, corporate_actions=False)
    spec = replace(spec, tickers=spec.tickers[:tickers])
    out: dict[str, Any] = {"workload": f"{len(spec.tickers)} tickers x 5m,15m,1h,4h,1d x 365 days"}
    with tempfile.TemporaryDirectory(prefix="mdw-columnar-bench-") as name:
        tmp = Path(name)
        lake_url = f"iceberg+sqlite:///{tmp / 'lake.db'}?warehouse={tmp / 'lake'}"
        lite_url = f"sqlite:///{tmp / 'lite.db'}"
        pg_url = await fresh_pg(pg)
        try:
            async with external_simulator() as (base, key):
                empty = await open_store(f"sqlite:///{tmp / 'plan.db'}")
                plan = await plan_only(empty, spec)
                await empty.close()
                await raw_fetch(base, key, list(plan.requests), 16)  # warm the simulator's caches
                fetch_s, fetch_bars = await raw_fetch(base, key, list(plan.requests), 16)
                out["raw_fetch_s"], out["bars"] = fetch_s, fetch_bars
                for name_, url in (("iceberg", lake_url), ("sqlite", lite_url), ("postgres", pg_url)):
                    report, figures = await backfill_into(url, base, key, spec)
                    pipeline = report.wall_s - report.plan_s
                    out[name_] = {"e2e_s": pipeline, "e2e_over_raw_fetch": pipeline / fetch_s,
                                  "bars": report.bars_fetched, "status": str(report.status),
                                  "transactions": report.transactions, **figures}  # fmt: skip
                    print(f"{name_:<9} {pipeline:6.2f} s end to end = {pipeline / fetch_s:.2f}x raw fetch "
                          f"({fetch_s:.2f} s); series-year {figures['series_year_ms']:.1f} ms, "
                          f"market-day {figures['market_day_ms']:.1f} ms", flush=True)  # fmt: skip
            bars = out["bars"]
            out["iceberg"]["bytes_per_bar_before_housekeeping"] = (
                dir_bytes(tmp / "lake") + (tmp / "lake.db").stat().st_size
            ) / bars
            async with await open_store(lake_url) as lake_store:
                # What the store's own schedule does every maintain_every commits, run now (no grace).
                bar_table = lake_store._bars  # type: ignore[attr-defined]
                out["iceberg"]["housekeeping"] = await bar_table.maintain(keep_ms=0, grace_ms=0)
                out["iceberg"].update(await reads(lake_store, spec))
            out["iceberg"]["bytes_per_bar"] = (
                dir_bytes(tmp / "lake") + (tmp / "lake.db").stat().st_size
            ) / bars
            out["sqlite"]["bytes_per_bar"] = (tmp / "lite.db").stat().st_size / bars
            out["iceberg"]["ingest"] = await ingest(lite_url, spec, tmp)
            lake, lite = out["iceberg"], out["sqlite"]
            got = lake["ingest"]
            print(f"bytes/bar iceberg {lake['bytes_per_bar']:.1f}, sqlite {lite['bytes_per_bar']:.1f};"
                  f" ingest from 250k-bar batches {got['bars_per_s'] / 1e6:.2f}M bars/s"
                  f" ({got['bars_per_cpu_s'] / 1e6:.2f}M bars per CPU second; encoding alone on one thread"
                  f" {got['parquet_encode_bars_per_s'] / 1e6:.2f}M bars/s,"
                  f" {got['parquet_encode_bars_per_cpu_s'] / 1e6:.2f}M per CPU second)",
                  flush=True)  # fmt: skip
        finally:
            await drop_pg(pg, pg_url)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pg", default=os.environ.get("MDW_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--tickers", type=int, default=25)
    args = parser.parse_args()
    os.environ.setdefault("MDW_LOG_LEVEL", "WARNING")
    write_result("columnar", asyncio.run(main(args.pg, args.tickers)))
