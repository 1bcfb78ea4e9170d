"""Scaling curves: mdw's wall time and peak memory as the ticker count and the history length grow.

1. Tickers: 10 -> 100 -> 1000 stocks, daily bars over ``--daily-days`` sessions and 5-minute bars
   over ``--intraday-days`` days (short ranges, so the curve fits the benchmark budget).
2. History: one stock's 1-minute bars over 1 -> 5 -> 10 years (the extended-hours session).
   Memory must stay flat in history length: pages stream from the vendor to the store.

Every point is a fresh ``mdw`` backfill (default settings, unlimited plan) in its own process, into
a fresh SQLite file, against the simulator in its own process (30 ms latency, 1000 listed stocks);
the peak RSS is that process's high-water mark. Plots ``docs/img/scaling.png``.

Run: ``.venv/bin/python bench/scaling.py [--tickers 10,100,1000] [--years 1,5,10]``; writes
``bench/results/scaling.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from common import END, ROOT, SimProcess, peak_rss_mb, rss_mb, write_result

PLOT = ROOT / "docs" / "img" / "scaling.png"


def _tickers(n: int) -> list[str]:
    from mdw.domain import AssetClass
    from mdw.simulator import Market

    return Market(42, n_stocks=1000).universe(AssetClass.STOCKS)[:n]


async def _point(
    base_url: str, key: str, db_url: str, tickers: list[str], timeframe: str, days: int
) -> dict[str, Any]:
    from mdw.backfill.plan import BackfillSpec
    from mdw.backfill.runner import run_backfill
    from mdw.config import load_settings
    from mdw.domain import parse_tickers, parse_timeframes
    from mdw.polygon import PolygonClient
    from mdw.store import open_store

    settings = load_settings(
        polygon_api_key=key, polygon_base_url=base_url, database_url=db_url, rate_limit="unlimited"
    )
    spec = BackfillSpec(
        tuple(parse_tickers(tickers)),
        tuple(parse_timeframes([timeframe])),
        END - timedelta(days=days - 1),
        END,
    )
    began = time.perf_counter()
    async with await open_store(db_url) as store, PolygonClient.from_settings(settings) as client:
        report = await run_backfill(store, client, spec, rate_limit="unlimited")
    return {
        "wall_s": time.perf_counter() - began,
        "bars": report.bars_written,
        "requests": report.requests,
        "status": report.status,
    }


def worker(args: argparse.Namespace) -> None:
    tickers = args.point_tickers.split(",")
    before = rss_mb()
    result = asyncio.run(_point(args.base_url, args.key, args.db, tickers, args.timeframe, args.days))
    result.update(rss_before_mb=before, peak_rss_mb=peak_rss_mb())
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")


def run_point(
    sim: SimProcess, tmp: Path, tickers: list[str], timeframe: str, days: int, note: str = ""
) -> dict[str, Any]:
    label = f"{len(tickers)}x{timeframe}x{days}{'w' if note else ''}"
    out, db = tmp / f"{label}.json", f"sqlite:///{tmp / (label + '.db')}"
    sim.reset()
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--base-url",
        sim.base_url,
        "--key",
        sim.key,
        "--db",
        db,
        "--point-tickers",
        ",".join(tickers),
        "--timeframe",
        timeframe,
        "--days",
        str(days),
        "--out",
        str(out),
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    result: dict[str, Any] = json.loads(out.read_text())
    result.update(
        tickers=len(tickers), timeframe=timeframe, days=days, bars_per_s=result["bars"] / result["wall_s"]
    )
    print(
        f"   {len(tickers):>5} tickers x {timeframe:<3} x {days:>5} days: {result['bars']:>10,} bars "
        f"{result['requests']:>5} requests {result['wall_s']:>7.1f} s {result['bars_per_s']:>9,.0f} bars/s "
        f"peak {result['peak_rss_mb']:>5.0f} MB ({result['status']}{', ' + note if note else ''})",
        flush=True,
    )
    return result


def plot(data: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ((t_ax, m_ax), (th_ax, mh_ax)) = plt.subplots(2, 2, figsize=(8, 5.6), dpi=110)
    for tf, marker in (("1d", "o"), ("5m", "s")):
        pts = [p for p in data["tickers"] if p["timeframe"] == tf]
        if not pts:
            continue
        label = f"{tf} bars x {pts[0]['days']} days"
        t_ax.plot([p["tickers"] for p in pts], [p["wall_s"] for p in pts], marker=marker, label=label)
        m_ax.plot([p["tickers"] for p in pts], [p["peak_rss_mb"] for p in pts], marker=marker, label=label)
    hist = data["history"]
    years = [p["days"] / 365 for p in hist]
    th_ax.plot(years, [p["wall_s"] for p in hist], marker="^", color="tab:green", label="1 stock, 1m bars")
    mh_ax.plot(
        years, [p["peak_rss_mb"] for p in hist], marker="^", color="tab:green", label="1 stock, 1m bars"
    )
    for ax in (t_ax, m_ax):
        ax.set_xscale("log")
        ax.set_xlabel("tickers")
    for ax in (th_ax, mh_ax):
        ax.set_xlabel("years of history")
    for ax, ylabel in (
        (t_ax, "wall time (s)"),
        (th_ax, "wall time (s)"),
        (m_ax, "peak RSS (MiB)"),
        (mh_ax, "peak RSS (MiB)"),
    ):
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("mdw backfill scaling (simulator, 30 ms latency, SQLite, unlimited plan)", fontsize=9)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", default="10,100,1000", help="ticker counts")
    parser.add_argument("--daily-days", type=int, default=10, help="days of daily bars per ticker point")
    parser.add_argument("--intraday-days", type=int, default=2, help="days of 5m bars per ticker point")
    parser.add_argument("--years", default="1,5,10", help="years of 1m history of one ticker")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("--base-url", "--key", "--db", "--point-tickers", "--timeframe", "--out"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    began = time.perf_counter()
    counts = [int(x) for x in args.tickers.split(",")]
    universe = _tickers(max(counts))
    data: dict[str, Any] = {"tickers": [], "history": []}
    with (
        SimProcess(extra=["--stocks", "1000"]) as sim,
        tempfile.TemporaryDirectory(prefix="mdw-scale-") as tmp,
    ):
        # The simulator builds a day's grouped-daily listing for its whole universe on first use;
        # one discarded point pays that (and its other caches) off the clock for every daily point.
        run_point(sim, Path(tmp), universe[:10], "1d", args.daily_days, "warm-up, discarded")
        print("tickers grow:", flush=True)
        for tf, days in (("1d", args.daily_days), ("5m", args.intraday_days)):
            for n in counts:
                data["tickers"].append(run_point(sim, Path(tmp), universe[:n], tf, days))
        print("history grows (one ticker, 1m bars):", flush=True)
        for years in (int(y) for y in args.years.split(",")):
            point = run_point(sim, Path(tmp), ["AAPL"], "1m", 365 * years)
            data["history"].append(point)
            Path(tmp, f"1x1mx{365 * years}.db").unlink(missing_ok=True)
    hist = data["history"]
    growth = [p["peak_rss_mb"] - p["rss_before_mb"] for p in hist]
    data["memory_flat"] = {
        "peak_growth_mb": growth,
        "last_over_first": growth[-1] / growth[0] if growth[0] else None,
        "bars_last_over_first": hist[-1]["bars"] / hist[0]["bars"],
    }
    print(
        f"memory in history length: peak RSS growth {', '.join(f'{g:.0f}' for g in growth)} MB for "
        f"{', '.join(str(p['days'] // 365) for p in hist)} years = "
        f"{data['memory_flat']['last_over_first']:.2f}x "
        f"while the bars grew {data['memory_flat']['bars_last_over_first']:.1f}x",
        flush=True,
    )
    plot(data)
    data["seconds"] = time.perf_counter() - began
    data["plot"] = str(PLOT.relative_to(ROOT))
    write_result("scaling", data)
    print(f"scaling took {data['seconds']:.0f} s; plot {data['plot']}", flush=True)


if __name__ == "__main__":
    main()
