"""How fast the simulator makes and serves bars, so it is never the bottleneck of another benchmark.

Measures, for 50,000-bar pages of 1-minute bars:
- generation alone (``Market.page``, fresh caches: every day's minutes are generated),
- encoding alone (the ``results`` JSON of one page),
- over real HTTP against ``mdw simulate`` in its own process (1 and 4 concurrent streams),
a repeat of the same pages (served from the simulator's page cache), and daily-bar generation
(a cold year of daily bars), then prints bars per second and writes
bench/results/simulator.json.

Run: ``.venv/bin/python bench/simulator.py`` (about a minute).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from mdw.domain import NEW_YORK, Timeframe, local_midnight_ms
from mdw.simulator import Market, paths
from mdw.simulator.encode import bars_json
from mdw.simulator.market import _daily_row

RESULTS = Path(__file__).resolve().parent / "results"
NOW = "2026-06-30"
TICKERS = ("AAPL", "MSFT", "NVDA", "AMZN", "META", "TSLA", "JPM", "SPY")
PAGE = 50_000


def _clear() -> None:
    paths.day_minutes.cache_clear()
    _daily_row.cache_clear()


def _generation(market: Market, rounds: int = 6) -> dict[str, Any]:
    tf = Timeframe(1, "m")
    times, bars = [], 0
    for i in range(rounds):
        _clear()
        ticker = TICKERS[i % len(TICKERS)]
        paths.anchors(market.seed, ticker)  # the per-ticker path is cached for the process; not timed
        start = local_midnight_ms(date(2025, 1, 2) + timedelta(days=7 * i), NEW_YORK)
        t0 = time.perf_counter()
        page = market.page(ticker, tf, start, start + 400 * 86_400_000, limit=PAGE, adjusted=False)
        times.append(time.perf_counter() - t0)
        bars += len(page.bars)
    per_page = bars / rounds
    return {
        "bars_per_page": round(per_page),
        "ms_per_page_median": round(sorted(times)[rounds // 2] * 1e3, 1),
        "bars_per_s": round(bars / sum(times)),
    }


def _encoding(market: Market) -> dict[str, Any]:
    start = local_midnight_ms(date(2025, 1, 2), NEW_YORK)
    page = market.page("AAPL", Timeframe(1, "m"), start, start + 400 * 86_400_000, limit=PAGE)
    t0 = time.perf_counter()
    rounds = 5
    for _ in range(rounds):
        data = bars_json(page.bars)
    elapsed = (time.perf_counter() - t0) / rounds
    return {
        "bars": len(page.bars),
        "ms_per_page": round(elapsed * 1e3, 1),
        "bytes": len(data),
        "bars_per_s": round(len(page.bars) / elapsed),
    }


def _daily(market: Market) -> dict[str, Any]:
    _clear()
    start = local_midnight_ms(date(2024, 1, 1), NEW_YORK)
    t0 = time.perf_counter()
    bars = market.aggregates("KO", Timeframe(1, "d"), start, start + 366 * 86_400_000)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    market.aggregates("KO", Timeframe(1, "d"), start, start + 366 * 86_400_000)
    warm = time.perf_counter() - t0
    return {
        "bars": len(bars),
        "cold_ms": round(cold * 1e3, 1),
        "warm_ms": round(warm * 1e3, 1),
        "cold_bars_per_s": round(len(bars) / cold),
    }


async def _stream(http: aiohttp.ClientSession, base: str, ticker: str, first: date, days: int) -> int:
    """Page through ``days`` of minute bars with limit=50000, as a client would; returns bars read."""
    url = f"{base}/v2/aggs/ticker/{ticker}/range/1/minute/{first}/{first + timedelta(days=days)}"
    params: dict[str, str] | None = {"adjusted": "false", "limit": str(PAGE)}
    total = 0
    while url:
        async with http.get(url, params=params, headers={"Authorization": "Bearer bench-key"}) as r:
            body = msgspec.json.decode(await r.read())
        total += len(body.get("results", ()))
        url, params = body.get("next_url"), None
    return total


def _start_simulator() -> tuple[subprocess.Popen[str], str]:
    cmd = [
        sys.executable,
        "-c",
        "from mdw.cli import main; main()",
        "simulate",
        "--port",
        "0",
        "--key",
        "bench-key:unlimited",
        "--now",
        NOW,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    assert proc.stdout is not None
    match = re.search(r"(http://\S+)", proc.stdout.readline())
    assert match, "the simulator did not print its URL"
    return proc, match[1]


async def _http(base: str, streams: int, repeat: bool = False) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        await _stream(http, base, "SPY", date(2024, 1, 2), 3)  # warm-up: calendar, imports
        t0 = time.perf_counter()
        counts = await asyncio.gather(
            *(
                _stream(http, base, TICKERS[i], date(2024, 1, 2) + timedelta(days=150 * i), 150)
                for i in range(streams)
            )
        )
        elapsed = time.perf_counter() - t0
    bars = sum(counts)
    return {
        "streams": streams,
        "repeat": repeat,
        "bars": bars,
        "seconds": round(elapsed, 2),
        "bars_per_s": round(bars / elapsed),
    }


def main() -> None:
    market = Market(42)
    report: dict[str, Any] = {
        "host": {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()},
        "generation_50k_minute_pages": _generation(market),
        "encoding_50k_bar_page": _encoding(market),
        "daily_bars_one_year": _daily(market),
    }
    proc, base = _start_simulator()
    try:
        report["http_50k_pages"] = [
            asyncio.run(_http(base, 1)),
            asyncio.run(_http(base, 4)),
            asyncio.run(_http(base, 4, repeat=True)),
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    gen, enc = report["generation_50k_minute_pages"], report["encoding_50k_bar_page"]
    print(
        f"generation: {gen['bars_per_s']:,} bars/s ({gen['ms_per_page_median']} ms per "
        f"{gen['bars_per_page']:,}-bar page)"
    )
    print(
        f"encoding:   {enc['bars_per_s']:,} bars/s ({enc['ms_per_page']} ms per page, {enc['bytes']:,} bytes)"
    )
    daily = report["daily_bars_one_year"]
    print(
        f"daily:      {daily['bars']} daily bars in {daily['cold_ms']} ms cold, {daily['warm_ms']} ms cached"
    )
    for run in report["http_50k_pages"]:
        print(
            f"http x{run['streams']}{' (repeat, cached pages)' if run['repeat'] else ''}: "
            f"{run['bars_per_s']:,} bars/s "
            f"({run['bars']:,} bars in {run['seconds']} s)"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "simulator.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS / 'simulator.json'}")


if __name__ == "__main__":
    main()
