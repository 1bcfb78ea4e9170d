"""What the warehouse holds, per series: first and last bar, bar count, gaps, last fetched.

With the plan's history boundary (:func:`~mdw.backfill.boundary.plan_reach`), a series whose
wanted range begins before it shows those days as ``outside_plan``: neither missing nor a failure,
just not sold to this key. The wanted start is the tracked symbol's start date (``mdw symbols
add --start``, kept in the store for good), or the earliest start a recent run found outside the
plan, whichever is earlier.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from mdw.backfill.boundary import PlanReach
from mdw.backfill.planner import uncovered
from mdw.domain import AssetClass, SeriesKey, TimeRange, parse_ticker
from mdw.errors import UsageError
from mdw.store.base import Dataset, Store


@dataclass(frozen=True, slots=True)
class SeriesStatus:
    """One stored series at a glance; ``gaps`` counts tradable holes between its first and last bar."""

    ticker: str
    timeframe: str
    bars: int
    first_t: int | None
    last_t: int | None
    gaps: int
    covered_ranges: int
    last_fetched_ms: int | None
    outside_plan: str | None = None  # wanted days before the plan's history (not missing)

    def to_dict(self) -> dict[str, object]:
        return {
            "ticker": self.ticker,
            "timeframe": self.timeframe,
            "bars": self.bars,
            "first_t": self.first_t,
            "last_t": self.last_t,
            "gaps": self.gaps,
            "covered_ranges": self.covered_ranges,
            "last_fetched_ms": self.last_fetched_ms,
            "outside_plan": self.outside_plan,
        }


def _asset(ticker: str, known: dict[str, str]) -> AssetClass:
    if ticker in known:
        return AssetClass(known[ticker])
    try:
        return parse_ticker(ticker).asset_class
    except UsageError:
        return AssetClass.STOCKS


async def series_status(store: Store, tickers: set[str] | None = None) -> list[SeriesStatus]:
    """Every bar series in the store (or only those of ``tickers``), sorted by ticker and timeframe."""
    known = {s.ticker: s.asset_class for s in await store.symbols.all()}
    entries = await store.catalog.ledger()
    fetched: dict[SeriesKey, int] = {}
    ranges: dict[SeriesKey, int] = {}
    for e in entries:
        if e.dataset != Dataset.BARS:
            continue
        key = SeriesKey.of(e.ticker, e.timeframe)
        fetched[key] = max(fetched.get(key, 0), e.fetched_at_ms)
        ranges[key] = ranges.get(key, 0) + 1
    out: list[SeriesStatus] = []
    for s in await store.catalog.series():
        if tickers and s.ticker not in tickers:
            continue
        key = SeriesKey.of(s.ticker, s.timeframe)
        gaps = 0
        if s.first_t is not None and s.last_t is not None:
            held = await store.coverage(s.ticker, Dataset.BARS, s.timeframe)
            gaps = len(uncovered(_asset(s.ticker, known), key.timeframe, TimeRange(s.first_t, s.last_t + 1),
                                 held))
        out.append(
            SeriesStatus(
                s.ticker, s.timeframe, s.bars, s.first_t, s.last_t, gaps, ranges.get(key, 0), fetched.get(key)
            )
        )
    out.sort(key=lambda r: SeriesKey.of(r.ticker, r.timeframe).sort_key())
    return out


async def wanted_starts(store: Store, limit: int = 200) -> dict[str, date]:
    """The earliest wanted day per series (``"AAPL 1d"``): a tracked symbol's start date for each of
    its timeframes, or the first ``outside_plan`` day recent runs found, whichever is earlier.

    A tracked symbol's start date is persisted with it, so it holds however many runs have passed;
    a run report lists a series' ``outside_plan`` days (``2015-01-01..2023-03-04``), whose first day
    is where the user asked the series to start (only the ``limit`` most recent runs are read).
    """
    out: dict[str, date] = {}
    for info in await store.symbols.all():
        if not info.active or not info.start_date:
            continue
        try:
            start = date.fromisoformat(info.start_date)
        except ValueError:
            continue
        for tf in info.timeframes:
            try:
                key = str(SeriesKey.of(info.ticker, tf))
            except UsageError:
                continue
            out[key] = min(out.get(key, start), start)
    for run in await store.runs.recent(limit):
        for s in run.report.get("series") or []:
            span = s.get("outside_plan") if isinstance(s, dict) else None
            if not isinstance(span, str) or ".." not in span:
                continue
            try:
                day = date.fromisoformat(span.split("..", 1)[0])
            except ValueError:
                continue
            key = str(s.get("series"))
            out[key] = min(out.get(key, day), day)
    return out


async def with_plan(store: Store, rows: list[SeriesStatus], reach: PlanReach) -> list[SeriesStatus]:
    """``rows`` with ``outside_plan`` set where the wanted range starts before ``reach``'s first day."""
    starts = await wanted_starts(store)
    out = []
    for r in rows:
        start = starts.get(str(SeriesKey.of(r.ticker, r.timeframe)))
        out.append(replace(r, outside_plan=reach.outside(start)) if start is not None else r)
    return out
