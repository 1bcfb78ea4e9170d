"""GET /v1/coverage: the days before the plan's history are ``outside_plan``, not ``missing``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from mdw.clock import ManualClock
from mdw.domain import NEW_YORK
from mdw.simulator.server import SimServer

ServiceFactory = Callable[..., Awaitable[Any]]
# Wednesday 2025-03-05, 14:30 New York: a free plan's history starts on 2023-03-05 (a Sunday).
NOW_MS = int(datetime(2025, 3, 5, 14, 30, tzinfo=NEW_YORK).timestamp() * 1000)
QUERY = "/v1/coverage/AAPL?timeframe=1d&start=2023-02-27&end=2023-03-10"


async def test_coverage_heatmap_marks_days_before_a_free_plans_history_outside_plan(
    sim: SimServer, service_factory: ServiceFactory,
) -> None:
    """Free plan: the range before 2023-03-05 is outside_plan (configured), its sessions too; the
    days after it that were backfilled are covered, and nothing is missing."""
    svc = await service_factory(sim, plan="free", clock=ManualClock(NOW_MS))
    run = await svc.backfill({"symbols": ["AAPL"], "timeframes": ["1d"], "start": "2023-02-27",
                              "end": "2023-03-10"})
    assert run["status"] == "ok"
    status, cov, _ = await svc.get(QUERY)
    assert status == 200
    outside = cov["outside_plan"]
    assert (outside["before"], outside["source"]) == ("2023-03-05", "configured")
    assert outside["before_ms"] == int(datetime(2023, 3, 5, tzinfo=NEW_YORK).timestamp() * 1000)
    assert outside["plan"].startswith("history=2y,")  # free, with the tests' unlimited rate
    states = {c["day"]: c["state"] for c in cov["heatmap"]["sessions"]}
    assert [states[d] for d in ("2023-02-27", "2023-02-28", "2023-03-01", "2023-03-02", "2023-03-03")] == [
        "outside_plan"] * 5
    assert [states[d] for d in ("2023-03-06", "2023-03-07", "2023-03-08", "2023-03-09", "2023-03-10")] == [
        "covered"] * 5
    assert cov["heatmap"]["counts"] == {"outside_plan": 5, "covered": 5}


async def test_coverage_without_a_plan_has_no_outside_plan_and_gaps_stay_missing(
    sim: SimServer, service_factory: ServiceFactory,
) -> None:
    """No plan set and nothing learned: outside_plan is null; unheld sessions are missing."""
    svc = await service_factory(sim, clock=ManualClock(NOW_MS))
    status, cov, _ = await svc.get(QUERY)
    assert status == 200 and cov["outside_plan"] is None
    assert set(cov["heatmap"]["counts"]) == {"missing"}
