"""Load benchmark: 50 httpx clients read bars from ``mdw serve``, without and then during a backfill.

1. A SQLite file holds three months of 1-minute X:BTCUSD bars (the simulator's ground truth,
   written through ``write_bars``).
2. ``mdw serve`` runs in its own process. 50 client tasks share one ``httpx.AsyncClient`` (its
   default pool: connections are reused and expire after 5 s idle) and loop ``GET /v1/bars`` for
   one day of minute bars (1,440 rows, JSON) for ``--seconds`` with nothing else running ("quiet"),
   then for ``--seconds`` while a backfill started through ``POST /v1/backfills`` writes minute bars
   of 20 stock tickers from the simulator (its own process, 30 ms latency) ("backfill").
3. Per phase: requests, client errors by kind (``ReadError``, ``RemoteProtocolError`` ...), p50 and
   p99, and the ratio of the p99s. The server runs twice, side by side in one run: with uvicorn's
   default keep-alive (5 s, ``MDW_KEEP_ALIVE_S=5``) and with mdw's default (75 s).

Run: ``.venv/bin/python bench/load.py`` (``--small``: 5 s phases); writes ``bench/results/load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SimProcess, served, write_result
from mdw.domain import DAY_MS, RangeSet, Timeframe, TimeRange, to_ms
from mdw.service.auth import new_key
from mdw.simulator.market import Market
from mdw.store import BarWrite, open_store

TICKER = "X:BTCUSD"
MINUTE = Timeframe(1, "m")
HELD = TimeRange(to_ms("2024-01-01T00:00:00Z"), to_ms("2024-04-01T00:00:00Z"))
WRITERS = ["AAPL", "MSFT", "AMZN", "GOOGL", "META", "NVDA", "TSLA", "JPM", "V", "JNJ", "WMT", "PG",
           "XOM", "UNH", "HD", "MA", "BAC", "KO", "PEP", "CSCO"]


async def fill(url: str) -> tuple[int, str]:
    """Write the held months of minute bars; returns the count and an admin key."""
    market = Market(42, now_ms=to_ms("2025-07-02T00:00:00Z"))
    total = 0
    async with await open_store(url) as store:
        admin, record = new_key("admin", "bench", 0)
        await store.keys.add(record)
        start = HELD.start_ms
        while start < HELD.end_ms:
            end = min(HELD.end_ms, start + 31 * DAY_MS)
            batch = market.aggregates(TICKER, MINUTE, start, end)
            await store.write_bars([BarWrite(batch, RangeSet.of([TimeRange(start, end)]))])
            total += len(batch)
            start = end
    return total, admin


async def phase(http: httpx.AsyncClient, base: str, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` loops of one-day reads for ``seconds``: latencies of the answered ones, errors by kind."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    deadline = time.perf_counter() + seconds
    days = (HELD.end_ms - HELD.start_ms) // DAY_MS

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.perf_counter() < deadline:
            day = HELD.start_ms + rng.randrange(days) * DAY_MS
            url = f"{base}/v1/bars/{TICKER}?timeframe=1m&start={day}&end={day + DAY_MS}"
            t0 = time.perf_counter()
            try:
                resp = await http.get(url)
                if resp.status_code != 200 or not resp.json()["bars"]:
                    errors[f"HTTP {resp.status_code}"] += 1
                    continue
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                continue
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(client(i) for i in range(clients)))
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"requests": len(latencies) + sum(errors.values()), "errors": sum(errors.values()),
            "error_kinds": dict(errors), "p50_ms": round(cuts[49] * 1000, 1),
            "p99_ms": round(cuts[98] * 1000, 1), "rps": round(len(latencies) / seconds, 1)}


async def variant(db_url: str, admin: str, sim: SimProcess, keep_alive_s: float, args: argparse.Namespace,
                  window: tuple[str, str], cwd: str) -> dict[str, Any]:
    with served(db_url, sim, cwd, MDW_KEEP_ALIVE_S=str(keep_alive_s)) as base:
        async with httpx.AsyncClient(timeout=30) as http:  # httpx's default pool, as a user would have
            await phase(http, base, 4, 1.0)  # warm-up
            quiet = await phase(http, base, args.clients, args.seconds)
            body = {"symbols": WRITERS, "timeframes": ["1m"], "start": window[0], "end": window[1]}
            resp = await http.post(base + "/v1/backfills", json=body, headers={"X-API-Key": admin})
            run_id = resp.json()["run_id"]
            busy = await phase(http, base, args.clients, args.seconds)
            run = (await http.get(f"{base}/v1/backfills/{run_id}")).json()
            busy["backfill_status"] = run["status"]
            busy["backfill_bars_so_far"] = run.get("progress", {}).get("bars")
    return {"keep_alive_s": keep_alive_s, "quiet": quiet, "during_backfill": busy,
            "p99_ratio": round(busy["p99_ms"] / quiet["p99_ms"], 2) if quiet["p99_ms"] else None}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="mdw-bench-load-")
    out: dict[str, Any] = {"clients": args.clients, "seconds": args.seconds, "rows_per_request": 1440,
                           "variants": []}
    with SimProcess() as sim:
        for i, keep_alive in enumerate((5.0, 75.0)):
            db_url = f"sqlite:///{Path(tmp) / f'load{i}.db'}"
            rows, admin = await fill(db_url)
            window = ("2025-05-01", "2025-06-27")
            res = await variant(db_url, admin, sim, keep_alive, args, window, tmp)
            out["variants"].append(res)
            q, b = res["quiet"], res["during_backfill"]
            print(f"keep-alive {keep_alive:g}s: quiet {q['requests']} req, {q['errors']} errors "
                  f"{q['error_kinds']}, "
                  f"p50 {q['p50_ms']} ms, p99 {q['p99_ms']} ms | during backfill {b['requests']} req, "
                  f"{b['errors']} errors {b['error_kinds']}, p50 {b['p50_ms']} ms, p99 {b['p99_ms']} ms "
                  f"({res['p99_ratio']}x)", flush=True)
    out["rows_held"] = rows
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--small", action="store_true", help="5 s phases")
    ns = parser.parse_args()
    if ns.small:
        ns.seconds = 5.0
    result = asyncio.run(main(ns))
    print(write_result("load", result))
