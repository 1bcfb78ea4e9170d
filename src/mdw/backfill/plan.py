"""The plan's vocabulary: what a backfill asks for, and the requests it turns into.

These are plain frozen values so the planner stays pure and a plan can be printed (``--dry-run``),
counted (the benchmark's "minimal plan"), or handed to distributed workers one request at a time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from mdw.domain import AssetClass, SeriesKey, Ticker, Timeframe, TimeRange, day_range_ms
from mdw.store.base import RunKind

MAX_BASE = 50_000  # the vendor's largest `limit`: base aggregates (minutes or days) per page
ACTION_KINDS_ALL = ("dividends", "splits", "all")


@dataclass(frozen=True, slots=True)
class BackfillSpec:
    """Symbols x timeframes x range: what the user asked for.

    Args:
        tickers: the series' tickers (their asset class decides calendar and time zone).
        timeframes: bar sizes to hold.
        start: first day (inclusive, in the asset's zone) or a UTC epoch-ms start.
        end: last day (inclusive, in the asset's zone) or a UTC epoch-ms end (exclusive).
        derive: build coarser intraday timeframes locally from the finest one requested.
        grouped_daily: allow grouped-daily requests for 1d bars when they are cheaper.
        corporate_actions: also fetch dividends and splits of the stock tickers.
        action_kinds: which corporate actions (``dividends``, ``splits``).
        kind: recorded with the run (backfill, update, scheduled ...).
        refetch: plan the whole range as if the ledger held none of it (a forced refetch; writes
            stay idempotent, so unchanged bars count as unchanged and corrections as updated).
    """

    tickers: tuple[Ticker, ...]
    timeframes: tuple[Timeframe, ...]
    start: date | int
    end: date | int
    derive: bool = False
    grouped_daily: bool = True
    corporate_actions: bool = False
    action_kinds: tuple[str, ...] = ("dividends", "splits")
    kind: RunKind = RunKind.BACKFILL
    refetch: bool = False

    def wanted(self, asset: AssetClass) -> TimeRange:
        """The half-open ms range wanted for an asset class (dates are local days)."""
        start, end = self.start, self.end
        if isinstance(start, date) and isinstance(end, date):
            return day_range_ms(start, end, asset.tz)
        s = start if isinstance(start, int) else day_range_ms(start, start, asset.tz).start_ms
        e = end if isinstance(end, int) else day_range_ms(end, end, asset.tz).end_ms
        return TimeRange(s, max(s, e))

    def to_dict(self) -> dict[str, object]:
        return {
            "tickers": [t.symbol for t in self.tickers],
            "timeframes": [str(t) for t in self.timeframes],
            "start": str(self.start),
            "end": str(self.end),
            "derive": self.derive,
            "grouped_daily": self.grouped_daily,
            "corporate_actions": self.corporate_actions,
            "kind": self.kind,
            "refetch": self.refetch,
        }


ActionKind = Literal["dividends", "splits"]


@dataclass(frozen=True, slots=True)
class ActionsKey:
    """One ticker's corporate actions of one kind: the key of their coverage and report row."""

    ticker: str
    kind: ActionKind

    def __str__(self) -> str:
        return f"{self.ticker} {self.kind}"


# A row of a run report: a bar series, or one ticker's dividends or splits.
OutcomeKey = SeriesKey | ActionsKey


@dataclass(frozen=True, slots=True)
class Target:
    """A series a request fills, and the range it marks covered once its bars are committed."""

    ticker: str
    timeframe: Timeframe
    covers: TimeRange
    derived: bool = False

    @property
    def key(self) -> SeriesKey:
        return SeriesKey(self.ticker, self.timeframe)


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One vendor request (one page when the 50k split holds) and the series it fills.

    ``kind`` is ``aggs`` (one ticker's aggregates over ``fetch``) or ``grouped`` (one session's
    daily bars of every ticker in the market; ``ticker`` is empty then).
    """

    kind: Literal["aggs", "grouped"]
    asset: AssetClass
    ticker: str
    timeframe: Timeframe
    fetch: TimeRange
    targets: tuple[Target, ...]
    base_units: int = 0

    @property
    def label(self) -> str:
        """The series the request is counted under in a dry run."""
        if self.kind == "grouped":
            return f"grouped-daily:{self.asset.value}"
        return f"{self.ticker} {self.timeframe}"

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind, "asset": self.asset.value, "ticker": self.ticker,
            "timeframe": str(self.timeframe), "start_ms": self.fetch.start_ms, "end_ms": self.fetch.end_ms,
            "base_units": self.base_units,
            "targets": [{"ticker": t.ticker, "timeframe": str(t.timeframe), "start_ms": t.covers.start_ms,
                         "end_ms": t.covers.end_ms, "derived": t.derived} for t in self.targets],
        }


@dataclass(frozen=True, slots=True)
class DeriveTask:
    """Build ``target`` bars over ``covers`` from stored ``source`` bars: no vendor request."""

    ticker: str
    asset: AssetClass
    source: Timeframe
    target: Timeframe
    covers: TimeRange


@dataclass(frozen=True, slots=True)
class ActionsRequest:
    """Fetch one kind of corporate action of one ticker over ``covers`` (one paged request)."""

    ticker: str
    kind: ActionKind
    covers: TimeRange

    @property
    def key(self) -> ActionsKey:
        return ActionsKey(self.ticker, self.kind)


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a run will do, in the order it will be started."""

    series: tuple[SeriesKey, ...]
    requests: tuple[PlannedRequest, ...]
    derives: tuple[DeriveTask, ...] = ()
    actions: tuple[ActionsRequest, ...] = ()
    skipped: dict[SeriesKey, str] = field(default_factory=dict)

    @property
    def request_count(self) -> int:
        """Vendor requests the plan makes (aggregates, grouped daily and corporate actions)."""
        return len(self.requests) + len(self.actions)

    def per_series(self) -> dict[str, int]:
        """Requests per series label (grouped-daily requests are counted under their market)."""
        counts: Counter[str] = Counter(r.label for r in self.requests)
        for a in self.actions:
            counts[str(a.key)] += 1
        return dict(sorted(counts.items()))
