"""Crash and resume: ``kill -9`` of the ``mdw backfill`` process at seeded moments, and a PostgreSQL
server restarted under a running backfill. After a re-run the data equals the ground truth, and the
requests wasted by each crash are at most the ones in flight when it happened.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mdw.backfill import BackfillSpec, plan_only
from mdw.config import Settings
from mdw.simulator import SimServer
from mdw.store import open_store
from mdw.store.base import WriteSize
from mdw.store.lake.bars import IcebergBars

from .conftest import (
    MDW,
    assert_exact,
    assert_stored_subset_exact,
    cli_env,
    duplicate_bars,
    run_mdw,
    spec_of,
)
from .pgcluster import PrivateCluster

SYMBOLS, TIMEFRAMES = "AAPL,MSFT,NVDA,SPY,X:BTCUSD,X:ETHUSD", "5m,1h,1d"
START, END = "2024-01-02", "2024-04-30"
SPEC = spec_of(SYMBOLS, TIMEFRAMES, START, END, grouped_daily=False)
IN_FLIGHT = 4
ARGS = ["backfill", "--symbols", SYMBOLS, "--timeframes", TIMEFRAMES, "--start", START, "--end", END,
        "--no-grouped"]
QUICK = ("AAPL,MSFT,X:BTCUSD,X:ETHUSD", "15m,1h", "2024-01-02", "2024-04-30")
# What a kill can lose: requests being fetched (one per slot), fetched pages waiting on the writer's
# queue, and the writer's open transaction (which groups at most what the queue held, plus one).
QUEUE = WriteSize().queued  # the row stores' queue; a store may ask for another (Store.write_size)
PIPELINE_DEPTH = IN_FLIGHT + QUEUE + (QUEUE + 1)
DEFAULT_IN_FLIGHT = int(Settings.model_fields["max_in_flight"].default)  # MDW_MAX_IN_FLIGHT's default
COLUMNAR = IcebergBars.write_size


def open_group(size: WriteSize) -> int:
    """The most pages the writer's open transaction holds: what the queue held plus one, or, for a
    store that waits for more (``min_rows``), as many as it takes per transaction."""
    return size.queued + 1 if size.min_rows == 0 else size.writes


def kill_bound(in_flight: int, size: WriteSize = WriteSize()) -> int:
    """The most requests one kill can waste with ``in_flight`` requests in flight (MDW_MAX_IN_FLIGHT):
    ``in_flight`` being fetched (a fetcher whose page waits for room on the queue keeps its slot),
    the store's queued pages, the writer's open transaction (:func:`open_group`), and ``in_flight``
    interrupted requests that each start a page of their own on resume."""
    return in_flight + size.queued + open_group(size) + in_flight


def _args(symbols: str, timeframes: str, start: str, end: str) -> list[str]:
    return ["backfill", "--symbols", symbols, "--timeframes", timeframes, "--start", start, "--end", end,
            "--no-grouped"]


async def _planned(url: str, spec: BackfillSpec = SPEC) -> int:
    async with await open_store(url) as store:
        return (await plan_only(store, spec)).request_count


async def _planned_at_most(url: str, spec: BackfillSpec = SPEC) -> int:
    """What a re-run may send at most: the plan's calendar bound, plus one page for each paged
    request, whose remainder the first page may cut into pieces (fetch.remainder_pieces) that each
    follow their own ``next_url``, so a piece denser than the first page ends one page past its cut.
    The plan's expected count is an estimate a re-run can miss either way."""
    async with await open_store(url) as store:
        plan = await plan_only(store, spec)
    return plan.estimate().high + sum(1 for r in plan.requests if r.pages > 1)


async def _kill_at(env: dict[str, str], delay_s: float, args: list[str]) -> int:
    """Start ``mdw backfill``, wait until it has planned, let it run ``delay_s``, then SIGKILL it."""
    proc = await asyncio.create_subprocess_exec(MDW, *args, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    async for raw in proc.stderr:
        if b'"backfill.planned"' in raw:
            break
    await asyncio.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    code = await proc.wait()
    await proc.stderr.read()
    return code


async def _vendor_pages(sim: SimServer, spec: BackfillSpec) -> int:
    """The pages the vendor's own ``next_url`` pager needs for ``spec`` (counted by the simulator)."""
    from mdw.backfill.planner import final_end
    from mdw.backfill.runner import now_ms
    from mdw.polygon import Pacing, PolygonClient

    before = sim.stats()["requests"]
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as client:
        for tk in spec.tickers:
            for tf in spec.timeframes:
                rng = spec.wanted(tk.asset_class)
                end = min(rng.end_ms, final_end(tk.asset_class, tf, now_ms()))
                async for _ in client.aggregate_pages(tk.symbol, tf, rng.start_ms, end):
                    pass
    return int(sim.stats()["requests"] - before)


async def _crash_and_resume(sim: SimServer, url: str, kills: int, seed: int,
                            what: tuple[str, str, str, str] = (SYMBOLS, TIMEFRAMES, START, END),
                            max_delay_s: float = 0.6, in_flight: int | None = IN_FLIGHT,
                            rate: str = "60/s") -> dict[str, Any]:
    """Kill, resume, compare: the waste is what the vendor's own pager would not have sent.

    Requests follow ``next_url`` and each page covers what lies before its last bar, so a kill
    loses what was in flight or queued (``PIPELINE_DEPTH``) and may make each interrupted request
    start a page of its own on resume (``IN_FLIGHT``); with the plan unset, one probe proves the
    key's history (ADR 0018). ``in_flight`` None leaves MDW_MAX_IN_FLIGHT at its default.
    """
    extra = {"MDW_MAX_IN_FLIGHT": str(in_flight)} if in_flight is not None else {}
    env = cli_env(sim.base_url, sim.key, url, MDW_RATE_LIMIT=rate, **extra)
    slots = in_flight or DEFAULT_IN_FLIGHT
    size = COLUMNAR if url.startswith("iceberg") else WriteSize()
    bound = kill_bound(slots, size)
    spec, args = spec_of(*what, grouped_daily=False), _args(*what)
    minimal = await _vendor_pages(sim, spec)
    start = sim.stats()["requests"]
    rng = random.Random(seed)
    done = 0
    for _ in range(kills):
        if await _planned(url, spec) == 0:
            break
        code = await _kill_at(env, rng.uniform(0.05, max_delay_s), args)
        assert code == -signal.SIGKILL
        done += 1
    async with await open_store(url) as store:
        await assert_stored_subset_exact(store, sim, spec)  # nothing half-written is marked held
    remaining = await _planned_at_most(url, spec)
    before = sim.stats()["requests"]
    code, _, err = await run_mdw(*args, env=env, limit_s=600)
    assert code == 0, err
    final_requests = sim.stats()["requests"] - before
    assert final_requests <= remaining  # the re-run asks only for what the ledger lacks
    async with await open_store(url) as store:
        await assert_exact(store, sim, spec)
    assert await duplicate_bars(url) == 0
    assert await _planned(url, spec) == 0
    total = sim.stats()["requests"] - start
    wasted = total - minimal
    print(f"\n[kill -9 x{done} {url.split(':')[0]} rate={rate}] vendor pager pages={minimal} "
          f"requests={total} wasted={wasted} ({wasted / max(done, 1):.1f} per kill; bound per kill {bound}: "
          f"{slots} fetching, {size.queued} queued, {open_group(size)} in the open transaction, "
          f"{slots} resumed pages; "
          "plus one probe)")
    assert done == kills, "the backfill finished before every kill landed; lengthen it"
    assert 0 <= wasted <= done * bound + 1, wasted
    return {"wasted": wasted, "minimal": minimal, "total": total}


async def test_kill_9_resumes_exactly_when_killed_at_seeded_moments(
    sim_factory: Any, sqlite_url: str
) -> None:
    """Three seeded kills on SQLite: each wastes at most the requests in flight; the re-run is exact."""
    sim = await sim_factory(keys={"k": "unlimited"}, latency_ms=120, n_stocks=30)
    await _crash_and_resume(sim, sqlite_url, kills=3, seed=20240901, what=QUICK, max_delay_s=0.3)


async def test_kill_9_resumes_exactly_on_the_columnar_store(sim_factory: Any, tmp_path: Path) -> None:
    """Three seeded kills on the Iceberg store: the table and the ledger never disagree, the re-run is
    exact, and no bar is stored twice (the pointer and the ledger commit in one transaction)."""
    sim = await sim_factory(keys={"k": "unlimited"}, latency_ms=120, n_stocks=30)
    url = f"iceberg+sqlite:///{tmp_path / 'mdw.db'}?warehouse={tmp_path / 'lake'}"
    await _crash_and_resume(sim, url, kills=3, seed=20240903, what=QUICK, max_delay_s=0.3)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_kill_9_resumes_exactly_when_killed_at_twelve_seeded_moments(
    sim_factory: Any, backend: str, backend_url: str
) -> None:
    """Twelve seeded kills on each backend: bounded waste, exact data after the re-run."""
    sim = await sim_factory(keys={"k": "unlimited"}, latency_ms=250, n_stocks=30)
    await _crash_and_resume(sim, backend_url, kills=12, seed=20240902 + len(backend), max_delay_s=0.3,
                            what=(SYMBOLS, "5m,15m,1h,4h", START, "2024-06-28"))


@pytest.mark.slow
async def test_kill_9_at_an_unlimited_rate_wastes_at_most_the_default_pipeline(
    sim_factory: Any, sqlite_url: str
) -> None:
    """At an unlimited rate with the default 16 requests in flight and a fast vendor (the writer is the
    bottleneck, so the queue and the open transaction are full), each kill wastes at most
    2 x 16 + 16 + 17 = 65 requests (the figure in docs/reliability.md); the re-run is exact."""
    sim = await sim_factory(keys={"k": "unlimited"}, latency_ms=20, n_stocks=30)
    await _crash_and_resume(sim, sqlite_url, kills=4, seed=20240904, max_delay_s=1.0, in_flight=None,
                            rate="unlimited", what=(SYMBOLS, "1h,4h", "2021-01-04", "2024-06-28"))


@pytest.fixture
def private_pg() -> Iterator[PrivateCluster]:
    """A PostgreSQL cluster of this test's own (initdb in a temp dir, a free port)."""
    problem = PrivateCluster.available()
    if problem:
        pytest.skip(problem)
    root = Path(tempfile.mkdtemp(prefix="mdw-pg-"))
    cluster = PrivateCluster(root).init()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
async def test_postgres_restart_mid_run_is_reported_and_rerun_completes_exactly(
    sim_factory: Any, private_pg: PrivateCluster, tmp_path: Path
) -> None:
    """The server restarts under a running backfill: the run says so, and a re-run completes exactly."""
    sim = await sim_factory(keys={"k": "unlimited"}, latency_ms=25, n_stocks=30)
    url = private_pg.url
    env = cli_env(sim.base_url, sim.key, url, MDW_RATE_LIMIT="60/s", MDW_MAX_IN_FLIGHT=str(IN_FLIGHT))
    report_file = tmp_path / "report.json"
    proc = await asyncio.create_subprocess_exec(MDW, *ARGS, "--report", str(report_file), env=env,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None and proc.stdout is not None
    lines: list[bytes] = []
    async for raw in proc.stderr:
        lines.append(raw)
        if b'"backfill.planned"' in raw:
            break
    await asyncio.sleep(0.4)
    await asyncio.to_thread(private_pg.restart)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    text = out.decode() + b"".join(lines).decode() + err.decode()
    print(f"\n[pg restart] first run exit={proc.returncode}; last lines: {text.splitlines()[-3:]}")
    # the run ends on its own (no crash): it reports what it could not write, and why
    assert proc.returncode in (0, 1), text[-2000:]
    report = json.loads(report_file.read_text())
    bad = [s for s in report["series"] if s["status"] != "ok"]
    print(f"[pg restart] status={report['status']} failed series={len(bad)}: "
          f"{sorted({s['reason'][:90] for s in bad})}")
    assert (proc.returncode == 1) == bool(bad) and all(s["reason"] for s in bad)
    async with await open_store(url) as store:
        await assert_stored_subset_exact(store, sim, SPEC)
    code, _, err2 = await run_mdw(*ARGS, env=env)
    assert code == 0, err2
    async with await open_store(url) as store:
        await assert_exact(store, sim, SPEC)
    assert await duplicate_bars(url) == 0


