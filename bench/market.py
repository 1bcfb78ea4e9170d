"""Market-scale benchmark: tickers drawn from the simulator's universe, against the vendor's own pager.

Measured side by side in one run, against a simulator process (30 ms latency, data clock pinned):

1. Requests / minimal pages: N stocks drawn (seeded) from the simulator's universe x 1m and 1d x
   one month (June 2025), where the minimal pages are what the vendor's own pagination needs: one
   ``next_url`` pager per series with ``limit=50000``, counted by the simulator (target <= 1.02).
   Also a thin-and-liquid mix over a year (1m and 1h), where cutting at the calendar's largest
   minute count (the planner before issue #16) is shown beside it.
2. Wall / (requests / R) at R = 100/min (the pacing), with the simulator's count of 429s.
3. Bars/s stored end to end, unlimited (SQLite).
4. Corporate actions of the same N tickers over a year: the planner's listings (``/stocks/v1``,
   ``ticker.any_of`` or market-wide) against one request per ticker and kind, unlimited (both
   run) and at 100/min (the per-ticker time at R is its request count / R).

Run: ``.venv/bin/python bench/market.py [--tickers 1000] [--small]``; writes
``bench/results/market.json``. ``--small`` (100 tickers, the first 50 of them in the 100/min
month) is what ``make bench`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LATENCY_MS, SimProcess, fmt_ratio, write_result
from mdw.backfill import BackfillSpec, run_backfill
from mdw.backfill.fetch import ActionsRoute, fetch_actions
from mdw.backfill.plan import MAX_BASE, ActionsRequest
from mdw.backfill.planner import base_units, final_end
from mdw.domain import Ticker, parse_timeframes, to_ms
from mdw.plans import Limits, Plan
from mdw.polygon import Pacing, PolygonClient
from mdw.simulator import Market
from mdw.store import open_store

FIRST, LAST = date(2025, 6, 2), date(2025, 6, 30)
NOW = to_ms("2025-07-02T00:00:00Z")  # common.SIM_NOW
YEAR_FIRST = date(2024, 7, 1)
UNIVERSE = 8000
SEED = 16
IN_FLIGHT = 16


def draw(n: int, first: date = YEAR_FIRST) -> list[str]:
    """``n`` stocks listed from ``first`` to the end of the month, drawn (seeded) from the universe."""
    market = Market(42, now_ms=NOW, n_stocks=UNIVERSE)
    names = sorted(r.ticker for r in market.listings() if r.market in ("stocks", "otc")
                   and r.start <= first and (r.end is None or r.end > LAST))
    return sorted(random.Random(SEED).sample(names, n))


def thin_and_liquid(n: int) -> list[str]:
    market = Market(42, now_ms=NOW, n_stocks=UNIVERSE)
    listed = [r for r in market.listings() if r.market == "stocks" and not r.legacy
              and r.start <= date(2024, 1, 1) and (r.end is None or r.end > LAST)]
    thin = sorted(r.ticker for r in listed if 0.02 < r.trades_per_min < 0.5)
    return [*random.Random(SEED).sample(thin, n), "AAPL", "X:BTCUSD"]


def spec(tickers: list[str], timeframes: str, first: date, last: date, **kw: Any) -> BackfillSpec:
    from mdw.domain import parse_ticker

    tfs = tuple(parse_timeframes(timeframes)) if timeframes else ()
    return BackfillSpec(tuple(parse_ticker(t) for t in tickers), tfs, first, last, **kw)


async def pager_pages(sim: SimProcess, s: BackfillSpec) -> int:
    """The pages the vendor's own ``next_url`` pager needs for every series of ``s``."""
    before = int(sim.stats()["requests"])
    gate = asyncio.Semaphore(IN_FLIGHT)
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited", max_in_flight=IN_FLIGHT)) as c:

        async def one(tk: Ticker, tf: Any) -> None:
            rng = s.wanted_for(tk)
            end = min(rng.end_ms, final_end(tk.asset_class, tf, NOW))
            async with gate:
                async for _ in c.aggregate_pages(tk.symbol, tf, rng.start_ms, end):
                    pass

        await asyncio.gather(*(one(tk, tf) for tk in s.tickers for tf in s.timeframes))
    return int(sim.stats()["requests"]) - before


def calendar_cut(s: BackfillSpec) -> int:
    """Requests when every gap is cut at the calendar's largest count (the planner before #16)."""
    total = 0
    for tk in s.tickers:
        for tf in s.timeframes:
            rng = s.wanted_for(tk)
            end = min(rng.end_ms, final_end(tk.asset_class, tf, NOW))
            total += math.ceil(base_units(tk.asset_class, tf, type(rng)(rng.start_ms, end)) / MAX_BASE)
    return total


async def backfill(sim: SimProcess, s: BackfillSpec, rate: str) -> dict[str, Any]:
    """One run into a fresh SQLite file: wall, requests (the simulator's count), 429s, bars."""
    before = sim.stats()
    limits = Limits(Plan.parse(f"history=all,delay=0,rate={rate}"), margin_ms=0)
    with tempfile.TemporaryDirectory(prefix="mdw-market-") as tmp:
        async with await open_store(f"sqlite:///{tmp}/m.db") as store:
            pacing = Pacing(rate, max_in_flight=IN_FLIGHT)
            async with PolygonClient(sim.key, sim.base_url, pacing=pacing) as client:
                t0 = time.perf_counter()
                report = await run_backfill(store, client, s, now=NOW, limits=limits)
                wall = time.perf_counter() - t0
    after = sim.stats()
    by_endpoint = {k: int(v) - int(before["requests_by_endpoint"].get(k, 0))
                   for k, v in after["requests_by_endpoint"].items()}
    return {"wall_s": round(wall, 2), "requests": int(after["requests"]) - int(before["requests"]),
            "by_endpoint": {k: v for k, v in sorted(by_endpoint.items()) if v},
            "rate_limited": int(after["rate_limited"]) - int(before["rate_limited"]),
            "bars": report.bars_fetched, "status": str(report.status),
            "bars_per_s": round(report.bars_fetched / wall) if wall else 0}


async def per_ticker_actions(sim: SimProcess, tickers: list[str]) -> dict[str, Any]:
    """The old way: one listing per ticker and kind (16 in flight), unlimited."""
    from mdw.backfill.planner import _plan_actions  # the covers the planner would ask for

    one = _plan_actions(spec(tickers[:1], "1d", YEAR_FIRST, LAST, corporate_actions=True), {}, NOW)[0]
    before = int(sim.stats()["requests"])
    gate = asyncio.Semaphore(IN_FLIGHT)
    route = ActionsRoute()
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited", max_in_flight=IN_FLIGHT)) as c:

        async def fetch(t: str, kind: str) -> int:
            async with gate:
                req = ActionsRequest(t, "dividends" if kind == "dividends" else "splits", one.covers)
                return sum(len(v) for v in (await fetch_actions(c, req, route)).values())

        t0 = time.perf_counter()
        rows = await asyncio.gather(*(fetch(t, k) for t in tickers for k in ("dividends", "splits")))
        wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 2), "requests": int(sim.stats()["requests"]) - before, "rows": sum(rows)}


async def main(args: argparse.Namespace) -> None:
    tickers = draw(args.tickers)
    mix = thin_and_liquid(args.thin)
    month = spec(tickers, "1m,1d", FIRST, LAST)
    paced_month = spec(tickers[:args.paced_tickers], "1m,1d", FIRST, LAST) if args.paced_tickers else month
    year = spec(mix, "1m,1h", date(2024, 1, 1), date(2024, 12, 31), grouped_daily=False)
    actions = spec(tickers, "", YEAR_FIRST, LAST, corporate_actions=True)
    out: dict[str, Any] = {"tickers": len(tickers), "month": f"{FIRST}..{LAST}", "timeframes": "1m,1d",
                           "latency_ms": LATENCY_MS, "in_flight": IN_FLIGHT, "legs_s": {}}
    began = time.perf_counter()

    def lap(leg: str) -> str:
        out["legs_s"][leg] = round(time.perf_counter() - began, 1)
        return f"[{out['legs_s'][leg]:.0f} s]"

    with SimProcess(extra=["--stocks", str(UNIVERSE)]) as sim:
        minimal = await pager_pages(sim, month)
        paced_minimal = minimal if paced_month is month else await pager_pages(sim, paced_month)
        unlimited = await backfill(sim, month, "unlimited")
        out["month_unlimited"] = {**unlimited, "vendor_pager_pages": minimal,
                                  "requests_per_minimal_page": round(unlimited["requests"] / minimal, 3)}
        print(f"{len(tickers)} tickers x 1m,1d x {FIRST}..{LAST}: vendor pager pages {minimal}; "
              f"mdw unlimited: {unlimited['requests']} requests "
              f"({fmt_ratio(unlimited['requests'] / minimal)} of the pages), {unlimited['wall_s']} s, "
              f"{unlimited['bars']:,} bars, {unlimited['bars_per_s']:,} bars/s; by endpoint "
              f"{unlimited['by_endpoint']} {lap('month_unlimited')}", flush=True)
        mix_pages = await pager_pages(sim, year)
        mixed = await backfill(sim, year, "unlimited")
        out["thin_and_liquid_year"] = {**mixed, "tickers": mix, "vendor_pager_pages": mix_pages,
                                       "calendar_cut_requests": calendar_cut(year),
                                       "requests_per_minimal_page": round(mixed["requests"] / mix_pages, 3)}
        print(f"thin and liquid mix ({len(mix)} tickers x 1m,1h x 2024): pager pages {mix_pages}; mdw "
              f"{mixed['requests']} ({fmt_ratio(mixed['requests'] / mix_pages)}); calendar cut "
              f"{calendar_cut(year)} ({fmt_ratio(calendar_cut(year) / mix_pages)}) "
              f"{lap('thin_and_liquid_year')}", flush=True)
        listed = await backfill(sim, actions, "unlimited")
        each = await per_ticker_actions(sim, tickers)
        out["actions_unlimited"] = {"listings": listed, "per_ticker": each}
        print(f"corporate actions of {len(tickers)} tickers over {YEAR_FIRST}..{LAST}: listings "
              f"{listed['requests']} requests in {listed['wall_s']} s; per ticker {each['requests']} in "
              f"{each['wall_s']} s {lap('actions_unlimited')}", flush=True)
    with SimProcess(rate_limit="100/min", extra=["--stocks", str(UNIVERSE)]) as sim:
        # the listings first: after the month's requests the key's window (shared by every client
        # on the host) would hold them back for up to a minute
        listed_paced = await backfill(sim, actions, "100/min")
        out["actions_100_per_min"] = {
            "listings": listed_paced,
            "per_ticker_requests_over_rate_s": round(each["requests"] / (100 / 60), 1)}
        print(f"corporate actions at 100/min: listings {listed_paced['requests']} requests in "
              f"{listed_paced['wall_s']} s; per ticker {each['requests']} requests = "
              f"{each['requests'] / (100 / 60):.0f} s at R {lap('actions_100_per_min')}", flush=True)
        paced = await backfill(sim, paced_month, "100/min")
        ideal = paced["requests"] / (100 / 60)
        out["month_100_per_min"] = {**paced, "tickers": len(paced_month.tickers),
                                    "wall_per_requests_over_rate": round(paced["wall_s"] / ideal, 3),
                                    "vendor_pager_pages": paced_minimal,
                                    "requests_per_minimal_page": round(paced["requests"] / paced_minimal, 3)}
        print(f"at 100/min, {len(paced_month.tickers)} tickers: {paced['requests']} requests in "
              f"{paced['wall_s']} s = "
              f"{paced['wall_s'] / ideal:.2f} x requests/R, {paced['rate_limited']} 429s, "
              f"{paced['bars_per_s']:,} bars/s; by endpoint {paced['by_endpoint']} "
              f"{lap('month_100_per_min')}", flush=True)
    path = write_result("market", out)
    print(f"wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickers", type=int, default=1000, help="stocks drawn from the universe")
    parser.add_argument("--thin", type=int, default=8, help="thin names in the yearly mix (plus AAPL, BTC)")
    parser.add_argument("--paced-tickers", type=int, default=0,
                        help="the first N of the tickers in the 100/min month (default: all)")
    parser.add_argument("--small", action="store_true",
                        help="100 tickers, 4 thin names, 50 of them at 100/min (make bench)")
    ns = parser.parse_args()
    if ns.small:
        ns.tickers, ns.thin, ns.paced_tickers = 100, 4, 50
    from mdw.logs import configure

    configure("WARNING")
    asyncio.run(main(ns))
