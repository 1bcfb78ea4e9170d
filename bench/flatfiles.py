"""Flat files vs REST: the simulator's whole stock universe, a month of 1-minute bars, into SQLite.

Contenders, each in a fresh process with a fresh SQLite database (the default store), against one
simulator in its own process whose files and pages are generated before anything is timed:

- ``flatfiles``: ``mdw backfill --source flatfiles`` (the minute files, two in flight);
- ``rest``: ``--source rest`` on an unlimited plan (one request per ticker, 16 in flight);
- ``rest-100/min``: the same requests paced at 100/min. Its wall time is the limiter's floor for
  that many requests (``RateLimit.seconds_for``, which the pacing benchmark measures mdw at within
  4% of), not a run: at 100/min the whole universe takes longer than ``make bench`` may.

Also measured, side by side in this run, on the first three files: the decoder alone on one core
(rows/s of CPU time, the files in memory, best of three), and the store's own raw write rate for
the same rows (decoded beforehand, each file's blocks gathered into chunks of the ingest's
``ROWS_PER_WRITE``, about 250,000 rows a transaction, into an empty SQLite file) against the
flat-file ingest of the same files end to end (download, decode, screen, write, record the day).
After one warm-up round of each leg (not counted), the legs alternate for ``--rounds`` rounds
(7; 5 with ``--small``), the order flipped every round, so the host's load falls on both alike;
the ratio ingest/raw write is taken per round (the two legs of a round run back to back) and
reported per round and as the median, with the load average before and after. The raw write is
``Store.write_market``, the store's bulk write that the ingest itself writes with; the per-series
``write_bars`` (the REST path's) of the same rows is measured in the same rounds for reference.
CPU time (every thread of the process) is reported beside wall time: it moves less with the
host's load.

Run: ``.venv/bin/python bench/flatfiles.py`` (the simulator's default universe, about 4,600 stocks
listed in March 2024, and 21 sessions: the simulator alone needs about 20 minutes to synthesise
that month for both contenders), ``--small`` (500 securities, 2 sessions: what ``make bench``
runs), or ``--stocks N --days D``.
Writes ``bench/results/flatfiles.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
KEY_ID, SECRET = "sim-flatfiles-key", "sim-flatfiles-secret"
FIRST = date(2024, 3, 1)
PREFIX = "us_stocks_sip/minute_aggs_v1"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _backfill(
    base: str, source: str, tickers: list[str], first: date, last: date, now_ms: int,
) -> dict[str, Any]:
    from mdw.backfill.fileplan import CostModel
    from mdw.backfill.plan import BackfillSpec
    from mdw.backfill.runner import run_backfill
    from mdw.config import RateLimit, load_settings
    from mdw.domain import parse_tickers, parse_timeframes
    from mdw.flatfiles.s3 import FlatFileClient
    from mdw.polygon import PolygonClient
    from mdw.store import open_store

    spec = BackfillSpec(tuple(parse_tickers(tickers)), tuple(parse_timeframes("1m")), first, last,
                        source=source)  # type: ignore[arg-type]
    settings = load_settings(polygon_api_key="test-key", polygon_base_url=base, rate_limit="unlimited",
                             max_in_flight=16)
    files = FlatFileClient(base, KEY_ID, SECRET)
    with tempfile.TemporaryDirectory() as tmp:
        async with await open_store(f"sqlite:///{tmp}/bench.db") as store, \
                PolygonClient.from_settings(settings) as client:
            started = time.perf_counter()
            report = await run_backfill(store, client, spec, files=files, now=now_ms, track=False,
                                        cost=CostModel(RateLimit.parse("unlimited")))
            wall = time.perf_counter() - started
            rest_bytes = client.stats().bytes_received
    stored = report.bars_inserted + report.bars_updated + report.bars_unchanged
    return {"wall_s": wall, "status": str(report.status), "rest_requests": report.requests,
            "rest_bytes": rest_bytes, "file_requests": report.files.get("requests", 0),
            "file_bytes": report.files.get("bytes", 0), "files": report.files.get("done", 0),
            "files_s": report.files.get("seconds", 0.0), "bars": report.bars_fetched, "stored": stored,
            "db_s": report.db_s}


async def _decode_and_raw_write(base: str, keys: list[str], rounds: int) -> dict[str, Any]:
    """The decoder alone (one core); the flat-file ingest against the store's raw writes of the same rows."""
    from mdw.backfill.filerun import run_files
    from mdw.backfill.ingest import ROWS_PER_WRITE
    from mdw.backfill.plan import PlannedFile
    from mdw.backfill.report import RunReport
    from mdw.domain import MarketBars, RangeSet, Timeframe
    from mdw.flatfiles.decode import DecodeStats, decode
    from mdw.flatfiles.keys import parse_key
    from mdw.flatfiles.s3 import FlatFileClient
    from mdw.store import BarWrite, open_store
    from mdw.store.base import RunKind

    client = FlatFileClient(base, KEY_ID, SECRET)
    blobs = []
    for key in keys:
        info = await client.head(key)
        blobs.append(b"".join([c async for c in client.download(info)]))
    best = math.inf
    rows = 0
    for _ in range(3):
        cpu0 = time.process_time()
        stats = DecodeStats()
        for blob in blobs:
            for _block in decode(io.BytesIO(blob), Timeframe(1, "m"), stats=stats):
                pass
        best = min(best, time.process_time() - cpu0)
        rows = stats.rows

    # Each file's blocks gathered until a chunk holds ROWS_PER_WRITE rows: the largest chunks the
    # ingest writes (it writes what is decoded when the store is free, up to that size).
    chunks: list[MarketBars] = []
    for blob in blobs:
        part: list[MarketBars] = []
        for block in decode(io.BytesIO(blob), Timeframe(1, "m")):
            part.append(block.bars)
            if sum(map(len, part)) >= ROWS_PER_WRITE:
                chunks.append(MarketBars.concat(part))
                part = []
        if part:
            chunks.append(MarketBars.concat(part))
    batches = [b for chunk in chunks for b in chunk.normalised().batches()]

    async def raw_market() -> tuple[float, float]:
        """The store's bulk write (``write_market``, what the ingest writes with) of the decoded rows."""
        with tempfile.TemporaryDirectory() as tmp:
            async with await open_store(f"sqlite:///{tmp}/raw.db") as store:
                cpu0, started = time.process_time(), time.perf_counter()
                for chunk in chunks:
                    await store.write_market(chunk)
                return time.perf_counter() - started, time.process_time() - cpu0

    async def raw_bars() -> tuple[float, float]:
        """The store's per-series write (``write_bars``, the REST path's) of the same rows, same chunks."""
        with tempfile.TemporaryDirectory() as tmp:
            async with await open_store(f"sqlite:///{tmp}/raw.db") as store:
                cpu0, started = time.process_time(), time.perf_counter()
                chunk: list[BarWrite] = []
                size = 0
                for b in batches:
                    chunk.append(BarWrite(b, RangeSet()))
                    size += len(b)
                    if size >= ROWS_PER_WRITE:
                        await store.write_bars(chunk)
                        chunk, size = [], 0
                if chunk:
                    await store.write_bars(chunk)
                return time.perf_counter() - started, time.process_time() - cpu0

    planned = []
    for key in keys:
        parsed = parse_key(key)
        assert parsed is not None
        planned.append(PlannedFile(parsed[0], parsed[1], await client.head(key)))

    async def ingest() -> tuple[float, float]:
        with tempfile.TemporaryDirectory() as tmp:
            async with await open_store(f"sqlite:///{tmp}/ingest.db") as store:
                cpu0, started = time.process_time(), time.perf_counter()
                report = RunReport(run_id="bench", kind=RunKind.BACKFILL)
                await run_files(client, store, planned, report)
                elapsed = time.perf_counter() - started, time.process_time() - cpu0
                assert report.bars_inserted == rows, (report.bars_inserted, rows)
                return elapsed

    legs = {"raw_market": raw_market, "ingest": ingest, "raw_bars": raw_bars}
    for leg in legs.values():  # warm-up, not counted: first-use costs (threads, connections, imports)
        await leg()
    load_before = os.getloadavg()
    per_round: list[dict[str, float]] = []
    for r in range(rounds):
        order = list(legs) if r % 2 == 0 else list(reversed(legs))  # flipped: drift falls on both
        got: dict[str, float] = {}
        for name in order:
            got[f"{name}_s"], got[f"{name}_cpu_s"] = await legs[name]()
        per_round.append(got)
        wall_x = got["raw_market_s"] / got["ingest_s"]
        cpu_x = got["raw_market_cpu_s"] / got["ingest_cpu_s"]
        print(f"  round {r + 1}: raw write {got['raw_market_s']:.2f} s, ingest {got['ingest_s']:.2f} s: "
              f"{wall_x:.3f}x (CPU {cpu_x:.3f}x); write_bars {got['raw_bars_s']:.2f} s; "
              f"load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    wall_ratios = [g["raw_market_s"] / g["ingest_s"] for g in per_round]
    cpu_ratios = [g["raw_market_cpu_s"] / g["ingest_cpu_s"] for g in per_round]
    bars_ratios = [g["raw_bars_s"] / g["ingest_s"] for g in per_round]

    def med(name: str) -> float:
        return statistics.median(g[name] for g in per_round)

    return {"decode_rows": rows, "decode_cpu_s": best, "decode_rows_per_s": rows / best,
            "raw_write_rows_per_s": rows / med("raw_market_s"), "raw_write_s": med("raw_market_s"),
            "raw_write_cpu_s": med("raw_market_cpu_s"),
            "raw_write_bars_rows_per_s": rows / med("raw_bars_s"),
            "raw_write_bars_cpu_s": med("raw_bars_cpu_s"),
            "ingest_rows_per_s": rows / med("ingest_s"), "ingest_s": med("ingest_s"),
            "ingest_cpu_s": med("ingest_cpu_s"),
            "ingest_vs_raw_write_rounds": [round(x, 3) for x in wall_ratios],
            "ingest_vs_raw_write_cpu_rounds": [round(x, 3) for x in cpu_ratios],
            "ingest_vs_raw_write": statistics.median(wall_ratios),
            "ingest_vs_raw_write_cpu": statistics.median(cpu_ratios),
            "ingest_vs_raw_write_bars": statistics.median(bars_ratios),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in load_after],
            "rounds": rounds, "files": len(keys), "bytes": sum(map(len, blobs))}


def child(args: argparse.Namespace) -> None:
    params = json.loads(args.child)
    if params["what"] == "decode":
        out = asyncio.run(_decode_and_raw_write(params["base"], params["keys"], params["rounds"]))
    else:
        out = asyncio.run(_backfill(params["base"], params["what"], params["tickers"],
                                    date.fromisoformat(params["first"]), date.fromisoformat(params["last"]),
                                    params["now_ms"]))
    out["peak_rss_mb"] = _peak_mb()
    print(json.dumps(out))


async def _run_child(params: dict[str, Any]) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(sys.executable, __file__, "--child", json.dumps(params),
                                                stdout=subprocess.PIPE, cwd=ROOT)
    out, _ = await proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{params['what']} failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def _warm_rest(base: str, tickers: list[str], first: date, last: date) -> None:
    """Every ticker's month once, unpaced, so the REST contender is not timing the simulator's synthesis."""
    from mdw.domain import NEW_YORK, day_range_ms
    from mdw.polygon import Pacing, PolygonClient

    rng = day_range_ms(first, last, NEW_YORK)
    queue = list(tickers)
    async with PolygonClient("test-key", base, pacing=Pacing("unlimited", max_in_flight=8)) as client:
        async def worker() -> None:
            while queue:
                ticker = queue.pop()
                async for _ in client.aggregate_pages(ticker, "1m", rng.start_ms, rng.end_ms):
                    pass

        await asyncio.gather(*(worker() for _ in range(8)))


async def main(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from flatfile_sim import flatfile_simulator
    from mdw.config import RateLimit
    from mdw.domain import NEW_YORK, local_midnight_ms
    from mdw.flatfiles.keys import dataset_named

    load_before = [round(x, 2) for x in os.getloadavg()]
    print(f"load average before: {load_before}", flush=True)
    ds = dataset_named(PREFIX)
    days = ds.days(FIRST, FIRST + timedelta(days=args.days * 2 + 14))[: args.days]
    first, last = days[0], days[-1]
    now = last + timedelta(days=3)
    async with flatfile_simulator(args.stocks or None, now) as (base, files):
        from mdw.polygon import Pacing, PolygonClient

        async with PolygonClient("test-key", base, pacing=Pacing("unlimited")) as rest:
            tickers = sorted(str(r["ticker"]) for r in await rest.tickers(market="stocks"))
        keys = [ds.key(d) for d in days]
        t0 = time.perf_counter()
        sizes = await files.warm(keys)
        await _warm_rest(base, tickers, first, last)
        print(f"{len(tickers)} stocks, {len(days)} sessions ({first} .. {last}), "
              f"{sum(sizes.values()) / 1e6:.1f} MB of minute files; simulator warmed in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        now_ms = local_midnight_ms(now, NEW_YORK)
        common = {"base": base, "tickers": tickers, "first": first.isoformat(), "last": last.isoformat(),
                  "now_ms": now_ms}
        results: dict[str, dict[str, Any]] = {}
        for name in ("flatfiles", "rest"):
            results[name] = await _run_child({**common, "what": name})
            r = results[name]
            print(f"{name:<10} wall {r['wall_s']:.2f} s, bars {r['bars']:,}, "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
        decode = await _run_child({"base": base, "keys": keys[: min(3, len(keys))], "what": "decode",
                                   "rounds": args.rounds})
    rest = results["rest"]
    paced = RateLimit.parse("100/min").seconds_for(rest["rest_requests"])
    flat = results["flatfiles"]
    ingest_rate = decode["ingest_rows_per_s"]
    rows = [
        {"contender": "flatfiles", "wall_s": round(flat["wall_s"], 2), "bytes": flat["file_bytes"],
         "requests": flat["file_requests"], "bars": flat["bars"],
         "rows_per_s_stored": round(flat["stored"] / flat["wall_s"]),
         "peak_rss_mb": round(flat["peak_rss_mb"])},
        {"contender": "rest (unlimited)", "wall_s": round(rest["wall_s"], 2), "bytes": rest["rest_bytes"],
         "requests": rest["rest_requests"], "bars": rest["bars"],
         "rows_per_s_stored": round(rest["stored"] / rest["wall_s"]),
         "peak_rss_mb": round(rest["peak_rss_mb"])},
        {"contender": "rest (100/min, limiter floor)", "wall_s": round(max(paced, rest["wall_s"]), 1),
         "bytes": rest["rest_bytes"], "requests": rest["rest_requests"], "bars": rest["bars"],
         "rows_per_s_stored": round(rest["stored"] / max(paced, rest["wall_s"])), "peak_rss_mb": None},
    ]
    summary = {
        "stocks": len(tickers), "sessions": len(days), "first": first.isoformat(), "last": last.isoformat(),
        "contenders": rows,
        "decode_rows_per_s_one_core": round(decode["decode_rows_per_s"]),
        "decode_rows": decode["decode_rows"],
        "raw_write_rows_per_s": round(decode["raw_write_rows_per_s"]),
        "ingest_rows_per_s": round(ingest_rate),
        "ingest_vs_raw_write": round(decode["ingest_vs_raw_write"], 3),
        "ingest_vs_raw_write_rounds": decode["ingest_vs_raw_write_rounds"],
        "ingest_vs_raw_write_cpu": round(decode["ingest_vs_raw_write_cpu"], 3),
        "ingest_vs_raw_write_cpu_rounds": decode["ingest_vs_raw_write_cpu_rounds"],
        "raw_write_bars_rows_per_s": round(decode["raw_write_bars_rows_per_s"]),
        "ingest_vs_raw_write_bars": round(decode["ingest_vs_raw_write_bars"], 3),
        "side_by_side_rounds": decode["rounds"],
        "side_by_side_files": decode["files"],
        "side_by_side_load_before": decode["load_before"],
        "side_by_side_load_after": decode["load_after"],
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "file_bytes_per_s": round(flat["file_bytes"] / flat["files_s"]) if flat["files_s"] else 0,
        "speedup_vs_rest_unlimited": round(rest["wall_s"] / flat["wall_s"], 2),
        "speedup_vs_rest_100_per_min": round(max(paced, rest["wall_s"]) / flat["wall_s"], 1),
    }
    print(f"{'contender':<31} {'wall s':>8} {'MB':>8} {'requests':>9} {'bars':>11} {'rows/s stored':>14} "
          f"{'peak RSS MB':>12}")
    for r in rows:
        rss = "-" if r["peak_rss_mb"] is None else str(r["peak_rss_mb"])
        print(f"{r['contender']:<31} {r['wall_s']:>8} {r['bytes'] / 1e6:>8.1f} {r['requests']:>9} "
              f"{r['bars']:>11,} {r['rows_per_s_stored']:>14,} {rss:>12}")
    print(f"decode, one core: {summary['decode_rows_per_s_one_core']:,} rows/s "
          f"({summary['decode_rows']:,} rows, best of 3)")
    print(f"store raw write (write_market, the bulk write the ingest uses): "
          f"{summary['raw_write_rows_per_s']:,} rows/s; flat-file ingest end to end: "
          f"{summary['ingest_rows_per_s']:,} rows/s (medians of {summary['side_by_side_rounds']} alternated "
          f"rounds, {summary['side_by_side_files']} files)")
    print(f"ingest / raw write, wall: median {summary['ingest_vs_raw_write']}x, per round "
          f"{', '.join(map(str, summary['ingest_vs_raw_write_rounds']))}")
    print(f"ingest / raw write, CPU:  median {summary['ingest_vs_raw_write_cpu']}x, per round "
          f"{', '.join(map(str, summary['ingest_vs_raw_write_cpu_rounds']))}")
    print(f"store per-series write (write_bars, the REST path's): "
          f"{summary['raw_write_bars_rows_per_s']:,} rows/s; "
          f"ingest = {summary['ingest_vs_raw_write_bars']}x that (median)")
    print(f"load average (1, 5, 15 min): side by side {summary['side_by_side_load_before']} -> "
          f"{summary['side_by_side_load_after']}; "
          f"whole run {summary['load_before']} -> {summary['load_after']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "flatfiles.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stocks", type=int, default=0, help="universe size (default: the simulator's)")
    parser.add_argument("--days", type=int, default=21, help="trading sessions from 2024-03-01")
    parser.add_argument("--small", action="store_true", help="500 securities, 2 sessions (make bench)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="alternated rounds of the raw writes and the ingest (default 7; 5 with --small)")
    parser.add_argument("--child", default="")
    ns = parser.parse_args()
    if ns.child:
        child(ns)
    else:
        if ns.small:
            ns.stocks, ns.days = ns.stocks or 500, 2
        ns.rounds = ns.rounds or (5 if ns.small else 7)
        asyncio.run(main(ns))
