"""Vendor client benchmark: decode throughput, and achieved request rate against the simulator.

1. Decode: bars/s for 50,000-bar aggregates pages, our msgspec-to-columns path against stdlib
   ``json`` in the same run (target: >= 1M bars/s on one core).
2. Rate: the client with its limiter set to the simulator's enforced limit R runs many concurrent
   single-page requests. The window rule means ``g[k+N] >= g[k] + P`` for grant times ``g``; the
   achieved rate is ``N / mean(g[k+N] - g[k])`` (independent of how grants fall inside a window),
   reported as a ratio to R (target >= 0.95 with zero 429s), with the simulator's own count of
   429s and its busiest 1 s window.

Run: ``.venv/bin/python bench/vendor.py [--rate 50/s] [--duration 8]``; writes
``bench/results/vendor.json``. Takes well under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mdw.config import RateLimit
from mdw.domain import Timeframe
from mdw.polygon import Pacing, PolygonClient, RateLimiter, RetryPolicy
from mdw.polygon.decode import decode_aggs

PAGE_BARS = 50_000
RESULTS = Path(__file__).parent / "results" / "vendor.json"


def make_page(n: int = PAGE_BARS, seed: int = 1) -> bytes:
    """A vendor-shaped aggregates page with ``n`` minute bars (vendor key order, fractional v)."""
    rnd = random.Random(seed)
    t = 1_704_186_000_000
    price = 100.0
    rows = []
    for _ in range(n):
        o = price
        c = round(o * (1 + rnd.gauss(0, 0.001)), 4)
        h = round(max(o, c) * (1 + abs(rnd.gauss(0, 0.0005))), 4)
        lo = round(min(o, c) * (1 - abs(rnd.gauss(0, 0.0005))), 4)
        rows.append({"v": round(rnd.uniform(100, 1e5), 6), "vw": round((h + lo) / 2, 4), "o": o, "c": c,
                     "h": h, "l": lo, "t": t, "n": rnd.randint(1, 5000)})
        price = c
        t += 60_000
    body = {"ticker": "AAPL", "queryCount": n, "resultsCount": n, "adjusted": False, "results": rows,
            "status": "OK", "request_id": "0" * 32, "count": n,
            "next_url": "https://api.massive.com/v2/aggs/ticker/AAPL/range/1/minute/1/2?cursor=bGltaXQ9NTAwMDA"}
    return json.dumps(body).encode()


def _stdlib_columns(body: bytes) -> dict[str, np.ndarray[Any, Any]]:
    """The straightforward stdlib path: json.loads, then columns from the per-bar dicts."""
    rows = json.loads(body).get("results", [])
    nan = math.nan
    return {
        "t": np.array([r["t"] for r in rows], dtype=np.int64),
        **{k: np.array([r[k] for r in rows], dtype=np.float64) for k in ("o", "h", "l", "c")},
        **{k: np.array([r.get(k, nan) for r in rows], dtype=np.float64) for k in ("v", "vw")},
        "n": np.array([r.get("n", 0) for r in rows], dtype=np.int64),
    }


def _best(fn: Any, body: bytes, repeat: int) -> float:
    """Best-of CPU seconds of this process: the per-core cost, unaffected by other processes
    competing for the shared cores (wall time is reported alongside)."""
    best = math.inf
    for _ in range(repeat):
        start = time.process_time()
        fn(body)
        best = min(best, time.process_time() - start)
    return best


def _best_wall(fn: Any, body: bytes, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn(body)
        best = min(best, time.perf_counter() - start)
    return best


def bench_decode(repeat: int = 7) -> dict[str, Any]:
    body = make_page()
    tf = Timeframe.parse("1m")
    ours = decode_aggs(body, "AAPL", tf, "bench")[0]
    ref = _stdlib_columns(body)
    assert all(np.array_equal(getattr(ours, k), ref[k]) for k in ref), "decoders disagree"
    timings = {
        "msgspec_columns": _best(lambda b: decode_aggs(b, "AAPL", tf, "bench"), body, repeat),
        "stdlib_json_loads_only": _best(json.loads, body, repeat),
        "stdlib_json_columns": _best(_stdlib_columns, body, repeat),
    }
    wall = _best_wall(lambda b: decode_aggs(b, "AAPL", tf, "bench"), body, repeat)
    return {
        "clock": "process CPU time (best of N)",
        "msgspec_columns_wall_bars_per_s": PAGE_BARS / wall,
        "page_bars": PAGE_BARS,
        "page_bytes": len(body),
        "best_of": repeat,
        "seconds": timings,
        "bars_per_s": {k: PAGE_BARS / v for k, v in timings.items()},
        "speedup_vs_stdlib_columns": timings["stdlib_json_columns"] / timings["msgspec_columns"],
        "target_bars_per_s": 1_000_000,
    }


class _Recording:
    """A limiter wrapper (LimiterBackend and ArrivalTracking) that records each grant time."""

    def __init__(self, inner: RateLimiter) -> None:
        self.inner = inner
        self.grants: list[float] = []

    async def acquire(self) -> None:
        await self.inner.acquire()
        self.grants.append(time.monotonic())

    async def start(self) -> Callable[[], None]:
        answered = await self.inner.start()
        self.grants.append(time.monotonic())
        return answered

    async def on_rate_limited(self, retry_after_s: float | None) -> None:
        await self.inner.on_rate_limited(retry_after_s)

    async def on_success(self) -> None:
        await self.inner.on_success()

    @property
    def current_rate(self) -> RateLimit:
        return self.inner.current_rate


async def bench_rate(rate_text: str, duration_s: float, workers: int) -> dict[str, Any]:
    from mdw.simulator import SimConfig, start_simulator

    rate = RateLimit.parse(rate_text)
    total = int(rate.requests * max(3.0, duration_s / rate.period))
    config = SimConfig(seed=7, keys={"bench-key": "unlimited"}, rate_limit=rate_text, n_stocks=20)
    async with start_simulator(config, port=0) as sim:
        recorder = _Recording(RateLimiter(rate))
        tf = Timeframe.parse("1d")
        day_ms = 86_400_000
        start_ms = 1_704_067_200_000
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(total):
            queue.put_nowait(i)
        tickers = ["AAPL", "MSFT"]

        async with PolygonClient(sim.key, sim.base_url, limiter=recorder,
                                 pacing=Pacing(max_in_flight=workers),
                                 retry=RetryPolicy(base_s=0.05)) as client:

            async def worker() -> None:
                while True:
                    try:
                        i = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    s = start_ms + (i % 200) * day_ms
                    await client.aggregates(tickers[i % 2], tf, s, s + 5 * day_ms)

            began = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(workers)))
            elapsed = time.monotonic() - began
            stats = client.stats()
        sim_stats = sim.stats()
    g = sorted(recorder.grants)
    n_window = int(rate.requests)
    refill = [b - a for a, b in zip(g, g[n_window:], strict=False)]
    steady = n_window / (sum(refill) / len(refill)) if refill else math.nan
    target = rate.per_second
    return {
        "rate_limit": str(rate),
        "requests": len(g),
        "workers": workers,
        "elapsed_s": elapsed,
        "steady_state_req_per_s": steady,
        "ratio_to_limit": steady / target,
        "client_429s": stats.rate_limited_count,
        "sim_429s": sim_stats["rate_limited"],
        "sim_max_requests_1s": sim_stats["max_requests_1s"],
        "client_retries": stats.retries,
        "latency_mean_ms": 1000 * stats.latency.sum_s / max(1, stats.latency.count),
        "target_ratio": 0.95,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", default="50/s", help="the simulator's enforced limit R (default 50/s)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of requests (default 8)")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    decode = bench_decode()
    b = decode["bars_per_s"]
    print(f"decode 50k-bar page: msgspec->columns {b['msgspec_columns'] / 1e6:.2f} M bars/s | stdlib json "
          f"loads only {b['stdlib_json_loads_only'] / 1e6:.2f} M | json->columns "
          f"{b['stdlib_json_columns'] / 1e6:.2f} M | speedup {decode['speedup_vs_stdlib_columns']:.1f}x "
          f"(target >= 1.00 M)")
    rate = asyncio.run(bench_rate(args.rate, args.duration, args.workers))
    print(f"rate {rate['rate_limit']}: {rate['requests']} requests, steady "
          f"{rate['steady_state_req_per_s']:.2f} req/s = {rate['ratio_to_limit']:.3f} x R (target >= 0.95); "
          f"429s client {rate['client_429s']} / sim {rate['sim_429s']}; "
          f"sim busiest 1 s window {rate['sim_max_requests_1s']}")
    result = {
        "benchmark": "vendor",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "decode": decode,
        "rate": rate,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
