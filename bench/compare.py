"""Side by side: mdw against what users would pick instead, on the same workload and the same simulator.

Contenders (``bench/peers/``): ``mdw`` with its default settings (only the plan's rate, the vendor
URL/key and the store are given), ``original`` (the original system's algorithm, its choices
kept), ``official`` (a script around the ``massive`` client as its docs show it), and ``raw``
(the floor: a raw concurrent fetch of mdw's pages, decoded, nothing stored). The physical limit
of a throttled run is the minimal request count divided by the rate R.

Each contender runs in its own process against its own simulator process (30 ms latency, rate
limit R per sliding 60 s window, the data clock pinned), into its own fresh store. Unthrottled and
1000/min runs go one after another (they are CPU-bound); the 100/min and 5/min runs are mostly
waiting on the window, so all six of them run at once, each still with its own simulator.

Run: ``.venv/bin/python bench/compare.py [--part unthrottled|throttled|all] [--pg] [--standard]``;
writes ``bench/results/compare_<part>.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from common import (
    FREE,
    SCALED,
    STANDARD,
    WORKLOADS,
    SimProcess,
    Workload,
    count_rows,
    fmt_ratio,
    fresh_pg,
    ground_truth,
    pg_available,
    ratio,
    write_result,
)
from mdw.config import RateLimit

PEERS = ("original", "official")


def _launch(
    name: str, sim: SimProcess, db: str, workload: Workload, rate: str, out: Path
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--base-url",
        sim.base_url,
        "--key",
        sim.key,
        "--db",
        db,
        "--workload",
        workload.name,
        "--rate",
        rate,
        "--out",
        str(out),
    ]
    return subprocess.Popen(cmd)


def _db(stack: ExitStack, store: str, tmp: Path, label: str) -> str:
    if store == "postgres":
        return stack.enter_context(fresh_pg())
    return f"sqlite:///{tmp / (label + '.db')}"


def run_case(
    workload: Workload,
    rate: str,
    contenders: tuple[str, ...],
    store: str = "sqlite",
    concurrent: bool = False,
    truth: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Run ``contenders`` on ``workload`` at ``rate``; each gets its own simulator and store."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mdw-bench-") as tmpdir, ExitStack() as stack:
        tmp = Path(tmpdir)
        pending: list[tuple[str, SimProcess, str, subprocess.Popen[bytes], Path]] = []
        for name in contenders:
            sim = stack.enter_context(SimProcess(rate_limit=rate))
            db = _db(stack, store, tmp, name)
            out = tmp / f"{name}.json"
            pending.append((name, sim, db, _launch(name, sim, db, workload, rate, out), out))
            if not concurrent:
                _collect(pending.pop(), results)
        for item in pending:
            _collect(item, results)
    raw = results.get("raw") or results.get("raw+insert") or {}
    expected = sum(truth.values()) if truth else raw.get("bars_decoded")
    for r in results.values():
        r["complete"] = ratio(r.get("bars_stored"), expected) if "bars_stored" in r else None
        r["bars_per_s"] = ratio(r.get("bars_stored", r.get("bars_decoded")), r.get("wall_s"))
    return {
        "workload": workload.to_dict(),
        "rate_limit": rate,
        "store": store,
        "concurrent": concurrent,
        "expected_bars": expected,
        "contenders": results,
    }


def _collect(
    item: tuple[str, SimProcess, str, subprocess.Popen[bytes], Path], results: dict[str, Any]
) -> None:
    name, sim, db, proc, out = item
    code = proc.wait()
    stats = sim.stats()
    result: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {"error": f"exit {code}"}
    result["exit_code"] = code
    result["requests"] = stats["requests_by_key"].get(sim.key, 0)
    result["http_429"] = stats["rate_limited"]
    result["sim_bars_served"] = stats["bars_served"]
    result["sim_max_served_60s"] = stats["max_served_60s_by_key"].get(sim.key, 0)
    result["sim_cpu_s"] = sim.cpu_s()
    if not name.startswith("raw"):
        result["bars_stored"] = sum(count_rows(db).values())
    sim.stop()
    results[name] = result


def limits(case: dict[str, Any], n_min: int | None, floor_s: float | None = None) -> None:
    """Add the physical limit and every ratio to a finished case (in place).

    The limit is the later of two bounds: the rate's, ``(ceil(N / R) - 1)`` windows for the minimal
    request count N (the sliding window lets R requests start at once: ``RateLimit.seconds_for``),
    and the floor, a raw concurrent fetch of the same pages measured in the same run. ``N / R`` (the
    sustained-rate reading) is reported next to it.
    """
    rate = RateLimit.parse(case["rate_limit"])
    c = case["contenders"]
    raw = c.get("raw") or c.get("raw+insert") or {}
    floor = raw.get("wall_s", floor_s)
    bound = rate.seconds_for(n_min) if n_min is not None else 0.0
    n_over_r = None if rate.unlimited or n_min is None else n_min * rate.period / rate.requests
    limit = max(bound, floor or 0.0) or None
    case["limit"] = {
        "seconds": limit,
        "minimal_requests": n_min,
        "rate_bound_s": bound,
        "floor_s": floor,
        "n_over_r_s": n_over_r,
        "kind": "raw concurrent fetch of the same pages (measured)"
        if (floor or 0) >= bound
        else "(ceil(minimal requests / R) - 1) windows",
    }
    mdw = c.get("mdw", {}).get("wall_s")
    case["ratios"] = {
        "mdw_vs_limit": ratio(mdw, limit),
        "mdw_vs_n_over_r": ratio(mdw, n_over_r),
        **{f"{p}_vs_mdw": ratio(c[p].get("wall_s"), mdw) for p in PEERS if p in c},
    }
    if "raw_insert" in raw and "mdw" in c:
        ins = raw["raw_insert"]
        case["ingest"] = {
            "mdw_end_to_end_bars_per_s": c["mdw"]["bars_per_s"],
            "raw_insert_rows_per_s": ins["rows_per_s"],
            "raw_insert_how": ins["how"],
            "mdw_end_to_end_vs_raw_insert": ratio(c["mdw"]["bars_per_s"], ins["rows_per_s"]),
        }


def show(title: str, case: dict[str, Any]) -> None:
    print(
        f"\n== {title}: {case['workload']['name']} workload ({case['workload']['series']} series), "
        f"R = {case['rate_limit']}, {case['store']}"
        + (", contenders run at once" if case["concurrent"] else ""),
        flush=True,
    )
    print(
        f"   {'contender':<10}{'wall s':>9}{'requests':>10}{'429s':>7}{'bars/s':>11}{'complete':>10}"
        f"{'failed':>8}{'peak MB':>9}  ratio"
    )
    mdw = case["contenders"].get("mdw", {}).get("wall_s")
    for name, r in case["contenders"].items():
        rel = (
            ""
            if name == "mdw" or name.startswith("raw")
            else f"{fmt_ratio(ratio(r.get('wall_s'), mdw))} mdw's time"
        )
        if name == "mdw":
            rel = f"{fmt_ratio(case['ratios']['mdw_vs_limit'])} the limit"
            if case["ratios"]["mdw_vs_n_over_r"] is not None:
                rel += f", {fmt_ratio(case['ratios']['mdw_vs_n_over_r'])} N/R"
        complete = "" if r.get("complete") is None else f"{100 * r['complete']:.1f}%"
        print(
            f"   {name:<10}{r.get('wall_s', float('nan')):>9.1f}{r['requests']:>10}{r['http_429']:>7}"
            f"{(r.get('bars_per_s') or 0):>11,.0f}{complete:>10}{len(r.get('failed_series', [])):>8}"
            f"{r.get('peak_rss_mb', 0):>9.0f}  {rel}"
        )
    lim = case["limit"]
    if lim.get("seconds") is not None:
        extra = f"; minimal requests N = {lim['minimal_requests']}" if lim["minimal_requests"] else ""
        if lim["n_over_r_s"] is not None:
            extra += f", N/R = {lim['n_over_r_s']:.1f} s"
        print(f"   {'limit':<10}{lim['seconds']:>9.1f}{'':>10}  {lim['kind']}{extra}")
    ing = case.get("ingest")
    if ing:
        print(
            f"   ingestion: mdw end to end {ing['mdw_end_to_end_bars_per_s']:,.0f} bars/s vs raw insert "
            "of the same "
            f"rows alone ({ing['raw_insert_how']}) {ing['raw_insert_rows_per_s']:,.0f} rows/s = "
            f"{fmt_ratio(ing['mdw_end_to_end_vs_raw_insert'])}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part",
        choices=("unthrottled", "throttled", "all"),
        default="all",
        help="unthrottled: unlimited and 1000/min, one contender at a time; throttled: 100/min "
        "and 5/min, all at once (mostly waiting, so run_all overlaps it with other work)",
    )
    parser.add_argument(
        "--standard",
        action="store_true",
        help="also the full standard workload, mdw vs raw fetch (bench/backfill.py owns that figure)",
    )
    parser.add_argument("--pg", action="store_true", help="also the unthrottled side by side into PostgreSQL")
    for name in ("--worker", "--base-url", "--key", "--db", "--workload", "--out"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--rate", default="unlimited", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        from peers.contenders import run_worker

        result = run_worker(args.worker, args.base_url, args.key, args.db, args.workload, args.rate)
        Path(args.out).write_text(json.dumps(result, default=str), encoding="utf-8")
        return
    parts = ("unthrottled", "throttled") if args.part == "all" else (args.part,)
    for part in parts:
        run_part(part, args.standard, args.pg)


def run_part(part: str, standard: bool, pg: bool) -> None:
    began = time.perf_counter()
    truth: dict[str, dict[str, int]] = {}
    n_min: dict[str, int] = {}
    for w in (SCALED, FREE):
        truth[w.name], n_min[w.name] = ground_truth(w)
        print(
            f"[{part}] workload {w.name}: {w.note}; {sum(truth[w.name].values()):,} bars, "
            f"minimal requests {n_min[w.name]}",
            flush=True,
        )
    cases: dict[str, Any] = {}

    def record(key: str, title: str, case: dict[str, Any], wl: Workload, floor: float | None = None) -> None:
        limits(case, n_min.get(wl.name), floor)
        cases[key] = case
        show(f"[{part}] {title}", case)

    if part == "unthrottled":
        if standard:
            record(
                "standard_unlimited",
                "standard workload end to end vs raw fetch",
                run_case(STANDARD, "unlimited", ("mdw", "raw")),
                STANDARD,
            )
        scaled = truth[SCALED.name]
        unlimited = run_case(SCALED, "unlimited", ("mdw", "official", "raw+insert"), truth=scaled)
        r1000 = run_case(SCALED, "1000/min", ("mdw", "official"), truth=scaled)
        # The original spends most of its wall time in its own sleeps (stagger, pauses, 0.4 s
        # spacing), so its two runs overlap, each with its own simulator; noted in the results.
        originals = _concurrently(
            [
                (SCALED, "unlimited", ("original",), "sqlite", False, scaled),
                (SCALED, "1000/min", ("original",), "sqlite", False, scaled),
            ]
        )
        for case, extra in ((unlimited, originals[0]), (r1000, originals[1])):
            case["contenders"]["original"] = extra["contenders"]["original"]
            case["note"] = "the original's runs at unlimited and 1000/min ran at the same time as each other"
        record("unlimited", "side by side, unthrottled", unlimited, SCALED)
        floor = unlimited["limit"]["floor_s"]
        if pg and pg_available():
            record(
                "unlimited_pg",
                "side by side, unthrottled, PostgreSQL",
                run_case(
                    SCALED,
                    "unlimited",
                    ("mdw", "original", "official", "raw+insert"),
                    store="postgres",
                    truth=scaled,
                ),
                SCALED,
            )
        record("r1000", "side by side at 1000/min", r1000, SCALED, floor)
    else:
        r100, free = _concurrently(
            [
                (SCALED, "100/min", ("mdw", "original", "official"), "sqlite", True, truth[SCALED.name]),
                (FREE, "5/min", ("mdw", "original", "official"), "sqlite", True, truth[FREE.name]),
            ]
        )
        record("r100", "side by side at 100/min", r100, SCALED)
        record("free", "free tier 5/min", free, FREE)
    total = time.perf_counter() - began
    print(f"\n[{part}] compare took {total:.0f} s", flush=True)
    write_result(
        f"compare_{part}",
        {
            "workloads": {w.name: w.to_dict() for w in WORKLOADS.values()},
            "minimal_requests": n_min,
            "latency_ms": 30,
            "cases": cases,
            "seconds": total,
        },
    )


def _concurrently(calls: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Run several cases at once (each contender still has its own simulator and store)."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(run_case, *call) for call in calls]
        return [f.result() for f in futures]


if __name__ == "__main__":
    main()
