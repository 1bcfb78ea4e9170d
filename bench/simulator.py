"""How fast the simulator makes and serves bars, so it is never the bottleneck of another benchmark.

Measures, for 50,000-bar pages of 1-minute bars:
- generation alone (``Market.page``, fresh caches: every day's minutes are generated),
- encoding alone (the ``results`` JSON of one page),
- over real HTTP against ``mdw simulate`` in its own process (1 and 4 concurrent streams),
a repeat of the same pages (served from the simulator's page cache), and daily-bar generation
(a cold year of daily bars); then, at market scale (the default universe of 8,000 securities,
about 5,800 listed), the first request for each of 1,000 tickers never asked before (latency
and the server's resident memory), grouped daily over every listed name (cold and cached), and
a year of the whole market's dividends through /stocks/v1. Prints the figures and writes
bench/results/simulator.json.

Run: ``.venv/bin/python bench/simulator.py`` (about two minutes; ``--market-tickers N`` to change
the 1,000).
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
from mdw.simulator import Market, minutes, paths
from mdw.simulator.encode import bars_json
from mdw.simulator.market import _daily_row

RESULTS = Path(__file__).resolve().parent / "results"
NOW = "2026-06-30"
TICKERS = ("AAPL", "MSFT", "NVDA", "AMZN", "META", "TSLA", "JPM", "SPY")
PAGE = 50_000


def _clear() -> None:
    minutes.day_minutes.cache_clear()
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


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _get(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[float, Any]:
    t0 = time.perf_counter()
    async with http.get(url, params=params, headers={"Authorization": "Bearer bench-key"}) as r:
        body = msgspec.json.decode(await r.read())
        assert r.status == 200, body
    return time.perf_counter() - t0, body


async def _market(base: str, pid: int, count: int) -> dict[str, Any]:
    """First requests for ``count`` never-asked tickers, memory, grouped daily and market-wide dividends."""
    async with aiohttp.ClientSession() as http:
        names: list[str] = []
        url: str | None = f"{base}/v3/reference/tickers"
        params: dict[str, str] = {"market": "stocks", "limit": "1000"}
        while url:
            _, body = await _get(http, url, **params)
            names.extend(r["ticker"] for r in body["results"])
            url, params = body.get("next_url"), {}
        sample = names[:: max(1, len(names) // count)][:count]
        rss_before = _rss_mb(pid)
        latencies = []
        # the last days before the data clock: pages that are not final are never cached, so the
        # resident memory shows the generator's own caches (all bounded), not the page cache
        week = "range/1/minute/2026-06-26/2026-06-29"
        for ticker in sample:  # one at a time: the latency of a cold ticker, not of a queue
            elapsed, _ = await _get(http, f"{base}/v2/aggs/ticker/{ticker}/{week}", limit="50000")
            latencies.append(elapsed * 1e3)
        rss_mid = _rss_mb(pid)
        for ticker in names[1:: max(1, len(names) // count)][:count]:
            await _get(http, f"{base}/v2/aggs/ticker/{ticker}/{week}", limit="50000")
        rss_after = _rss_mb(pid)
        grouped_url = f"{base}/v2/aggs/grouped/locale/us/market/stocks/2026-05-14"
        cold, body = await _get(http, grouped_url)
        warm, _ = await _get(http, grouped_url)
        t0 = time.perf_counter()
        rows, pages = 0, 0
        url, params = f"{base}/stocks/v1/dividends", {"limit": "5000", "ex_dividend_date.gte": "2025-01-01",
                                                      "ex_dividend_date.lte": "2025-12-31"}
        while url:
            _, divs = await _get(http, url, **params)
            rows, pages = rows + len(divs["results"]), pages + 1
            url, params = divs.get("next_url"), {}
        dividends_s = time.perf_counter() - t0
    latencies.sort()
    return {
        "listed_stocks": len(names),
        "first_request_tickers": len(sample),
        "first_request_ms_median": round(latencies[len(latencies) // 2], 1),
        "first_request_ms_p95": round(latencies[int(len(latencies) * 0.95)], 1),
        "rss_mb": {"before": round(rss_before, 1), f"after_{len(sample)}": round(rss_mid, 1),
                   f"after_{2 * len(sample)}": round(rss_after, 1)},
        "grouped_daily": {"rows": body.get("resultsCount", 0), "cold_ms": round(cold * 1e3, 1),
                          "cached_ms": round(warm * 1e3, 1)},
        "dividends_year": {"rows": rows, "pages": pages, "seconds": round(dividends_s, 2)},
    }


def main() -> None:
    count = int(sys.argv[sys.argv.index("--market-tickers") + 1]) if "--market-tickers" in sys.argv else 1000
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
        report["market"] = asyncio.run(_market(base, proc.pid, count))
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
    mk = report["market"]
    print(
        f"market:     {mk['listed_stocks']:,} listed; first request for {mk['first_request_tickers']:,} new "
        f"tickers {mk['first_request_ms_median']} ms median, {mk['first_request_ms_p95']} ms p95; RSS "
        f"{' -> '.join(str(v) for v in mk['rss_mb'].values())} MB"
    )
    g, d = mk["grouped_daily"], mk["dividends_year"]
    print(f"grouped:    {g['rows']:,} rows, {g['cold_ms']} ms cold, {g['cached_ms']} ms cached")
    print(f"dividends:  a year of the market, {d['rows']:,} rows in {d['pages']} pages, {d['seconds']} s")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "simulator.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS / 'simulator.json'}")


if __name__ == "__main__":
    main()
