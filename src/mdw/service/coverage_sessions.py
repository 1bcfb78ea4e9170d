"""Per-session coverage states: the cells of the dashboard's heat map, served by the public API.

For one series and one local trading day the ledger, the stored bars and the calendar together
say which of six states holds:

- ``covered``: the whole tradable part of the day is in the ledger and bars are stored;
- ``empty``: the whole tradable part is in the ledger and the vendor confirmed no bars (a halt);
- ``partial``: part of it is in the ledger, part is a gap;
- ``missing``: none of it is in the ledger, though the calendar expects bars (a gap);
- ``failed``: a gap that a recorded run tried to fill and failed on;
- ``outside_plan``: a day before the plan's history boundary that is not held: the key's plan
  does not sell it, so it is neither a gap nor a failure.

Days that cannot hold a bar (weekends, holidays, the future) are not listed at all, nor is today
for a daily or longer timeframe until something of it is held: its bar is not due yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from mdw.calendar import tradable, trading_days
from mdw.domain import AssetClass, RangeSet, Timeframe, TimeRange, day_range_ms

STATES = ("covered", "empty", "partial", "missing", "failed", "outside_plan")


@dataclass(frozen=True, slots=True)
class SessionCell:
    """One local trading day of one series."""

    day: date
    state: str
    bars: int
    expected_ms: int  # how much of the day can hold bars (ms)
    covered_ms: int  # how much of that the ledger holds (ms)


def session_states(
    asset: AssetClass, timeframe: Timeframe, first: date, last: date, *,
    covered: RangeSet, bar_times: npt.NDArray[np.int64], failed: RangeSet, now_ms: int,
    plan_from_ms: int | None = None,
) -> list[SessionCell]:
    """The state of every trading day from ``first`` to ``last`` (inclusive local dates).

    Args:
        asset: decides the calendar and the day boundaries (00:00 ET for stocks, UTC for crypto).
        timeframe: whose tradable windows a day is expected to fill.
        covered: the ledger's ranges for the series (including confirmed-empty ranges).
        bar_times: sorted window starts of the stored bars in the period.
        failed: ranges a run tried and failed to fetch.
        now_ms: the clock; the part of a day after it is not expected yet.
        plan_from_ms: the plan's history boundary (None: none known); an unheld day before it is
            ``outside_plan``.
    """
    tz = asset.tz
    if last < first:
        return []
    span = day_range_ms(first, last, tz)
    cells: list[SessionCell] = []
    for day in trading_days(asset, span):
        day_rng = day_range_ms(day, day, tz)
        if day_rng.start_ms >= now_ms:
            break
        until_now = TimeRange(day_rng.start_ms, min(day_rng.end_ms, now_ms))
        expected = tradable(asset, timeframe, day_rng).clip(until_now)
        if not expected:
            continue
        have = covered.intersection(expected)
        lo, hi = np.searchsorted(bar_times, [day_rng.start_ms, day_rng.end_ms])
        n = int(hi - lo)
        if not timeframe.intraday and day_rng.end_ms > now_ms and not n and not have:
            continue  # today's bar is not due before the day ends: not yet held is not missing
        if plan_from_ms is not None and day_rng.end_ms <= plan_from_ms and not have and not n:
            state = "outside_plan"
        elif have.total_ms >= expected.total_ms:
            state = "covered" if n else "empty"
        elif failed.intersection(expected.difference(have)):
            state = "failed"
        elif have or n:
            state = "partial"
        else:
            state = "missing"
        cells.append(SessionCell(day, state, n, expected.total_ms, have.total_ms))
    return cells


def day_span(first: date, last: date, limit_days: int) -> tuple[date, date]:
    """Clamp a requested period to at most ``limit_days`` days, keeping its end."""
    if (last - first).days + 1 > limit_days:
        first = last - timedelta(days=limit_days - 1)
    return first, last
