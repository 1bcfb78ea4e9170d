"""Backfill benchmark: every ratio the issue asks for, measured in one run against the simulator.

1. Pacing: a multi-series backfill at rate limit R with 30 ms latency; wall time / (requests / R)
   (target <= 1.05) and the simulator's count of 429s (target 0).
2. Plan size: requests / the minimal plan, where the minimal plan is, per series,
   ceil(base aggregates / 50,000) counted from the calendar (target 1.0), for the standard
   workload as planned, and with --derive against its own minimum (the finest series only).
3. Store speed: unthrottled end-to-end bars/s into PostgreSQL / raw COPY of the same rows into
   an empty table with the columns, checks and primary key of ``bars`` (target >= 0.6).
4. Pipeline overhead: the standard workload (25 tickers x 5m,15m,1h,4h,1d x 365 days) with an
   unlimited plan stored end to end, against a raw concurrent fetch of the same pages (decoded,
   nothing stored) with the same concurrency, in the same run (target <= 1.3x).
5. Memory: peak RSS of a child process backfilling 1 and 5 years of minute bars (flat).

Run: ``.venv/bin/python bench/backfill.py [--pg postgresql://postgres@127.0.0.1:5432/postgres]``;
writes ``bench/results/backfill.json``. Takes a few minutes on two shared cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from mdw.backfill import BackfillSpec, plan_only, run_backfill
from mdw.backfill.demo import standard_spec
from mdw.backfill.plan import MAX_BASE
from mdw.backfill.planner import base_units, final_end
from mdw.domain import AssetClass, parse_tickers, parse_timeframes
from mdw.polygon import Pacing, PolygonClient
from mdw.simulator import Market
from mdw.store import RunKind, open_store

RESULTS = Path(__file__).parent / "results" / "backfill.json"
END = date(2025, 6, 30)


def minimal_requests(spec: BackfillSpec, now_ms: int, only: set[str] | None = None) -> int:
    """Per series ceil(base aggregates / 50,000), from the calendar's largest possible count."""
    total = 0
    for tk in spec.tickers:
        for tf in spec.timeframes:
            if only is not None and str(tf) not in only:
                continue
            rng = spec.wanted(tk.asset_class)
            rng = replace(rng, end_ms=min(rng.end_ms, final_end(tk.asset_class, tf, now_ms)))
            total += math.ceil(base_units(tk.asset_class, tf, rng) / MAX_BASE)
    return total


@contextlib.asynccontextmanager
async def external_simulator(*flags: str) -> AsyncIterator[tuple[str, str]]:
    """``mdw simulate`` in its own process, so the vendor's CPU is not charged to the pipeline."""
    mdw = str(Path(sys.executable).with_name("mdw"))
    proc = await asyncio.create_subprocess_exec(
        mdw, "simulate", "--port", "0", "--seed", "42", "--stocks", "300", *flags,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await proc.stdout.readline()).decode()
        base = line.split("listening on ", 1)[1].strip()
        yield base, "test-key"
    finally:
        proc.terminate()
        await proc.wait()


async def sim_stats(base: str) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"{base}/_sim/stats") as resp:
        data: dict[str, Any] = await resp.json()
        return data


async def _admin(pg: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def fresh_pg(pg: str) -> str:
    name = f"mdw_bench_{uuid.uuid4().hex[:8]}"
    await _admin(pg, f'CREATE DATABASE "{name}"')
    return f"{pg.rsplit('/', 1)[0]}/{name}"


async def drop_pg(pg: str, url: str) -> None:
    await _admin(pg, f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


async def pacing(rate: str, latency_ms: float) -> dict[str, Any]:
    """Wall time against the rate limit's physical floor, with latency, into SQLite."""
    # Many short series: each request is cheap for the simulator, so the limiter is the bottleneck.
    # 300 requests (60 tickers x 5 timeframes) make the run long enough that the last request's
    # latency and the final commit (fixed costs, not pacing) do not dominate the ratio.
    stocks = [t for t in Market(seed=42).universe(AssetClass.STOCKS) if ":" not in t][:55]
    tickers = [*stocks, "X:BTCUSD", "X:ETHUSD", "X:SOLUSD", "X:XRPUSD", "X:ADAUSD"]
    spec = BackfillSpec(
        tuple(parse_tickers(tickers)),
        tuple(parse_timeframes("5m,15m,1h,4h,1d")),
        END - timedelta(days=6),
        END,
        grouped_daily=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(f"sqlite:///{tmp}/pace.db")
        sim_rate = f"{int(float(rate.split('/')[0]) * 60)}/min"  # the vendor enforces the same budget
        flags = ("--rate-limit", sim_rate, "--latency-ms", str(latency_ms))
        async with external_simulator(*flags) as (base, key):
            # Warm the simulator's caches with the same requests (unpaced): its cold start is not
            # the limiter's cost. The 60 s vendor budget still holds both passes.
            await raw_fetch(base, key, list((await plan_only(store, spec)).requests), 16)
            async with PolygonClient(key, base, pacing=Pacing(rate)) as c:
                report = await run_backfill(store, c, spec, rate_limit=rate)
            stats = await sim_stats(base)
        await store.close()
    per_s = float(rate.split("/")[0])
    ideal = report.requests / per_s
    return {
        "rate": rate,
        "latency_ms": latency_ms,
        "requests": report.requests,
        "wall_s": report.wall_s,
        "plan_s": report.plan_s,
        "pipeline_s": report.wall_s - report.plan_s,
        "ideal_s": ideal,
        "ratio": (report.wall_s - report.plan_s) / ideal,
        "ratio_with_planning": report.wall_s / ideal,
        "sim_429": stats["rate_limited"],
        "client_429": report.rate_limited,
        "status": report.status,
    }


async def raw_fetch(base_url: str, key: str, requests: list[Any], workers: int) -> tuple[float, int]:
    """The same pages fetched concurrently and decoded, nothing stored: the floor for the pipeline."""
    queue = list(requests)
    bars = 0

    async def worker(client: PolygonClient) -> None:
        nonlocal bars
        while queue:
            req = queue.pop()
            if req.kind == "grouped":
                day = date.fromtimestamp(req.fetch.start_ms / 1000)
                bars += sum(len(b) for b in (await client.grouped_daily(day, req.asset)).values())
                continue
            async for page in client.aggregate_pages(
                req.ticker, req.timeframe, req.fetch.start_ms, req.fetch.end_ms
            ):
                bars += len(page)

    async with PolygonClient(key, base_url, pacing=Pacing("unlimited", max_in_flight=workers)) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(workers)))
        return time.perf_counter() - started, bars


async def copy_floor(pg: str, source_url: str) -> tuple[float, int]:
    """Raw COPY of every stored bar row into an empty table of the same shape."""
    import asyncpg

    conn = await asyncpg.connect(source_url)
    try:
        cols = ["ticker", "timeframe", "t", "o", "h", "l", "c", "v", "vw", "n", "source"]
        rows = await conn.fetch(f"SELECT {', '.join(cols)} FROM bars")
        records = [tuple(r) for r in rows]
        # Same columns, defaults, checks and primary key as bars, without the partitioning.
        await conn.execute(
            "CREATE TABLE copy_floor (LIKE bars INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)"
        )
        started = time.perf_counter()
        await conn.copy_records_to_table("copy_floor", records=records, columns=cols)
        return time.perf_counter() - started, len(records)
    finally:
        await conn.close()


async def standard(pg: str) -> dict[str, Any]:
    """The standard workload, unlimited plan, end to end into PostgreSQL and SQLite vs raw fetch and COPY."""
    spec = replace(standard_spec(END, corporate_actions=False), kind=RunKind.BACKFILL)
    url = await fresh_pg(pg)
    try:
        store = await open_store(url)
        async with external_simulator() as (base, key):
            plan = await plan_only(store, spec)
            now = int(time.time() * 1000)
            await raw_fetch(base, key, list(plan.requests), 16)  # warm the simulator's caches first
            fetch_s, fetch_bars = await raw_fetch(base, key, list(plan.requests), 16)
            async with PolygonClient(key, base, pacing=Pacing("unlimited", max_in_flight=16)) as c:
                report = await run_backfill(store, c, spec, rate_limit="unlimited")
            with tempfile.TemporaryDirectory() as tmp:
                # The same run into the default store (SQLite), against the same warmed simulator.
                lite = await open_store(f"sqlite:///{tmp}/std.db")
                async with PolygonClient(key, base, pacing=Pacing("unlimited", max_in_flight=16)) as c:
                    lite_report = await run_backfill(lite, c, spec, rate_limit="unlimited")
                await lite.close()
                empty = await open_store(f"sqlite:///{tmp}/d.db")
                derive_plan = await plan_only(empty, replace(spec, derive=True))
                await empty.close()
        await store.close()
        copy_s, copy_rows = await copy_floor(pg, url)
    finally:
        await drop_pg(pg, url)
    pipeline = report.wall_s - report.plan_s
    e2e_rate = report.bars_fetched / pipeline
    copy_rate = copy_rows / copy_s
    minimal = minimal_requests(spec, now)
    derive_minimal = minimal_requests(spec, now, only={"5m", "1d"})
    return {
        "requests": report.requests,
        "planned": plan.request_count,
        "minimal_plan": minimal,
        "requests_over_minimal": report.requests / minimal,
        "derive_requests": derive_plan.request_count,
        "derive_minimal_plan": derive_minimal,
        "derive_over_minimal": derive_plan.request_count / derive_minimal,
        "bars": report.bars_fetched,
        "e2e_wall_s": report.wall_s,
        "e2e_api_s": report.api_s,
        "e2e_db_s": report.db_s,
        "e2e_bars_per_s": e2e_rate,
        "raw_fetch_s": fetch_s,
        "raw_fetch_bars": fetch_bars,
        "e2e_over_raw_fetch": pipeline / fetch_s,
        "e2e_with_planning_over_raw_fetch": report.wall_s / fetch_s,
        "sqlite_e2e_wall_s": lite_report.wall_s,
        "sqlite_e2e_db_s": lite_report.db_s,
        "sqlite_e2e_over_raw_fetch": (lite_report.wall_s - lite_report.plan_s) / fetch_s,
        "sqlite_status": lite_report.status,
        "copy_s": copy_s,
        "copy_rows": copy_rows,
        "copy_bars_per_s": copy_rate,
        "e2e_over_copy": e2e_rate / copy_rate,
        "status": report.status,
    }


CHILD = """
import asyncio, resource, sys, time
from datetime import date
from mdw.backfill import BackfillSpec, run_backfill
from mdw.domain import parse_tickers, parse_timeframes
from mdw.store import RunKind, open_store
from mdw.polygon import Pacing, PolygonClient
async def main():
    store = await open_store(sys.argv[1])
    spec = BackfillSpec(tuple(parse_tickers("AAPL")), tuple(parse_timeframes("1m")),
                        date.fromisoformat(sys.argv[4]), date.fromisoformat(sys.argv[5]),
                        kind=RunKind.BACKFILL)
    async with PolygonClient(sys.argv[3], sys.argv[2], pacing=Pacing("unlimited", max_in_flight=4)) as c:
        r = await run_backfill(store, c, spec)
    await store.close()
    # VmHWM, not ru_maxrss: Linux carries the parent's peak RSS into ru_maxrss across fork+exec.
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
    print(r.bars_fetched, r.requests, r.wall_s, hwm)
asyncio.run(main())
"""


async def memory() -> dict[str, Any]:
    """Peak RSS of a child backfilling 1 and 5 years of AAPL minute bars (the simulator runs here)."""
    out: dict[str, Any] = {}
    async with external_simulator() as (base, key):
        for years in (1, 5):
            with tempfile.TemporaryDirectory() as tmp:
                start = END - timedelta(days=365 * years - 1)
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    CHILD,
                    f"sqlite:///{tmp}/m.db",
                    base,
                    key,
                    start.isoformat(),
                    END.isoformat(),
                    stdout=asyncio.subprocess.PIPE,
                    env={**os.environ, "MDW_LOG_LEVEL": "WARNING"},
                )
                stdout, _ = await proc.communicate()
                bars, reqs, wall, rss_kb = stdout.decode().split()[-4:]
                out[f"{years}y"] = {
                    "bars": int(bars),
                    "requests": int(reqs),
                    "wall_s": float(wall),
                    "peak_rss_mb": int(rss_kb) / 1024,
                }
    out["ratio_5y_over_1y"] = out["5y"]["peak_rss_mb"] / out["1y"]["peak_rss_mb"]
    return out


async def main(pg: str, rate: str, only: str) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()}}
    started = time.perf_counter()
    # Load the trading calendar once, as a long-running process has it: it is not the limiter's cost.
    await asyncio.to_thread(lambda: minimal_requests(standard_spec(END), int(time.time() * 1000)))
    if only:
        part = {"pacing": lambda: pacing(rate, 30.0), "standard": lambda: standard(pg), "memory": memory}[
            only
        ]
        results[only] = await part()
        print(json.dumps(results[only], indent=1))
        return results
    results["pacing"] = await pacing(rate, 30.0)
    print(
        f"1. pacing at {rate}, 30 ms latency: wall/(requests/R) = {results['pacing']['ratio']:.3f} "
        f"({results['pacing']['requests']} requests, {results['pacing']['wall_s']:.1f} s), "
        f"429s = {results['pacing']['sim_429']}",
        flush=True,
    )
    results["standard"] = s = await standard(pg)
    print(
        f"2. requests / minimal plan = {s['requests_over_minimal']:.3f} "
        f"({s['requests']} / {s['minimal_plan']})"
    )
    print(
        f"   with --derive {s['derive_over_minimal']:.3f} "
        f"({s['derive_requests']} / {s['derive_minimal_plan']})"
    )
    print(
        f"3. end-to-end into PostgreSQL {s['e2e_bars_per_s']:,.0f} bars/s / raw COPY "
        f"{s['copy_bars_per_s']:,.0f} bars/s = {s['e2e_over_copy']:.3f}"
    )
    print(
        f"4. standard workload end to end {s['e2e_wall_s']:.2f} s / raw concurrent fetch "
        f"{s['raw_fetch_s']:.2f} s = {s['e2e_over_raw_fetch']:.3f}x ({s['bars']:,} bars) into PostgreSQL; "
        f"into SQLite (the default store) {s['sqlite_e2e_wall_s']:.2f} s = "
        f"{s['sqlite_e2e_over_raw_fetch']:.3f}x",
        flush=True,
    )
    results["memory"] = m = await memory()
    one, five = m["1y"], m["5y"]
    print(
        f"5. peak RSS: 1 year of minute bars {one['peak_rss_mb']:.0f} MB ({one['bars']:,} bars), "
        f"5 years {five['peak_rss_mb']:.0f} MB ({five['bars']:,} bars): ratio {m['ratio_5y_over_1y']:.2f}"
    )
    results["bench_wall_s"] = time.perf_counter() - started
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pg", default=os.environ.get("MDW_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--rate", default="40/s")
    parser.add_argument(
        "--only",
        default="",
        choices=["", "pacing", "standard", "memory"],
        help="run one part only (its result alone is written)",
    )
    args = parser.parse_args()
    data = asyncio.run(main(args.pg, args.rate, args.only))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(RESULTS)
    print(f"wrote {RESULTS}")
