"""Serve benchmark: ``GET /v1/bars`` against the raw store read, and latency under load during a backfill.

1. A store (SQLite file by default, ``--database-url`` for PostgreSQL) holds one year of 1-minute
   bars of X:BTCUSD (525,600 bars, the simulator's ground truth written through ``write_bars``).
2. The raw store read of that year, ``store.bars`` and ``store.bars_arrow`` (best of ``--repeat``).
3. ``mdw serve`` in its own process answers the same year as one streamed Arrow response and as
   JSON pages of 50,000 rows followed by cursor (best of ``--repeat``, body fully received).
   Targets: Arrow <= 1.5x and JSON <= 3x the raw ``store.bars`` read.
4. The dashboard's server-rendered overview (``GET /``, which calls the public API in process),
   body fully received (best of ``--repeat``). Target: under a second (a performance figure, so it
   is measured here and not asserted by the browser test).
5. p50/p99 latency of ``GET /v1/bars`` (one day of 1-minute bars as JSON, 1,440 rows) from 50
   concurrent clients for ``--seconds`` while a backfill started through ``POST /v1/backfills``
   writes minute bars of 20 stock tickers from the simulator (its own process, 30 ms latency).

Run: ``.venv/bin/python bench/serve.py``; writes ``bench/results/serve.json`` (about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SimProcess, fmt_ratio, ratio, served, write_result
from mdw.domain import DAY_MS, RangeSet, Timeframe, TimeRange, to_ms
from mdw.service.auth import new_key
from mdw.simulator.market import Market
from mdw.store import BarWrite, Store, open_store

TICKER = "X:BTCUSD"
MINUTE = Timeframe(1, "m")
YEAR = TimeRange(to_ms("2024-01-01T00:00:00Z"), to_ms("2025-01-01T00:00:00Z"))
YEAR_MS = (YEAR.start_ms, YEAR.end_ms)
LOAD_TICKERS = ["AAPL", "MSFT", "AMZN", "GOOGL", "META", "NVDA", "TSLA", "JPM", "V", "JNJ", "WMT", "PG",
                "XOM", "UNH", "HD", "MA", "BAC", "KO", "PEP", "CSCO"]


async def fill(store: Store) -> int:
    """Write the year of minute bars from the simulator's ground truth, a month at a time."""
    market = Market(42, now_ms=to_ms("2025-07-02T00:00:00Z"))
    total = 0
    start = YEAR.start_ms
    while start < YEAR.end_ms:
        end = min(YEAR.end_ms, start + 31 * DAY_MS)
        batch = market.aggregates(TICKER, MINUTE, start, end)
        await store.write_bars([BarWrite(batch, RangeSet.of([TimeRange(start, end)]))])
        total += len(batch)
        start = end
    return total


async def best(repeat: int, fn: Any) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    return min(times)


async def http_arrow(http: aiohttp.ClientSession, base: str) -> int:
    url = f"{base}/v1/bars/{TICKER}?timeframe=1m&start={YEAR.start_ms}&end={YEAR.end_ms}&format=arrow"
    async with http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return len(await resp.read())


async def http_json(http: aiohttp.ClientSession, base: str) -> int:
    rows = 0
    cursor = ""
    while True:
        url = (f"{base}/v1/bars/{TICKER}?timeframe=1m&start={YEAR.start_ms}&end={YEAR.end_ms}"
               f"&limit=50000{cursor}")
        async with http.get(url) as resp:
            assert resp.status == 200, await resp.text()
            rows += len(await resp.read())  # the body fully received; parsing it is the client's cost
            following = resp.headers.get("X-Next-Cursor")
        if not following:
            return rows
        cursor = "&cursor=" + following


async def load(http: aiohttp.ClientSession, base: str, clients: int, seconds: float) -> list[float]:
    """Latencies (s) of one-day JSON reads from ``clients`` concurrent loops for ``seconds``."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    rng = random.Random(7)

    async def client() -> None:
        while time.perf_counter() < deadline:
            day = YEAR.start_ms + rng.randrange(365) * DAY_MS
            url = f"{base}/v1/bars/{TICKER}?timeframe=1m&start={day}&end={day + DAY_MS}"
            t0 = time.perf_counter()
            async with http.get(url) as resp:
                await resp.read()
                assert resp.status == 200
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


async def overview_page(http: aiohttp.ClientSession, base: str) -> int:
    async with http.get(base + "/") as resp:
        assert resp.status == 200, await resp.text()
        return len(await resp.read())


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="mdw-bench-serve-")
    db_url = args.database_url or f"sqlite:///{Path(tmp) / 'serve.db'}"
    store = await open_store(db_url)
    admin, record = new_key("admin", "bench", 0)
    await store.keys.add(record)
    t0 = time.perf_counter()
    rows = await fill(store)
    print(f"stored {rows:,} bars of {TICKER} 1m in {time.perf_counter() - t0:.1f}s ({db_url.split(':')[0]})")
    with SimProcess() as sim, served(db_url, sim, tmp) as base:
        connector = aiohttp.TCPConnector(limit=args.clients)
        async with aiohttp.ClientSession(connector=connector) as http:
            await http_json(http, base)  # warm-up: imports, calendar, page cache
            # Interleaved rounds, best of each: the machine is shared, so drift hits all alike.
            rounds: dict[str, list[float]] = {"raw": [], "raw_arrow": [], "arrow": [], "json": [],
                                              "overview": []}
            for _ in range(args.repeat):
                rounds["raw"].append(await best(1, lambda: store.bars(TICKER, MINUTE, *YEAR_MS)))
                rounds["raw_arrow"].append(
                    await best(1, lambda: store.bars_arrow(TICKER, MINUTE, *YEAR_MS)))
                rounds["arrow"].append(await best(1, lambda: http_arrow(http, base)))
                rounds["json"].append(await best(1, lambda: http_json(http, base)))
                rounds["overview"].append(await best(1, lambda: overview_page(http, base)))
            raw, raw_arrow = min(rounds["raw"]), min(rounds["raw_arrow"])
            arrow, json_s = min(rounds["arrow"]), min(rounds["json"])
            quiet = await load(http, base, args.clients, args.seconds / 2)
            body = {"symbols": LOAD_TICKERS, "timeframes": ["1m"], "start": "2025-05-01",
                    "end": "2025-06-27"}
            async with http.post(base + "/v1/backfills", json=body, headers={"X-API-Key": admin}) as resp:
                run_id = (await resp.json())["run_id"]
            busy = await load(http, base, args.clients, args.seconds)
            async with http.get(f"{base}/v1/backfills/{run_id}") as resp:
                run = await resp.json()
    await store.close()

    def pct(values: list[float], q: float) -> float:
        return round(statistics.quantiles(values, n=100)[q - 1] * 1000, 2)

    result = {
        "store": db_url.split(":")[0], "rows": rows,
        "raw_store_bars_s": round(raw, 4), "raw_store_bars_arrow_s": round(raw_arrow, 4),
        "http_arrow_s": round(arrow, 4), "http_json_s": round(json_s, 4),
        "arrow_vs_raw": round(ratio(arrow, raw) or 0, 3), "json_vs_raw": round(ratio(json_s, raw) or 0, 3),
        "overview_page_s": round(min(rounds["overview"]), 4),
        "targets": {"arrow_vs_raw": 1.5, "json_vs_raw": 3.0, "overview_page_s": 1.0},
        "load": {
            "clients": args.clients, "rows_per_request": 1440,
            "idle": {"requests": len(quiet), "p50_ms": pct(quiet, 50), "p99_ms": pct(quiet, 99),
                     "rps": round(len(quiet) / (args.seconds / 2), 1)},
            "during_backfill": {"requests": len(busy), "p50_ms": pct(busy, 50), "p99_ms": pct(busy, 99),
                                "rps": round(len(busy) / args.seconds, 1),
                                "backfill_status": run["status"],
                                "backfill_bars_so_far": run.get("progress", {}).get("bars")},
        },
    }
    idle, busy_ = result["load"]["idle"], result["load"]["during_backfill"]  # type: ignore[index]
    print(f"raw store.bars {raw:.3f}s | Arrow {arrow:.3f}s ({fmt_ratio(ratio(arrow, raw))}, target <= 1.5x)"
          f" | JSON {json_s:.3f}s ({fmt_ratio(ratio(json_s, raw))}, target <= 3x)")
    print(f"dashboard overview page {min(rounds['overview']):.3f}s (target < 1 s)")
    print(f"{args.clients} clients idle: p50 {idle['p50_ms']} ms, p99 {idle['p99_ms']} ms; "
          f"during backfill: p50 {busy_['p50_ms']} ms, p99 {busy_['p99_ms']} ms")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    ns = parser.parse_args()
    out = asyncio.run(main(ns))
    print(write_result("serve", out))
