"""Planning a universe: a year of 1d and 1m bars for the simulator's ~5,700-name market, and a tenth.

Set-up (not timed as planning): the simulator's market (8,000 securities; ``--small``: the same)
runs in this process, its reference data is refreshed into a fresh SQLite file and the universe
``all`` (every stock, exchange-listed and OTC, delisted names included) is defined. Then each size
is planned in a fresh process of its own, so its memory is its own: the universe resolved as of
each day of 2024 (its members clipped to their listed days), then the backfill plan read against
the (empty) ledger, as ``mdw backfill --universe all -t 1d,1m --dry-run`` does. Measured per
size: resolution and planning seconds, requests planned, the process's peak RSS above what it
held before planning. The two sizes alternate in one run, so the ratio (tenfold tickers) is this
host's.

Run: ``.venv/bin/python bench/universe.py [--small]`` (``--small``: best of two plans per size
instead of three; a loaded host's time varies several-fold from one plan to the next).
Writes ``bench/results/universe.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import peak_rss_mb, write_result

FIRST, LAST = date(2024, 1, 1), date(2024, 12, 31)
SIM_TODAY = date(2025, 1, 15)
TIMEFRAMES = "1d,1m"
TARGET_S = 10.0
N_STOCKS = 8000  # the simulator's whole market: about 5,800 names listed at some time in 2024


async def _setup(db: Path) -> dict[str, Any]:
    from mdw.backfill.reference import refresh_tickers
    from mdw.backfill.universe import UniverseSpec
    from mdw.domain import NEW_YORK, local_midnight_ms
    from mdw.polygon import Pacing, PolygonClient
    from mdw.simulator import SimConfig, SimServer
    from mdw.store import open_store

    now = local_midnight_ms(SIM_TODAY, NEW_YORK)
    sim = SimServer(SimConfig(seed=42, keys={"k": "unlimited"}, now_ms=now, n_stocks=N_STOCKS))
    await sim.start()
    store = await open_store(f"sqlite:///{db}")
    try:
        began = time.perf_counter()
        async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as client:
            result = await refresh_tickers(store, client, today=SIM_TODAY)
        refresh_s = time.perf_counter() - began
        await store.universes.save("all", UniverseSpec(markets=("stocks", "otc")).to_json())
    finally:
        await store.close()
        await sim.stop()
    return {"refresh_s": round(refresh_s, 3), "refresh_requests": result.requests,
            "listings": result.listings}


async def _plan(db: Path, keep: int) -> dict[str, Any]:
    """One size, in this (fresh) process: resolve the universe over the year, keep ``keep`` members, plan."""
    from mdw import calendar_cache
    from mdw.backfill.members import universe_spec
    from mdw.backfill.runner import plan_only
    from mdw.domain import NEW_YORK, local_midnight_ms, parse_timeframes
    from mdw.store import open_store

    calendar_cache.install()  # the NYSE sessions from the disk cache, as every mdw command reads them
    store = await open_store(f"sqlite:///{db}")
    try:
        before = peak_rss_mb()
        began = time.perf_counter()
        spec = await universe_spec(store, _NoVendor(), "all", parse_timeframes(TIMEFRAMES), FIRST, LAST,
                                   today=SIM_TODAY)
        resolved = time.perf_counter()
        kept = spec.tickers[:keep] if keep else spec.tickers
        spec = replace(spec, tickers=kept, spans={t.symbol: spec.spans[t.symbol] for t in kept})
        plan = await plan_only(store, spec, now=local_midnight_ms(SIM_TODAY, NEW_YORK))
        done = time.perf_counter()
    finally:
        await store.close()
    kinds: dict[str, int] = {}
    for r in plan.requests:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    return {"tickers": len(spec.tickers), "resolve_s": round(resolved - began, 3),
            "plan_s": round(done - resolved, 3), "total_s": round(done - began, 3),
            "requests": plan.request_count, "by_kind": kinds, "series": len(plan.series),
            "peak_rss_mb": round(peak_rss_mb(), 1), "rss_before_mb": round(before, 1),
            "rss_growth_mb": round(peak_rss_mb() - before, 1)}


class _NoVendor:
    """Planning calls no vendor: the reference data is already stored (any call is a bug)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"planning called the vendor ({name})")


def _child(db: Path, keep: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", str(db), "--keep", str(keep)],
                         check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="best of two plans per size instead of three")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--keep", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_plan(Path(args.child), args.keep))))
        return
    repeats = 2 if args.small else 3
    with tempfile.TemporaryDirectory(prefix="mdw-bench-universe-") as tmp:
        db = Path(tmp) / "universe.db"
        setup = asyncio.run(_setup(db))
        sizes: dict[str, dict[str, Any]] = {}
        tenth_keep = 0
        for _ in range(repeats):  # alternated, so the host's load falls on both sizes alike
            full = _child(db, 0)
            tenth_keep = tenth_keep or max(1, full["tickers"] // 10)
            part = _child(db, tenth_keep)
            for name, got in (("full", full), ("tenth", part)):
                if name not in sizes or got["total_s"] < sizes[name]["total_s"]:
                    sizes[name] = got
    full, tenth = sizes["full"], sizes["tenth"]
    ratio_s = full["total_s"] / max(1e-9, tenth["total_s"])
    ratio_mb = full["rss_growth_mb"] / max(0.1, tenth["rss_growth_mb"])
    result = {
        "command": "bench/universe.py" + (" --small" if args.small else ""),
        "range": [FIRST.isoformat(), LAST.isoformat()], "timeframes": TIMEFRAMES, **setup,
        "full": full, "tenth": tenth, "ratio_time_full_over_tenth": round(ratio_s, 2),
        "ratio_memory_full_over_tenth": round(ratio_mb, 2), "target_s": TARGET_S,
        "within_target": full["total_s"] < TARGET_S,
    }
    write_result("universe", result)
    print(f"reference refresh: {setup['listings']:,} listings in {setup['refresh_requests']} requests, "
          f"{setup['refresh_s']:.2f} s")
    for name in ("tenth", "full"):
        s = sizes[name]
        print(f"{name:>5}: {s['tickers']:,} tickers x {TIMEFRAMES} over 2024: resolve {s['resolve_s']:.2f} s"
              f" + plan {s['plan_s']:.2f} s = {s['total_s']:.2f} s, {s['requests']:,} requests"
              f" {s['by_kind']},"
              f" RSS +{s['rss_growth_mb']:.0f} MiB (peak {s['peak_rss_mb']:.0f})")
    scale = full["tickers"] / tenth["tickers"]
    verdict = "within" if result["within_target"] else "OVER"
    print(f"ratio full/tenth: time x{ratio_s:.2f}, memory x{ratio_mb:.2f} for x{scale:.1f} tickers;"
          f" full {verdict} the {TARGET_S:.0f} s target")


if __name__ == "__main__":
    main()
