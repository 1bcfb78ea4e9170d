"""``mdw backfill`` and friends run as a subprocess against the simulator; data checked exactly."""

from __future__ import annotations

import asyncio
import json
import random
import signal
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from mdw.backfill import BackfillSpec, plan_only
from mdw.domain import parse_tickers, parse_timeframes, to_ms
from mdw.simulator import SimServer
from mdw.store import Dataset, Store

from .conftest import cli_env, mdw, start_mdw

SYMBOLS = "AAPL,SPY,X:BTCUSD"
TIMEFRAMES = "15m,1h,1d"
START, END = "2024-03-04", "2024-03-15"


def spec_of(symbols: str, timeframes: str, start: str, end: str) -> BackfillSpec:
    return BackfillSpec(
        tuple(parse_tickers(symbols)),
        tuple(parse_timeframes(timeframes)),
        date.fromisoformat(start),
        date.fromisoformat(end),
    )


def requests(sim: SimServer) -> int:
    return int(sim.stats()["requests"])


async def assert_exact(store: Store, sim: SimServer, spec: BackfillSpec) -> None:
    for tk in spec.tickers:
        rng = spec.wanted(tk.asset_class)
        for tf in spec.timeframes:
            got = await store.bars(tk.symbol, tf, rng.start_ms, rng.end_ms)
            assert got.equals(sim.market.aggregates(tk.symbol, tf, rng.start_ms, rng.end_ms)), f"{tk} {tf}"


async def assert_covered_exact(store: Store, sim: SimServer, spec: BackfillSpec) -> None:
    """Whatever the ledger says is held is exactly the vendor's data (a crash left no half batch)."""
    for tk in spec.tickers:
        for tf in spec.timeframes:
            for rng in await store.coverage(tk.symbol, Dataset.BARS, str(tf)):
                got = await store.bars(tk.symbol, tf, rng.start_ms, rng.end_ms)
                assert got.equals(sim.market.aggregates(tk.symbol, tf, rng.start_ms, rng.end_ms))


def backfill_args(
    symbols: str = SYMBOLS, timeframes: str = TIMEFRAMES, start: str = START, end: str = END, *extra: str
) -> list[str]:
    return [
        "backfill",
        "--symbols",
        symbols,
        "--timeframes",
        timeframes,
        "--start",
        start,
        "--end",
        end,
        *extra,
    ]


async def test_cli_backfill_equals_ground_truth_when_run_twice(
    db_url: str, sim: SimServer, opened: Any, tmp_path: Path
) -> None:
    """The CLI fills stocks, an ETF and crypto exactly; the identical second run makes no request."""
    env = cli_env(sim, db_url)
    report_file = tmp_path / "out" / "report.json"
    first = await mdw(*backfill_args(), "--report", str(report_file), env=env)
    assert first.code == 0, first.stderr
    report = json.loads(report_file.read_text())
    assert report["status"] == "ok" and report["requests"] == requests(sim) > 0
    assert {s["status"] for s in report["series"]} == {"ok"}
    assert "bars written" in first.stdout
    store = await opened(db_url)
    await assert_exact(store, sim, spec_of(SYMBOLS, TIMEFRAMES, START, END))
    before = requests(sim)
    second = await mdw(*backfill_args(), env=env)
    assert second.code == 0 and requests(sim) == before
    assert [r.status for r in (await store.runs.recent())[:2]] == ["ok", "ok"]


async def test_cli_dry_run_requests_nothing_when_count_equals_real_run(
    sqlite_url: str, sim: SimServer, tmp_path: Path
) -> None:
    """--dry-run calls nothing and says how sure its count is; the real run stays within its bounds.

    ETH's 1m and 1h over 36 days may need two pages each (the calendar's count) and are paged with
    ``next_url``; with the plan unknown one probe proves its history first."""
    env = cli_env(sim, sqlite_url)
    args = backfill_args("AAPL,X:ETHUSD", "1m,1h", "2024-01-02", "2024-02-06")
    plan_file = tmp_path / "plan.json"
    dry = await mdw(*args, "--dry-run", "--report", str(plan_file), env=env)
    assert dry.code == 0, dry.stderr
    assert requests(sim) == 0
    body = json.loads(plan_file.read_text())
    planned, estimate = body["requests"], body["estimate"]
    assert f"total requests: {planned}" in dry.stdout and planned == 7 == estimate["high"]
    assert estimate["low"] == 5 and estimate["sure"] == "bounded" and "how sure: 5-7 requests" in dry.stdout
    real = await mdw(*args, env=env)
    assert real.code == 0 and estimate["low"] <= requests(sim) <= estimate["high"]


async def test_cli_exits_1_when_one_ticker_is_not_found(
    sqlite_url: str, sim_factory: Any, opened: Any
) -> None:
    """A 404 ticker fails alone: the others complete, the report names it, and the exit code is 1."""
    sim = await sim_factory(keys={"k": "unlimited"}, not_found_tickers=frozenset({"NOPE"}))
    result = await mdw(*backfill_args("AAPL,NOPE,X:BTCUSD", "1h"), env=cli_env(sim, sqlite_url))
    assert result.code == 1, result.stderr
    assert "NOPE 1h" in result.stdout and "failed" in result.stdout
    await assert_exact(await opened(sqlite_url), sim, spec_of("AAPL,X:BTCUSD", "1h", START, END))


@pytest.mark.parametrize(
    "args",
    [
        ["backfill", "--symbols", "AAPL", "--timeframes", "7x", "--start", "2024-01-01"],
        ["backfill", "--symbols", "AAPL", "--start", "yesterday-ish"],
        ["backfill", "--symbols", "A$PL", "--start", "2024-01-01"],
        ["backfill", "--symbols", "AAPL", "--start", "2024-01-01", "--bogus"],
        ["backfill", "--symbols", "AAPL", "--start", "2024-01-01", "--rate-limit", "fast"],
        ["backfill", "--symbols", "AAPL", "--start", "2024-02-01", "--end", "2024-01-01"],
        ["backfill", "--symbols", "AAPL", "--start", "2024-01-01", "--database-url", "mysql://x"],
        ["export", "--symbols", "AAPL", "--start", "2024-01-01", "--format", "xlsx"],
        ["export", "--symbols", "AAPL", "--start", "2024-01-01", "-o", "/nonexistent-dir/x.csv"],
        ["corporate-actions", "--symbols", "AAPL", "--kind", "mergers"],
    ],
    ids=[
        "timeframe",
        "date",
        "ticker",
        "unknown-flag",
        "rate",
        "reversed-range",
        "db-url",
        "format",
        "output-dir",
        "kind",
    ],
)
async def test_cli_exits_2_with_one_line_when_flags_are_bad(args: list[str], sqlite_url: str) -> None:
    """Bad usage prints exactly one clear line on stderr and exits 2, never a traceback."""
    result = await mdw(*args, env=cli_env(None, sqlite_url, POLYGON_API_KEY="k"))
    assert result.code == 2, (result.stdout, result.stderr)
    lines = [ln for ln in result.stderr_lines if not ln.startswith("{") and "migration" not in ln]
    assert len(lines) == 1 and lines[0].startswith("mdw: error:"), result.stderr
    assert "Traceback" not in result.stderr


async def test_cli_resumes_exactly_when_killed_with_sigkill_at_seeded_moments(
    db_url: str, sim_factory: Any, opened: Any
) -> None:
    """kill -9 at three seeded moments, then a re-run: the data equals the ground truth, and the
    re-run requests exactly what the ledger says is missing (nothing already committed).

    Every response waits 400 ms, so a kill within 0.5 s of planning finds at most one wave of 4
    requests answered: the run is cut short however fast the machine (about 19 requests in all)."""
    sim = await sim_factory(keys={"k": "unlimited"}, latency_ms=400)
    symbols, tfs = "AAPL,MSFT,NVDA,SPY,X:BTCUSD,X:ETHUSD", "5m,1h,1d"
    args = backfill_args(symbols, tfs, "2024-01-02", "2024-04-30", "--no-grouped")
    env = cli_env(sim, db_url, MDW_RATE_LIMIT="60/s", MDW_MAX_IN_FLIGHT="4")
    spec = spec_of(symbols, tfs, "2024-01-02", "2024-04-30")
    rng = random.Random(20240601)
    for _ in range(3):
        run = await start_mdw(*args, env=env)
        await asyncio.wait_for(run.planned.wait(), 60)
        await asyncio.sleep(rng.uniform(0.05, 0.5))
        await run.signal(signal.SIGKILL)
        assert (await run.finish()).code == -signal.SIGKILL
        store = await opened(db_url)
        await assert_covered_exact(store, sim, spec)
    store = await opened(db_url)
    missing = (await plan_only(store, spec)).request_count
    assert missing > 0
    before = requests(sim)
    final = await mdw(*args, env=env)
    assert final.code == 0, final.stderr
    assert requests(sim) - before == missing
    await assert_exact(store, sim, spec)


async def test_cli_sigint_exits_130_with_partial_report_when_interrupted(
    sqlite_url: str, sim_factory: Any, opened: Any, tmp_path: Path
) -> None:
    """SIGINT stops fetching, commits what was fetched, prints the partial report and exits 130."""
    sim = await sim_factory(keys={"k": "unlimited"}, latency_ms=10)
    symbols, tfs = "AAPL,MSFT,X:BTCUSD,X:ETHUSD", "15m,1h"
    args = backfill_args(symbols, tfs, "2024-01-02", "2024-06-28", "--report", str(tmp_path / "r.json"))
    run = await start_mdw(*args, env=cli_env(sim, sqlite_url, MDW_RATE_LIMIT="8/s", MDW_MAX_IN_FLIGHT="2"))
    await asyncio.wait_for(run.planned.wait(), 60)
    await asyncio.sleep(0.6)
    await run.signal(signal.SIGINT)
    result = await run.finish(limit_s=30)
    assert result.code == 130, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["status"] == "interrupted" and report["requests"] < report["planned_requests"]
    assert "interrupted" in result.stdout
    spec = spec_of(symbols, tfs, "2024-01-02", "2024-06-28")
    store = await opened(sqlite_url)
    await assert_covered_exact(store, sim, spec)
    # What is left is at most what was planned less the requests finished, and at least that less
    # every request sent: a page of an unfinished request already commits its bars with coverage.
    left = (await plan_only(store, spec)).request_count
    done = sum(s["requests_done"] for s in report["series"])
    assert report["planned_requests"] - report["requests"] <= left <= report["planned_requests"] - done


async def test_cli_export_and_status_read_back_when_data_is_stored(
    sqlite_url: str, sim: SimServer, tmp_path: Path
) -> None:
    """export writes exactly the stored bars (CSV and JSON lines); status lists every series."""
    env = cli_env(sim, sqlite_url)
    assert (await mdw(*backfill_args("X:BTCUSD", "4h", "2024-03-01", "2024-03-03"), env=env)).code == 0
    out = tmp_path / "btc.csv"
    result = await mdw(
        "export",
        "--symbols",
        "X:BTCUSD",
        "--timeframe",
        "4h",
        "--start",
        "2024-03-01",
        "--end",
        "2024-03-03",
        "-o",
        str(out),
        env=env,
    )
    assert result.code == 0, result.stderr
    lines = out.read_text().splitlines()
    spec = spec_of("X:BTCUSD", "4h", "2024-03-01", "2024-03-03")
    rng = spec.wanted(spec.tickers[0].asset_class)
    truth = sim.market.aggregates("X:BTCUSD", spec.timeframes[0], rng.start_ms, rng.end_ms)
    assert lines[0] == "ticker,timeframe,timestamp,open,high,low,close,volume,vwap,trades,otc"
    assert len(lines) == len(truth) + 1 == 19
    assert [to_ms(x.split(",")[2]) for x in lines[1:]] == truth.t.tolist()
    assert [float(x.split(",")[6]) for x in lines[1:]] == truth.c.tolist()
    jsonl = await mdw(
        "export",
        "--symbols",
        "X:BTCUSD",
        "--timeframe",
        "4h",
        "--start",
        "2024-03-01",
        "--end",
        "2024-03-03",
        "--format",
        "jsonl",
        env=env,
    )
    rows = [json.loads(x) for x in jsonl.stdout.splitlines()]
    assert [r["volume"] for r in rows] == truth.v.tolist()
    status = await mdw("status", "--json", env=env)
    assert status.code == 0
    [row] = json.loads(status.stdout)
    assert (row["ticker"], row["timeframe"], row["bars"], row["gaps"]) == ("X:BTCUSD", "4h", 18, 0)
