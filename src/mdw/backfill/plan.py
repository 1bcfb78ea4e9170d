"""The plan's vocabulary: what a backfill asks for, and the requests it turns into.

These are plain frozen values so the planner stays pure and a plan can be printed (``--dry-run``),
counted (the benchmark's "minimal plan"), or handed to distributed workers one request at a time.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, NamedTuple

from mdw.domain import AssetClass, SeriesKey, Ticker, Timeframe, TimeRange, day_range_ms
from mdw.errors import UsageError
from mdw.flatfiles.keys import FileDataset, FileInfo
from mdw.store.base import RunKind

SOURCES = ("rest", "flatfiles", "auto")
MAX_BASE = 50_000  # the vendor's largest `limit`: base aggregates (minutes or days) per page
ACTION_KINDS_ALL = ("dividends", "splits", "all")


ACTIONS_PER_TRANSACTION = 500  # tickers of one listing whose actions and coverage commit together

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
        source: where bars come from: ``rest`` (the aggregates endpoints only), ``flatfiles``
            (every published day of the vendor's whole-market files that holds a gap; the rest
            from REST), or ``auto`` (per dataset and day, whichever the cost model finds cheaper).
        spans: per ticker, the days (inclusive) it is wanted on, within ``start``..``end``: a
            universe member's listed days. Tickers not in it are wanted over the whole range.
        universe: the universe the tickers came from (recorded with the run).
        settle: first re-fetch the series' settle window once (see :mod:`mdw.backfill.settle`);
            the scheduler's settle jobs set it.
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
    source: Literal["rest", "flatfiles", "auto"] = "auto"
    spans: Mapping[str, tuple[date, date]] = field(default_factory=dict)
    universe: str = ""
    settle: bool = False

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise UsageError(f"invalid source {self.source!r}; expected one of {', '.join(SOURCES)}")

    def wanted_for(self, ticker: Ticker) -> TimeRange:
        """The half-open ms range wanted for one ticker: its span clipped to the spec's range."""
        whole = self.wanted(ticker.asset_class)
        span = self.spans.get(ticker.symbol)
        if span is None:
            return whole
        own = day_range_ms(span[0], span[1], ticker.asset_class.tz)
        lo, hi = max(whole.start_ms, own.start_ms), min(whole.end_ms, own.end_ms)
        return TimeRange(lo, max(lo, hi))

    def wanted(self, asset: AssetClass) -> TimeRange:
        """The half-open ms range wanted for an asset class (dates are local days)."""
        start, end = self.start, self.end
        if isinstance(start, date) and isinstance(end, date):
            return day_range_ms(start, end, asset.tz)
        s = start if isinstance(start, int) else day_range_ms(start, start, asset.tz).start_ms
        e = end if isinstance(end, int) else day_range_ms(end, end, asset.tz).end_ms
        return TimeRange(s, max(s, e))

    def to_dict(self) -> dict[str, object]:
        if self.universe:  # thousands of tickers: the universe's name says it in one word
            head: dict[str, object] = {"universe": self.universe, "ticker_count": len(self.tickers)}
        else:
            head = {"tickers": [t.symbol for t in self.tickers]}
        return {
            **head,
            "timeframes": [str(t) for t in self.timeframes],
            "start": str(self.start),
            "end": str(self.end),
            "derive": self.derive,
            "grouped_daily": self.grouped_daily,
            "corporate_actions": self.corporate_actions,
            "kind": self.kind,
            "refetch": self.refetch,
            "source": self.source,
            **({"settle": True} if self.settle else {}),
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
@dataclass(frozen=True, slots=True, order=True)
class FilesKey:
    """One flat-file dataset's days in a run: the key of their report row."""

    dataset: str  # the key prefix, e.g. us_stocks_sip/minute_aggs_v1

    def __str__(self) -> str:
        return f"{self.dataset} files"


OutcomeKey = SeriesKey | ActionsKey | FilesKey


class Target(NamedTuple):
    """A series a request fills, and the range it marks covered once its bars are committed.

    A named tuple rather than a frozen dataclass: a universe's year of grouped-daily requests
    holds a target per member per session (over a million), and a tuple is built several times
    faster.
    """

    ticker: str
    timeframe: Timeframe
    covers: TimeRange
    derived: bool = False
    # reference data says the ticker is listed on these days (a universe member): absent from a
    # grouped-daily response (asked with OTC names), it did not trade, and nothing is asked again
    listed: bool = False

    @property
    def key(self) -> SeriesKey:
        return SeriesKey(self.ticker, self.timeframe)


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One vendor request and the series it fills; an ``aggs`` request follows every ``next_url``.

    ``kind`` is ``aggs`` (one ticker's aggregates over ``fetch``), ``grouped`` (one session's
    daily bars of every ticker in the market; ``ticker`` is empty then) or ``absent`` (one ticker's
    daily bars over the sessions it was absent from grouped answers, one target each: made by the
    engine after the grouped requests, never planned). ``pages`` is the most
    pages it can take (its calendar bound: ``base_units`` / 50,000, rounded up); ``density`` the
    share of those base aggregates that trade, when the store knows it (see ADR 0018).
    """

    kind: Literal["aggs", "grouped", "absent"]
    asset: AssetClass
    ticker: str
    timeframe: Timeframe
    fetch: TimeRange
    targets: tuple[Target, ...]
    base_units: int = 0
    pages: int = 1
    density: float | None = None

    @property
    def expected_pages(self) -> int:
        """The pages the vendor's pager is expected to need: the bound, or less by the known density."""
        if self.density is None or self.pages <= 1:
            return self.pages
        return max(1, min(self.pages, math.ceil(self.base_units * self.density / MAX_BASE)))

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
            "base_units": self.base_units, "pages": self.pages, "density": self.density,
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
    """Fetch one kind of corporate action over ``covers``: of one ticker, or of many at once.

    With ``tickers`` set (``ticker`` is empty then) one listing answers all of them: filtered by
    ``ticker.any_of`` when ``market_wide`` is false, else every ticker's events of the range,
    of which only those of ``tickers`` are kept. ``pages`` is the expected page count.
    """

    ticker: str
    kind: ActionKind
    covers: TimeRange
    tickers: tuple[str, ...] = ()
    market_wide: bool = False
    pages: int = 1

    @property
    def key(self) -> ActionsKey:
        return ActionsKey(self.ticker, self.kind)

    @property
    def keys(self) -> list[ActionsKey]:
        """The report rows (one per ticker) the request fills."""
        return [ActionsKey(t, self.kind) for t in self.tickers] if self.tickers else [self.key]

    @property
    def label(self) -> str:
        if not self.tickers:
            return str(self.key)
        return f"{'market-wide' if self.market_wide else f'{len(self.tickers)} tickers'} {self.kind}"

    def one(self, ticker: str) -> ActionsRequest:
        """The part of a many-ticker request that fills ``ticker``."""
        return ActionsRequest(ticker, self.kind, self.covers)


@dataclass(frozen=True, slots=True)
class PlannedFile:
    """One day's file of one dataset to ingest, and the coarser timeframes to build from it.

    ``rest_requests`` and ``rest_s`` are what the REST plan would have spent on that day for the
    wanted series; ``file_s`` is the file's estimated cost (see ``backfill/fileplan.py``).
    """

    dataset: FileDataset
    day: date
    info: FileInfo
    derive: tuple[Timeframe, ...] = ()
    rest_requests: float = 0.0
    rest_s: float = 0.0
    file_s: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {"dataset": self.dataset.prefix, "day": self.day.isoformat(), "key": self.info.key,
                "bytes": self.info.size, "etag": self.info.etag, "derive": [str(t) for t in self.derive],
                "rest_requests": round(self.rest_requests, 2), "rest_s": round(self.rest_s, 3),
                "file_s": round(self.file_s, 3)}


@dataclass(frozen=True, slots=True)
class FileCost:
    """One dataset's comparison, as ``--dry-run`` shows it: days that had a gap, and both costs."""

    dataset: str
    days: int  # published days holding a gap of a wanted series
    chosen: int  # of those, taken from files
    file_bytes: int  # of all candidate days
    file_s: float
    rest_requests: float
    rest_s: float

    def to_dict(self) -> dict[str, object]:
        return {"dataset": self.dataset, "days": self.days, "chosen": self.chosen,
                "file_bytes": self.file_bytes, "file_s": round(self.file_s, 3),
                "rest_requests": round(self.rest_requests, 1), "rest_s": round(self.rest_s, 3)}


@dataclass(frozen=True, slots=True)
class RequestEstimate:
    """A plan's request count and how sure it is.

    ``exact`` requests are one page each (or corporate-action listings); ``estimated`` ones follow
    ``next_url`` over a range whose density the store knows; ``bounded`` ones cover a range never
    stored, so only the calendar's bound (``high``) and one page (``low``) are known for them.
    ``bounded`` also counts the tickers of grouped-daily requests not known to be listed: each may
    be absent from a session and then costs one request of its own (``high``, not ``low``).
    """

    expected: int
    low: int
    high: int
    exact: int
    estimated: int
    bounded: int

    @property
    def sure(self) -> str:
        """``exact``, ``estimated`` (from stored densities) or ``bounded`` (unknown densities)."""
        if self.bounded:
            return "bounded"
        return "estimated" if self.estimated else "exact"

    def to_dict(self) -> dict[str, object]:
        return {"expected": self.expected, "low": self.low, "high": self.high, "sure": self.sure,
                "exact_requests": self.exact, "estimated_requests": self.estimated,
                "bounded_requests": self.bounded}

    def describe(self) -> str:
        """One line for ``--dry-run``."""
        if self.sure == "exact":
            return f"{self.expected} requests (exact: every request is one page)"
        if self.sure == "estimated":
            return (f"about {self.expected} requests ({self.low}-{self.high}; {self.estimated} paged "
                    "request(s) estimated from the densities already stored)")
        return (f"{self.low}-{self.high} requests ({self.bounded} paged request(s) over ranges never "
                f"stored: at least one page each, at most the calendar's bound)")


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a run will do, in the order it will be started."""

    series: tuple[SeriesKey, ...]
    requests: tuple[PlannedRequest, ...]
    derives: tuple[DeriveTask, ...] = ()
    actions: tuple[ActionsRequest, ...] = ()
    skipped: dict[SeriesKey, str] = field(default_factory=dict)
    files: tuple[PlannedFile, ...] = ()  # whole-market days taken from the vendor's flat files
    costs: tuple[FileCost, ...] = ()  # per dataset: the files' cost and the REST cost they replace
    notes: tuple[str, ...] = ()  # why flat files were not used where they could have been
    outside_plan: tuple[tuple[SeriesKey, TimeRange], ...] = ()  # wanted, before the plan's history
    probes: int = 0  # with the plan's history unknown: the one request that proves it first
    # tickers the ledger holds something of: the vendor knows them, so an empty answer needs no check
    stored: frozenset[str] = frozenset()

    @property
    def file_bytes(self) -> int:
        return sum(f.info.size for f in self.files)

    @property
    def request_count(self) -> int:
        """Vendor requests the plan is expected to make (aggregate pages, grouped daily, corporate
        actions): exact where each request is one page, estimated from stored densities where the
        store knows them, and the calendar's bound for series never stored (see :meth:`estimate`)."""
        return sum(r.expected_pages for r in self.requests) + sum(a.pages for a in self.actions) + self.probes

    def estimate(self) -> RequestEstimate:
        """How many requests the plan makes, and how sure that is."""
        exact = [r for r in self.requests if r.pages <= 1]
        dense = [r for r in self.requests if r.pages > 1 and r.density is not None]
        blind = [r for r in self.requests if r.pages > 1 and r.density is None]
        fixed = len(exact) + sum(a.pages for a in self.actions) + self.probes
        absent = len({t.ticker for r in self.requests if r.kind == "grouped"
                      for t in r.targets if not t.listed})
        return RequestEstimate(
            expected=self.request_count,
            low=fixed + len(dense) + len(blind) + sum(r.expected_pages - 1 for r in dense),
            high=fixed + sum(r.pages for r in (*dense, *blind)) + absent,
            exact=fixed, estimated=len(dense), bounded=len(blind) + absent)

    def per_series(self) -> dict[str, int]:
        """Requests per series label (grouped-daily requests are counted under their market)."""
        counts: Counter[str] = Counter()
        for r in self.requests:
            counts[r.label] += r.expected_pages
        for a in self.actions:
            counts[a.label] += a.pages
        return dict(sorted(counts.items()))
