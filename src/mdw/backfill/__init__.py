"""Backfill: the planner (gaps -> requests), the engine (pipeline + report) and resampling.

This package opens no sockets itself: it is handed a vendor client and a store.
"""

from __future__ import annotations

from mdw.backfill.fetch import RequestResult, execute_request, fetch_writes
from mdw.backfill.plan import (
    ActionsKey,
    ActionsRequest,
    BackfillSpec,
    DeriveTask,
    OutcomeKey,
    Plan,
    PlannedRequest,
    Target,
)
from mdw.backfill.planner import plan_backfill
from mdw.backfill.report import Progress, RunReport, SeriesOutcome
from mdw.backfill.runner import plan_only, run_backfill
from mdw.domain import SeriesKey

__all__ = [
    "ActionsKey",
    "ActionsRequest",
    "BackfillSpec",
    "DeriveTask",
    "OutcomeKey",
    "Plan",
    "PlannedRequest",
    "Progress",
    "RequestResult",
    "RunReport",
    "SeriesKey",
    "SeriesOutcome",
    "Target",
    "execute_request",
    "fetch_writes",
    "plan_backfill",
    "plan_only",
    "run_backfill",
]
