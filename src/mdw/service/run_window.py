"""Vendor use over a recent window, and failed ranges, read from the stored run records.

Runs are recorded in the store by every process that talks to the vendor (``mdw backfill``,
``mdw update``, the scheduler, ``POST /v1/backfills``), each with its counts in its report, so
summing them counts the vendor traffic of the whole warehouse, not just this server's.

A run that straddles the window's start contributes in proportion to the part of its duration
inside the window (its requests are assumed evenly spread; the dashboard says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from mdw.config import RateLimit
from mdw.domain import RangeSet, TimeRange, day_range_ms, parse_ticker
from mdw.errors import UsageError
from mdw.store.base import RunRecord

UNLIMITED_CEILING_PER_S = 100.0

_COUNTS = ("requests", "rate_limited", "retries")  # top-level counts of a run report (RunReport)


def _count(report: Mapping[str, Any], name: str) -> int:
    value = report.get(name)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def vendor_window(runs: Iterable[RunRecord], now_ms: int, window_s: int, plan: RateLimit) -> dict[str, Any]:
    """Requests, 429s and retries of the runs overlapping ``[now - window, now)``, and budget use.

    Returns:
        The fields of the ``vendor_last_hour`` object of ``GET /v1/stats``.
    """
    lo = now_ms - window_s * 1000
    totals = dict.fromkeys(_COUNTS, 0.0)
    counted = 0
    for run in runs:
        end = run.finished_at_ms if run.finished_at_ms is not None else now_ms
        if end < lo or run.started_at_ms > now_ms:
            continue
        duration = max(1, end - run.started_at_ms)
        share = min(1.0, max(0, end - max(lo, run.started_at_ms)) / duration) if end > lo else 1.0
        counted += 1
        for name in totals:
            totals[name] += _count(run.report, name) * share
    requests = round(totals["requests"])
    # An unlimited plan is asked to stay under a courtesy ceiling; use is measured against it.
    per_s = UNLIMITED_CEILING_PER_S if plan.unlimited else plan.per_second
    allowance = per_s * window_s
    return {
        "window_s": window_s,
        "requests": requests,
        "rate_limited": round(totals["rate_limited"]),
        "retries": round(totals["retries"]),
        "runs": counted,
        "plan": str(plan),
        "allowance": allowance,
        "budget_share": requests / allowance,
    }


def _param_ms(value: Any, tz: ZoneInfo, *, end: bool) -> int | None:
    """A run's start/end parameter as epoch ms: an int is ms, a date is a whole local day."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        return None
    rng = day_range_ms(day, day, tz)
    return rng.end_ms if end else rng.start_ms


def failed_ranges(runs: Iterable[RunRecord], ticker: str, timeframe: str) -> RangeSet:
    """The ranges of ``ticker``/``timeframe`` that finished runs asked for and failed on.

    A run reports each series' outcome (``"AAPL 1d"``: ok, partial, failed or skipped) and keeps
    the requested ``start``/``end`` of its specs in its params; a gap inside that range of a series that did
    not end ``ok`` is one that a run tried and could not fill.
    """
    label = f"{ticker} {timeframe}"
    try:
        tz = parse_ticker(ticker).asset_class.tz
    except UsageError:
        return RangeSet()
    out: list[TimeRange] = []
    for run in runs:
        if run.status == "running" or not isinstance(run.report, Mapping):
            continue
        outcomes = run.report.get("series") or ()
        bad = any(isinstance(o, Mapping) and o.get("series") == label and o.get("status") != "ok"
                  for o in outcomes)
        if not bad:
            continue
        # params hold the run's specs (``{"specs": [{tickers, timeframes, start, end}, ...]}``).
        specs = run.params.get("specs") or [run.params]
        for spec in specs if isinstance(specs, list) else ():
            if not isinstance(spec, Mapping) or ticker not in spec.get("tickers", [ticker]):
                continue
            if timeframe not in spec.get("timeframes", [timeframe]):
                continue
            start = _param_ms(spec.get("start"), tz, end=False)
            stop = _param_ms(spec.get("end"), tz, end=True)
            if start is not None and stop is not None and start < stop:
                out.append(TimeRange(start, stop))
    return RangeSet.of(out)
