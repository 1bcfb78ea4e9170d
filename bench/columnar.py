"""Columnar store benchmark (issue #19): the standard workload end to end into the Iceberg store,
against the raw fetch floor and beside SQLite and PostgreSQL, measured in one run.

1. A raw concurrent fetch of the standard workload's pages (decoded, nothing stored), then the
   same workload backfilled end to end (unlimited plan) into ``iceberg+sqlite``, SQLite and
   PostgreSQL, each against the same warmed simulator process: wall time / raw fetch time. The
   simulator keeps every page it served (``--page-cache-mb``) and is warmed with the raw fetch's
   pages and with the pages a backfill asks for (it cuts long requests into pages by density,
   ADR 0018; an untimed backfill into a throwaway columnar store asks for them first), so neither
   the floor nor any contender pays the simulator's page generation. ``--rounds N`` repeats the
   raw fetch and the contenders N times (each round beside its own raw fetch).
2. Bytes per bar on disk of each store after the run (the Iceberg warehouse plus its catalog
   database, before and after one housekeeping pass; the SQLite file).
3. One series-year read (AAPL 5m, the whole year) and one market-day read (every 5m bar of the
   last day, all 25 tickers) through the Store API, median of 7: right after the backfill (the
   files its commits wrote) and, for Iceberg, again after housekeeping (compacted).
4. Ingest from the engine's batches: the same bars re-written into a fresh Iceberg store in
   ``write_bars`` calls of the size the backfill writer groups for this store
   (``IcebergBars.write_size.min_rows`` bars), bars/s, beside the floor under any Parquet table:
   encoding the same bars with the same options (a commit's: zstd level 1) in memory.

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
from mdw.store.lake.bars import IcebergBars

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
    """Every stored bar re-written into a fresh Iceberg store, grouped as the backfill writer groups
    pages for this store (``min_rows`` bars per write_bars call)."""
    per_call = IcebergBars.write_size.min_rows
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
        if rows + len(b) > per_call and groups[-1]:
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
        options = layout.COMMIT_WRITER_OPTIONS
        pq.write_table(table, io.BytesIO(), row_group_size=layout.ROW_GROUP_ROWS, **options)
    encode_s, encode_cpu = time.perf_counter() - start, time.process_time() - encode_cpu
    # CPU seconds (every thread of this process) beside wall seconds: on a shared host the wall
    # figure depends on the other load, the CPU figure much less.
    return {"bars": total, "commits": len(groups), "bars_per_commit": per_call, "seconds": seconds,
            "bars_per_s": total / seconds,
            "cpu_s": cpu, "bars_per_cpu_s": total / cpu,
            "parquet_encode_bars_per_s": total / encode_s,
            "parquet_encode_bars_per_cpu_s": total / encode_cpu,
            "ingest_over_encode": encode_s / seconds}  # fmt: skip


async def main(pg: str, tickers: int, rounds: int) -> dict[str, Any]:
    spec = standard_spec(END, corporate_actions=False)
    spec = replace(spec, tickers=spec.tickers[:tickers])
    out: dict[str, Any] = {"workload": f"{len(spec.tickers)} tickers x 5m,15m,1h,4h,1d x 365 days",
                           "load_avg_start": os.getloadavg()}  # fmt: skip
    stores = ("iceberg", "sqlite", "postgres")
    with tempfile.TemporaryDirectory(prefix="mdw-columnar-bench-") as name:
        tmp = Path(name)
        pg_urls: list[str] = []
        try:
            async with external_simulator("--page-cache-mb", "1024") as (base, key):
                empty = await open_store(f"sqlite:///{tmp / 'plan.db'}")
                plan = await plan_only(empty, spec)
                await empty.close()
                await raw_fetch(base, key, list(plan.requests), 16)  # warm the simulator's pages ...
                warm = f"iceberg+sqlite:///{tmp / 'warm.db'}?warehouse={tmp / 'warm'}"
                await backfill_into(warm, base, key, spec)  # ... and the pages a backfill cuts
                per_round: list[dict[str, Any]] = []
                for r in range(rounds):
                    lake_url = f"iceberg+sqlite:///{tmp / f'lake{r}.db'}?warehouse={tmp / f'lake{r}'}"
                    pg_urls.append(await fresh_pg(pg))
                    urls = {"iceberg": lake_url, "sqlite": f"sqlite:///{tmp / f'lite{r}.db'}",
                            "postgres": pg_urls[-1]}  # fmt: skip
                    fetch_s, fetch_bars = await raw_fetch(base, key, list(plan.requests), 16)
                    got: dict[str, Any] = {"raw_fetch_s": fetch_s, "bars": fetch_bars,
                                           "load_avg": os.getloadavg()}  # fmt: skip
                    for name_ in stores:
                        report, figures = await backfill_into(urls[name_], base, key, spec)
                        pipeline = report.wall_s - report.plan_s
                        got[name_] = {"e2e_s": pipeline, "e2e_over_raw_fetch": pipeline / fetch_s,
                                      "bars": report.bars_fetched, "status": str(report.status),
                                      "transactions": report.transactions, **figures}  # fmt: skip
                        print(f"round {r + 1}: {name_:<9} {pipeline:6.2f} s end to end = "
                              f"{pipeline / fetch_s:.2f}x raw fetch ({fetch_s:.2f} s), "
                              f"{report.transactions} transactions; series-year "
                              f"{figures['series_year_ms']:.1f} ms, market-day "
                              f"{figures['market_day_ms']:.1f} ms"
                              f" (load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
                    per_round.append(got)
            last = per_round[-1]
            out.update({k: last[k] for k in ("raw_fetch_s", "bars")})
            for name_ in stores:
                out[name_] = dict(last[name_])
                ratios = [g[name_]["e2e_over_raw_fetch"] for g in per_round]
                out[name_]["e2e_over_raw_fetch_rounds"] = ratios
                out[name_]["e2e_over_raw_fetch_median"] = statistics.median(ratios)
            out["rounds"] = per_round
            bars = out["bars"]
            lake_db, lake_dir = tmp / f"lake{rounds - 1}.db", tmp / f"lake{rounds - 1}"
            lake_url = f"iceberg+sqlite:///{lake_db}?warehouse={lake_dir}"
            iceberg = out["iceberg"]
            iceberg["series_year_ms_before_housekeeping"] = iceberg.pop("series_year_ms")
            iceberg["market_day_ms_before_housekeeping"] = iceberg.pop("market_day_ms")
            held = dir_bytes(lake_dir) + lake_db.stat().st_size
            iceberg["bytes_per_bar_before_housekeeping"] = held / bars
            async with await open_store(lake_url) as lake_store:
                # What the store's own schedule does, run now (no grace).
                bar_table = lake_store._bars  # type: ignore[attr-defined]
                iceberg["housekeeping"] = await bar_table.maintain(keep_ms=0, grace_ms=0)
                iceberg.update(await reads(lake_store, spec))
            iceberg["bytes_per_bar"] = (dir_bytes(lake_dir) + lake_db.stat().st_size) / bars
            lite_url = f"sqlite:///{tmp / f'lite{rounds - 1}.db'}"
            out["sqlite"]["bytes_per_bar"] = (tmp / f"lite{rounds - 1}.db").stat().st_size / bars
            iceberg["ingest"] = await ingest(lite_url, spec, tmp)
            lite = out["sqlite"]
            got = iceberg["ingest"]
            print(f"iceberg after housekeeping: series-year {iceberg['series_year_ms']:.1f} ms, market-day "
                  f"{iceberg['market_day_ms']:.1f} ms; bytes/bar iceberg {iceberg['bytes_per_bar']:.1f} "
                  f"({iceberg['bytes_per_bar_before_housekeeping']:.1f} before housekeeping), sqlite "
                  f"{lite['bytes_per_bar']:.1f}; e2e/raw fetch median of {rounds}: "
                  + ", ".join(f"{s_} {out[s_]['e2e_over_raw_fetch_median']:.2f}x" for s_ in stores)
                  + f"\ningest in {got['commits']} commits of ~{got['bars_per_commit'] // 1000}k bars:"
                  f" {got['bars_per_s'] / 1e6:.2f}M bars/s"
                  f" ({got['bars_per_cpu_s'] / 1e6:.2f}M bars per CPU second; encoding alone on one thread"
                  f" {got['parquet_encode_bars_per_s'] / 1e6:.2f}M bars/s,"
                  f" {got['parquet_encode_bars_per_cpu_s'] / 1e6:.2f}M per CPU second)",
                  flush=True)  # fmt: skip
            out["load_avg_end"] = os.getloadavg()
        finally:
            for url in pg_urls:
                await drop_pg(pg, url)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pg", default=os.environ.get("MDW_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--tickers", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=1, help="raw fetch + every store, this many times")
    args = parser.parse_args()
    os.environ.setdefault("MDW_LOG_LEVEL", "WARNING")
    write_result("columnar", asyncio.run(main(args.pg, args.tickers, max(1, args.rounds))))
