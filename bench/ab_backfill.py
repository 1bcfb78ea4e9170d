"""A/B of the standard backfill workload: two checkouts of mdw, measured alternately on one host.

Absolute times on a shared two-core host move with its load, so a before/after claim needs both
versions measured side by side. Each round runs the standard workload (25 tickers x 5m..1d x 365
days, unlimited plan, 16 in flight) once with checkout A's code and once with checkout B's, each in
a child process on that checkout's own ``.venv``, against ONE simulator (checkout B's ``mdw
simulate --seed 42 --stocks 300``, started once, so both versions ask the same warm vendor). Per
run the child measures, in this order:

- a raw concurrent fetch of the same pages (decoded, nothing stored): the floor for the pipeline;
- the run end to end into a fresh PostgreSQL database: wall, the writer's time in the store
  (``db_s``), this process's CPU time and the CPU time the server's backends spent on the run
  (after the migrations; read from ``/proc``, so the server must run on this host);
- the same run into a fresh SQLite file: wall, ``db_s`` and CPU time.

CPU seconds are the figure that load moves least (a busy host stretches wall time, not the work
done); ``e2e_over_raw_fetch`` divides out part of the load too. The comparison is on medians.
Each child loads its checkout's ``bench/backfill.py`` for the workload, the raw fetch and the
client's construction, so each version runs its own code throughout.

Run: ``.venv/bin/python bench/ab_backfill.py --a /path/to/old/checkout --rounds 3`` (B is this
checkout; ``--venv-a`` borrows a virtualenv for a checkout without one, whose ``src`` then comes
first on ``PYTHONPATH``); writes ``bench/results/ab_backfill.json``. A round takes about two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

RESULTS = Path(__file__).parent / "results" / "ab_backfill.json"
PG = os.environ.get("MDW_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
# (field, lower is better)
FIELDS = (
    ("raw_fetch_s", True), ("pg_wall_s", True), ("pg_db_s", True), ("pg_cpu_s", True),
    ("pg_server_cpu_s", True), ("pg_over_raw_fetch", True), ("sqlite_wall_s", True),
    ("sqlite_db_s", True), ("sqlite_cpu_s", True), ("sqlite_over_raw_fetch", True),
)


# ---------------------------------------------------------------------------------- the child


def _load(script: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("mdw_bench_backfill", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _client(bench: ModuleType, key: str, base: str) -> Any:
    """The unlimited client with 16 in flight, as this checkout's bench builds it."""
    if hasattr(bench, "Pacing"):
        return bench.PolygonClient(key, base, pacing=bench.Pacing("unlimited", max_in_flight=16))
    return bench.PolygonClient(key, base, rate_limit="unlimited", max_in_flight=16)


def _spec(bench: ModuleType) -> Any:
    kind = bench.RunKind.BACKFILL if hasattr(bench, "RunKind") else "bench"
    return replace(bench.standard_spec(bench.END, corporate_actions=False), kind=kind)


async def _server_cpu(url: str) -> dict[int, float]:
    """CPU seconds so far of each server backend connected to ``url``'s database, by pid."""
    import asyncpg

    conn = await asyncpg.connect(PG)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", url.rsplit("/", 1)[1])
    finally:
        await conn.close()
    return {int(pid): _cpu_of(int(pid)) for (pid,) in rows}


def _cpu_of(pid: int) -> float:
    """utime + stime of a local process, in seconds (0 for a backend on another host, or gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def child(script: Path, base: str, key: str) -> dict[str, float]:
    bench = _load(script)
    spec = _spec(bench)
    # The trading calendar once, as a long-running process has it (bench/backfill.py does the same).
    now = int(time.time() * 1000)
    await asyncio.to_thread(lambda: bench.minimal_requests(bench.standard_spec(bench.END), now))
    with tempfile.TemporaryDirectory() as tmp:
        store = await bench.open_store(f"sqlite:///{tmp}/plan.db")
        requests = list((await bench.plan_only(store, spec)).requests)
        await store.close()
    await bench.raw_fetch(base, key, requests, 16)  # the first pass warms this process
    started = time.process_time()
    raw_s, raw_bars = await bench.raw_fetch(base, key, requests, 16)
    out: dict[str, float] = {"raw_fetch_s": raw_s,
                             "raw_fetch_cpu_s": time.process_time() - started}
    url = await bench.fresh_pg(PG)
    try:
        store = await bench.open_store(url)
        before = await _server_cpu(url)  # the migrations' share is not the run's
        started = time.process_time()
        async with _client(bench, key, base) as client:
            report = await bench.run_backfill(store, client, spec, rate_limit="unlimited")
        out["pg_cpu_s"] = time.process_time() - started
        after = await _server_cpu(url)
        out["pg_server_cpu_s"] = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
        await store.close()
    finally:
        await bench.drop_pg(PG, url)
    assert report.status == "ok" and report.bars_fetched == raw_bars, (report.status, report.bars_fetched)
    out.update(requests=report.requests, bars=report.bars_fetched, pg_wall_s=report.wall_s,
               pg_db_s=report.db_s, pg_over_raw_fetch=(report.wall_s - report.plan_s) / raw_s,
               transactions=report.transactions)
    with tempfile.TemporaryDirectory() as tmp:
        store = await bench.open_store(f"sqlite:///{tmp}/std.db")
        started = time.process_time()
        async with _client(bench, key, base) as client:
            lite = await bench.run_backfill(store, client, spec, rate_limit="unlimited")
        out["sqlite_cpu_s"] = time.process_time() - started
        await store.close()
    assert lite.status == "ok", lite.status
    out.update(sqlite_wall_s=lite.wall_s, sqlite_db_s=lite.db_s,
               sqlite_over_raw_fetch=(lite.wall_s - lite.plan_s) / raw_s)
    return out


# --------------------------------------------------------------------------------- the parent


def _env(checkout: Path) -> dict[str, str]:
    # The checkout's own src first: a venv borrowed from another checkout then runs this one's code.
    return {**os.environ, "MDW_LOG_LEVEL": "WARNING", "PYTHONPATH": str(checkout / "src")}


def start_simulator(checkout: Path, venv: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [str(venv / "bin" / "mdw"), "simulate", "--port", "0", "--seed", "42", "--stocks", "300"],
        stdout=subprocess.PIPE, text=True, env=_env(checkout),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line.split("listening on ", 1)[1].strip()


def run_child(checkout: Path, venv: Path, base: str) -> dict[str, float]:
    before = os.getloadavg()[0]
    out = subprocess.run(
        [str(venv / "bin" / "python"), __file__, "--child", str(checkout / "bench" / "backfill.py"),
         "--base", base],
        cwd=checkout, capture_output=True, text=True, check=False, env=_env(checkout),
    )
    if out.returncode != 0:
        raise SystemExit(f"{checkout}: the child failed:\n{out.stderr[-3000:]}")
    row: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    row["load_before"] = before
    return row


def _commit(checkout: Path) -> str:
    return subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, help="the checkout measured first in each round (before)")
    parser.add_argument("--b", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the checkout measured second (after; its simulator serves both)")
    parser.add_argument("--venv-a", type=Path, help="A's virtualenv (default: A's .venv)")
    parser.add_argument("--venv-b", type=Path, help="B's virtualenv (default: B's .venv)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, args.base, "test-key"))))
        return
    if args.a is None:
        parser.error("--a is required")
    sides = {"a": args.a.resolve(), "b": args.b.resolve()}
    venvs = {"a": (args.venv_a or sides["a"] / ".venv").resolve(),
             "b": (args.venv_b or sides["b"] / ".venv").resolve()}
    runs: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
    sim, base = start_simulator(sides["b"], venvs["b"])
    try:
        for i in range(args.rounds):
            for side, checkout in sides.items():
                row = run_child(checkout, venvs[side], base)
                runs[side].append(row)
                print(
                    f"round {i + 1} {side}: raw fetch {row['raw_fetch_s']:.2f} s;"
                    f" PG {row['pg_wall_s']:.2f} s (db {row['pg_db_s']:.2f} s, CPU {row['pg_cpu_s']:.2f} s"
                    f" + server {row['pg_server_cpu_s']:.2f} s, /raw {row['pg_over_raw_fetch']:.2f});"
                    f" SQLite {row['sqlite_wall_s']:.2f} s (db {row['sqlite_db_s']:.2f} s,"
                    f" CPU {row['sqlite_cpu_s']:.2f} s, /raw {row['sqlite_over_raw_fetch']:.2f});"
                    f" {row['requests']:.0f} requests, {row['bars']:,.0f} bars;"
                    f" load {row['load_before']:.1f}",
                    flush=True,
                )
    finally:
        sim.terminate()
        sim.wait()
    summary = {
        side: {k: {"median": statistics.median(r[k] for r in rows), "min": min(r[k] for r in rows),
                   "max": max(r[k] for r in rows)} for k in (*(f for f, _ in FIELDS), "load_before")}
        for side, rows in runs.items()
    }
    print(f"\n{'median (min-max)':24s} {'a':>22s} {'b':>22s}   b/a")
    for k, _ in FIELDS:
        a, b = summary["a"][k], summary["b"][k]
        print(f"{k:24s} {a['median']:8.2f} ({a['min']:5.2f}-{a['max']:5.2f})"
              f" {b['median']:8.2f} ({b['min']:5.2f}-{b['max']:5.2f})   {b['median'] / a['median']:.3f}")
    result = {
        "a": {"checkout": str(sides["a"]), "commit": _commit(sides["a"])},
        "b": {"checkout": str(sides["b"]), "commit": _commit(sides["b"])},
        "rounds": args.rounds, "runs": runs, "summary": summary,
        "b_over_a_median": {k: summary["b"][k]["median"] / summary["a"][k]["median"] for k, _ in FIELDS},
        "python": sys.version.split()[0], "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
