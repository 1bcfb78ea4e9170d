"""A worker's job outcomes carry their own vendor counters, and a run's report aggregates them honestly.

No worker processes here: the runtime runs jobs in this event loop against an in-process simulator
and a SQLite store (the runtime needs nothing of PostgreSQL to execute a unit).
"""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

from mdw.backfill import BackfillSpec, plan_only
from mdw.backfill.engine import job_series
from mdw.backfill.planner import plan_backfill
from mdw.config import load_settings
from mdw.domain import parse_tickers, parse_timeframes
from mdw.polygon import Pacing, PolygonClient, RetryPolicy
from mdw.polygon.retry import RATE_LIMITED_RETRIES
from mdw.scaleout.codec import encode
from mdw.scaleout.follow import Deferred, Tally, busy_seconds
from mdw.scaleout.queue import result_of
from mdw.scaleout.runtime import WorkerRuntime, WorkOutcome
from mdw.store import open_store


def make_spec(tickers: str, timeframes: str, start: str, end: str) -> BackfillSpec:
    """One request per ticker (grouped daily off)."""
    return BackfillSpec(tuple(parse_tickers(tickers)), tuple(parse_timeframes(timeframes)),
                        date.fromisoformat(start), date.fromisoformat(end), grouped_daily=False)


async def test_runtime_credits_retries_and_429s_to_their_own_job_when_jobs_run_concurrently(
    sim_factory: Any, tmp_path: Path
) -> None:
    """Eight concurrent jobs on a 5/min key: the 429s and retries land on the jobs that got them."""
    sim = await sim_factory(keys={"k": "free"})
    url = f"sqlite:///{tmp_path / 'w.db'}"
    store = await open_store(url)
    client = PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited"), retry=RetryPolicy(attempts=3))
    runtime = WorkerRuntime(load_settings(None, database_url=url), store, client, None, "t")
    try:
        spec = make_spec("AAPL,MSFT,NVDA,SPY,QQQ,AMZN,GOOGL,META", "1d", "2026-06-01", "2026-06-05")
        plan = await plan_only(store, spec)
        assert len(plan.requests) == 8
        outcomes = [WorkOutcome() for _ in plan.requests]
        results = await asyncio.gather(*(runtime.execute(w, o) for w, o in zip(plan.requests, outcomes,
                                                                                 strict=True)),
                                       return_exceptions=True)
        stats = client.stats()
    finally:
        await runtime.close()
    failed = [o for o, r in zip(outcomes, results, strict=True) if isinstance(r, BaseException)]
    done = [o for o, r in zip(outcomes, results, strict=True) if not isinstance(r, BaseException)]
    assert len(done) == 5 and len(failed) == 3  # the key's budget: 5 requests a minute
    assert all((o.rate_limited, o.retries) == (0, 0) for o in done)
    # three attempts, and 429s a budget of their own on top (RATE_LIMITED_RETRIES per attempt)
    tries = 3 * (1 + RATE_LIMITED_RETRIES)
    assert all((o.rate_limited, o.retries) == (tries, tries - 1) for o in failed)
    assert sum(o.rate_limited for o in outcomes) == stats.rate_limited_count == sim.stats()["rate_limited"]
    assert sum(o.retries for o in outcomes) == stats.retries
    requests = sum(o.requests for o in outcomes)
    assert requests == stats.total_requests == sim.stats()["requests"] == 5 + 3 * tries
    for o in done:  # the spans are the awaited vendor time, in order, on the wall clock
        assert o.api_spans and o.api_spans == sorted(o.api_spans)
        assert abs(sum(b - a for a, b in o.api_spans) - o.api_s) < 1e-6 and o.api_s > 0


def test_tally_reports_vendor_counters_and_busy_wall_time_when_jobs_overlap() -> None:
    """Counters are summed over every final job; api_s is the union of spans, api_request_s their sum."""
    spec = make_spec("AAPL,MSFT,NVDA", "1d", "2024-03-04", "2024-03-08")
    plan = plan_backfill(spec, {}, 1_893_456_000_000)
    works = [encode(w) for w in plan.requests]

    def outcome(requests: int, bars: int, api_s: float, retries: int, limited: int,
                span: tuple[float, float]) -> WorkOutcome:
        return WorkOutcome(requests=requests, bars=bars, api_s=api_s, db_s=0.1, retries=retries,
                           rate_limited=limited, api_spans=[span])

    planned = {key: 1 for w in plan.requests for key in job_series(w)}
    tally = Tally(Deferred("r", job_ids=[1, 2, 3], planned_requests=3, series_planned=planned))
    tally.add(result_of(1, "r", "w", True, outcome=outcome(1, 5, 2.0, 1, 1, (100.0, 102.0)), work=works[0]))
    tally.add(result_of(2, "r", "w", True, outcome=outcome(1, 5, 2.0, 0, 0, (101.0, 103.0)), work=works[1]))
    tally.add(result_of(3, "r", "w", False, outcome=outcome(3, 0, 1.5, 2, 3, (110.0, 111.5)), error="429",
                        work=works[2]))
    report = tally.finish(20.0, False)
    assert (report.requests, report.retries, report.rate_limited) == (5, 3, 4)
    assert report.api_request_s == 5.5 and report.api_s == 4.5  # (100, 103) and (110, 111.5)
    assert report.bars_fetched == 10
    rows = {str(key): row for key, row in report.series.items()}
    assert rows["NVDA 1d"].requests_failed == 1 and report.errors == ["NVDA 1d: 429"]
    assert busy_seconds([]) == 0.0 and busy_seconds([(1, 4), (2, 3)]) == 3.0
    assert busy_seconds([(5, 6), (1, 2), (1.5, 5.5)]) == 5.0
