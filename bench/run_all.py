"""``make bench``: every benchmark script, each within a time budget, then every ratio and the total.

The throttled comparison (100/min and 5/min) spends nearly all its time waiting on the simulated
vendor's rate window, so it starts first and runs in the background while the CPU-bound scripts
run one after another. Scripts that do not exist (yet) are skipped and listed. Each script writes
``bench/results/<name>.json``; the ratios printed at the end are read back from those files.

Run: ``.venv/bin/python bench/run_all.py [--only compare,scaling]``. Exit code 1 if a script failed
or ran out of its budget, or if the whole run took more than ``--limit`` seconds (1200:
20 minutes, the house limit).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


@dataclass(frozen=True)
class Script:
    """One benchmark: its file, arguments, budget in seconds and the result files it writes."""

    name: str
    file: str
    args: tuple[str, ...] = ()
    budget_s: float = 120.0
    results: tuple[str, ...] = ()
    background: bool = False

    @property
    def command(self) -> str:
        return " ".join([".venv/bin/python", f"bench/{self.file}", *self.args])


# Budgets are about 1.5x each script's time on a quiet host, so a slow script is stopped before it
# eats the others' time; they add up to about 1,255 s of foreground, and the quiet-host times they
# were sized from (about two thirds of that) fit --limit (1200 s), which bounds the measured total.
# A host at load average ~15 takes 2-3x longer and overruns some.
SCRIPTS = (
    Script("compare-throttled", "compare.py", ("--part", "throttled"), 240, ("compare_throttled",), True),
    Script("simulator", "simulator.py", (), 60, ("simulator",)),
    Script("vendor", "vendor.py", (), 25, ("vendor",)),
    Script("store", "store.py", ("--rows", "400000", "--years", "3", "--rounds", "1"), 50, ("store",)),
    Script("backfill", "backfill.py", (), 150, ("backfill",)),
    Script("serve", "serve.py", ("--repeat", "3", "--seconds", "6"), 65, ("serve",)),
    Script("encode", "encode.py", ("--small",), 15, ("encode",)),
    Script("budget", "budget.py", ("--grants", "300"), 20, ("budget",)),
    Script("scale_out", "scale_out.py", ("--small",), 120, ("scale_out",)),
    Script("compare", "compare.py", ("--part", "unthrottled"), 180, ("compare_unthrottled",)),
    Script("scaling", "scaling.py", ("--tickers", "10,100,500", "--years", "1,2,4"), 90, ("scaling",)),
    Script("columnar", "columnar.py", ("--tickers", "5"), 60, ("columnar",)),
    Script("flatfiles", "flatfiles.py", ("--small",), 85, ("flatfiles",)),
    Script("stream", "stream.py", ("--small",), 25, ("stream",)),
    Script("market", "market.py", ("--small",), 160, ("market",)),
    Script("universe", "universe.py", ("--small",), 120, ("universe",)),
    Script("startup", "startup.py", ("--small",), 30, ("startup",)),
)


@dataclass
class Outcome:
    script: Script
    status: str = "skipped"
    seconds: float = 0.0


def _start(script: Script) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MDW_LOG_LEVEL": os.environ.get("MDW_LOG_LEVEL", "WARNING")}
    cmd = [sys.executable, str(BENCH / script.file), *script.args]
    return subprocess.Popen(cmd, cwd=BENCH.parent, env=env, start_new_session=True)


def _finish(proc: subprocess.Popen[bytes], outcome: Outcome, began: float) -> None:
    budget = outcome.script.budget_s - (time.monotonic() - began)
    try:
        code = proc.wait(timeout=max(1.0, budget))
        outcome.status = "ok" if code == 0 else f"failed (exit {code})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 15)  # the script's own process group: its simulators and workers too
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        outcome.status = f"over budget ({outcome.script.budget_s:.0f} s), stopped"
    outcome.seconds = time.monotonic() - began


def ratios(data: Any, prefix: str = "") -> list[tuple[str, float]]:
    """Every number in a results file whose key names a ratio (``ratio``, ``_vs_``, ``_over_``)."""
    out: list[tuple[str, float]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                named = any(tag in str(key) for tag in ("ratio", "_vs_", "_over_", "speedup"))
                if named and not str(key).endswith("_s"):  # n_over_r_s is seconds, not a ratio
                    out.append((path, float(value)))
            else:
                out.extend(ratios(value, path))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out.extend(ratios(value, f"{prefix}[{i}]"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated script names to run (default: all)")
    parser.add_argument("--limit", type=float, default=1200.0, help="the whole run's budget in seconds")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else None
    began = time.monotonic()
    outcomes: list[Outcome] = []
    background: list[tuple[threading.Thread, Outcome]] = []
    for script in SCRIPTS:
        outcome = Outcome(script)
        outcomes.append(outcome)
        if wanted is not None and script.name not in wanted:
            outcome.status = "not selected"
            continue
        if not (BENCH / script.file).exists():
            outcome.status = "skipped (script missing)"
            continue
        print(f"\n##### {script.name}: {script.command} (budget {script.budget_s:.0f} s)", flush=True)
        started = time.monotonic()
        proc = _start(script)
        if script.background:
            watcher = threading.Thread(target=_finish, args=(proc, outcome, started), daemon=True)
            watcher.start()
            background.append((watcher, outcome))
            continue
        _finish(proc, outcome, started)
        print(f"##### {script.name}: {outcome.status} in {outcome.seconds:.0f} s", flush=True)
    for watcher, outcome in background:
        watcher.join()
        name = outcome.script.name
        print(f"##### {name} (background): {outcome.status} in {outcome.seconds:.0f} s", flush=True)
    total = time.monotonic() - began
    print("\n##### summary", flush=True)
    for o in outcomes:
        print(f"  {o.script.name:<18} {o.status:<32} {o.seconds:>6.0f} s   {o.script.command}")
        if o.status != "ok":
            continue
        for name in o.script.results:
            path = RESULTS / f"{name}.json"
            if path.exists():
                for key, value in ratios(json.loads(path.read_text())):
                    print(f"      {name}: {key} = {value:.3f}")
    print(f"total {total:.0f} s (limit {args.limit:.0f} s) on {os.cpu_count()} cores", flush=True)
    failed = [o for o in outcomes if o.status not in ("ok", "not selected", "skipped (script missing)")]
    return 1 if failed or total > args.limit else 0


if __name__ == "__main__":
    sys.exit(main())
