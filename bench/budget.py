"""The host's shared rate budget on SQLite: a table in the warehouse, or a file beside it.

All hold the same state (mdw.budget.policy) and differ only in how processes serialise: a table
in the warehouse file (``BEGIN IMMEDIATE`` takes the database's one write lock, which a bar write
also holds), the same table in a small SQLite file beside the warehouse (what mdw ships), or a
JSON file under ``flock``. Each is measured idle and
while another process commits 50,000-bar pages to the same warehouse back to back: median and
p99 microseconds per reservation of one grant (one request's cost, answered at once).

Run: ``.venv/bin/python bench/budget.py [--grants 400]``; writes ``bench/results/budget.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mdw.budget.policy import Rules, reserve
from mdw.domain import RangeSet, Timeframe, TimeRange
from mdw.simulator.market import Market
from mdw.store import BarWrite, open_store
from mdw.store.budget import BudgetPlan, SqliteBudget

RESULTS = Path(__file__).parent / "results" / "budget.json"
RULES = Rules(1e6, 60.0, horizon_s=1e9, spacing_cap_s=0.0)  # never waits: measures the mechanism


class LockFile:
    """The alternative: the same state in a JSON file, serialised by flock."""

    def __init__(self, path: str) -> None:
        self.path = path

    def reserve(self) -> None:
        with open(self.path, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            raw = f.read()
            state, res = reserve(json.loads(raw) if raw else {}, time.time(), RULES, want=1,
                                 answered=[], successes=0)
            state, _ = reserve(state, time.time(), RULES, want=0, answered=[i for i, _ in res.grants],
                               successes=0)
            f.seek(0)
            f.truncate()
            f.write(json.dumps(state))
            f.flush()


def _writer(url: str, stop: Any) -> None:
    """Commit minute-bar pages to the warehouse until told to stop (a backfill's write load)."""
    async def run() -> None:
        market = Market(seed=1)
        tf = Timeframe.parse("1m")
        store = await open_store(url)
        day, i = 86_400_000, 0
        start = 1_704_067_200_000
        try:
            while not stop.is_set():
                lo = start + i * 35 * day
                batch = market.aggregates("AAPL", tf, lo, lo + 35 * day)
                await store.write_bars([BarWrite(batch, RangeSet.of([TimeRange(lo, lo + 35 * day)]))])
                i += 1
        finally:
            await store.close()

    asyncio.run(run())


async def _table(path: str, grants: int) -> list[float]:
    budget = SqliteBudget(path)
    await budget.register("bench", BudgetPlan(RULES.configured, RULES.period_s), "bench", idle_s=0)
    out = []
    try:
        for _ in range(grants):
            t0 = time.perf_counter()
            res = await budget.update("bench", lambda st, now: reserve(st, now, RULES, want=1, answered=[],
                                                                        successes=0))
            ids = [i for i, _ in res.grants]
            await budget.update("bench", lambda st, now, ids=ids: reserve(
                st, now, RULES, want=0, answered=ids, successes=0))
            out.append(time.perf_counter() - t0)
    finally:
        await budget.close()
    return out


def _file(path: str, grants: int) -> list[float]:
    lock = LockFile(path)
    out = []
    for _ in range(grants):
        t0 = time.perf_counter()
        lock.reserve()
        out.append(time.perf_counter() - t0)
    return out


def _summary(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"median_us": round(statistics.median(s) * 1e6, 1),
            "p99_us": round(s[int(len(s) * 0.99)] * 1e6, 1), "max_us": round(s[-1] * 1e6, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grants", type=int, default=400)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "w.db")
        url = f"sqlite:///{path}"
        asyncio.run(_migrate(url))
        result: dict[str, Any] = {"grants": args.grants}
        for load in ("idle", "bar_writes"):
            side_db = path + f"-{load}-side"
            stop = multiprocessing.Event()
            writer = (multiprocessing.Process(target=_writer, args=(url, stop)) if load == "bar_writes"
                      else None)
            if writer is not None:
                writer.start()
                time.sleep(2.0)  # into its steady state
            try:
                table = asyncio.run(_table(path, args.grants))
                beside = asyncio.run(_table(side_db, args.grants))
                side = _file(path + ".budget", args.grants)
            finally:
                if writer is not None:
                    stop.set()
                    writer.join(timeout=30)
            result[load] = {"table_in_warehouse": _summary(table), "sqlite_file_beside": _summary(beside),
                            "json_lock_file": _summary(side)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for load in ("idle", "bar_writes"):
        for how, figs in result[load].items():
            print(f"{load:10s} {how:19s} median {figs['median_us']:>9.1f} us  p99 {figs['p99_us']:>9.1f} us  "
                  f"max {figs['max_us']:>9.1f} us")
    print(f"wrote {RESULTS}")


async def _migrate(url: str) -> None:
    store = await open_store(url)
    await store.close()


if __name__ == "__main__":
    main()
