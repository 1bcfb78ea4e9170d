"""The planner: tables of ledger states and the requests they must turn into, plus properties."""

from __future__ import annotations

import itertools
import math
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdw.backfill.plan import MAX_BASE, ActionsKey, BackfillSpec
from mdw.backfill.planner import base_units, final_end, gaps, plan_backfill, split_range
from mdw.calendar import tradable
from mdw.domain import (
    NEW_YORK,
    AssetClass,
    RangeSet,
    SeriesKey,
    Timeframe,
    TimeRange,
    day_range_ms,
    local_midnight_ms,
    parse_tickers,
    to_ms,
)

from .helpers import make_spec as spec

NOW = to_ms("2025-06-02T12:00:00Z")
UTC_DAY = 86_400_000
STOCK = AssetClass.STOCKS
CRYPTO = AssetClass.CRYPTO


def et(day: str) -> int:
    return local_midnight_ms(date.fromisoformat(day), NEW_YORK)


def utc(day: str) -> int:
    return to_ms(date.fromisoformat(day))


def covers(plan_requests: object) -> list[tuple[int, int]]:
    return [(t.covers.start_ms, t.covers.end_ms) for r in plan_requests for t in r.targets]  # type: ignore[attr-defined]


# (description, covered ranges as (start day, end day) ET, expected request covers)
DAILY_CASES = [
    ("empty ledger: one request for the whole range", [], [("2024-03-04", "2024-03-16")]),
    ("fully covered: nothing", [("2024-03-04", "2024-03-16")], []),
    (
        "hole in the middle: only the hole",
        [("2024-03-04", "2024-03-06"), ("2024-03-07", "2024-03-16")],
        [("2024-03-06", "2024-03-07")],
    ),
    ("weekend-only hole: nothing", [("2024-03-04", "2024-03-09"), ("2024-03-11", "2024-03-16")], []),
    (
        "holes around a covered weekend: one request",
        [("2024-03-04", "2024-03-08"), ("2024-03-09", "2024-03-11"), ("2024-03-12", "2024-03-16")],
        [("2024-03-08", "2024-03-12")],
    ),
    (
        "holes around a covered session: two requests",
        [("2024-03-04", "2024-03-05"), ("2024-03-06", "2024-03-07"), ("2024-03-08", "2024-03-16")],
        [("2024-03-05", "2024-03-06"), ("2024-03-07", "2024-03-08")],
    ),
]


@pytest.mark.parametrize(("case", "held", "expected"), DAILY_CASES, ids=[c[0] for c in DAILY_CASES])
def test_planner_daily_gaps_match_table_when_ledger_has_holes(
    case: str, held: list[tuple[str, str]], expected: list[tuple[str, str]]
) -> None:
    """Daily stock gaps become exactly the listed requests: holes only, weekends never alone."""
    s = spec("AAPL", "1d", "2024-03-04", "2024-03-15")
    ledger = {SeriesKey("AAPL", Timeframe.parse("1d")): RangeSet.of([(et(a), et(b)) for a, b in held])}
    plan = plan_backfill(s, ledger, NOW)
    assert covers(plan.requests) == [(et(a), et(b)) for a, b in expected]
    assert plan.request_count == len(expected)


@pytest.mark.parametrize(
    ("asset_ticker", "days", "expected"),
    [
        ("X:BTCUSD", 34, 1),  # 34 x 1,440 = 48,960 minutes
        ("X:BTCUSD", 35, 2),  # 50,400 minutes
        ("AAPL", 52 * 7 // 5, 1),  # 52 sessions x 960 = 49,920 (no holidays in this stretch)
        ("AAPL", 80, 2),  # 55 sessions
    ],
)
def test_planner_splits_minute_requests_when_over_50k_base_bars(
    asset_ticker: str, days: int, expected: int
) -> None:
    """A series the store knows trades densely: its gap is cut at local midnights into requests of
    at most 50,000 possible base bars (one page each, run in parallel). Unknown or thin: one paged
    request whose page bound is the same count."""
    start = date(2024, 4, 1)
    s = spec(asset_ticker, "1m", start.isoformat(), (start + timedelta(days=days - 1)).isoformat())
    plan = plan_backfill(s, {}, NOW, densities={asset_ticker: 1.0})
    assert len(plan.requests) == expected
    asset = s.tickers[0].asset_class
    for r in plan.requests:
        assert r.base_units <= MAX_BASE and r.pages == 1
        local = datetime.fromtimestamp(r.fetch.start_ms / 1000, tz=asset.tz)
        assert (local.hour, local.minute) == (0, 0)
    assert RangeSet.of(t.covers for r in plan.requests for t in r.targets) == RangeSet.of([s.wanted(asset)])
    for densities in ({}, {asset_ticker: 0.2}):
        paged = plan_backfill(s, {}, NOW, densities=densities)
        assert len(paged.requests) == 1 and paged.requests[0].pages == expected
        assert paged.requests[0].targets[0].covers == s.wanted(asset)
    assert plan_backfill(s, {}, NOW, densities={asset_ticker: 0.2}).request_count == 1
    bounded = plan_backfill(s, {}, NOW).estimate()
    assert (bounded.low, bounded.high, bounded.sure) == (1, expected, "bounded" if expected > 1 else "exact")


def test_planner_clamps_to_completed_windows_when_range_reaches_now() -> None:
    """Nothing at or after now is requested; only windows that have ended are covered."""
    now = to_ms("2024-05-15T14:07:30Z")
    s = spec("X:BTCUSD", "5m", "2024-05-14", "2024-05-20")
    plan = plan_backfill(s, {}, now)
    assert len(plan.requests) == 1
    assert plan.requests[0].targets[0].covers == TimeRange(utc("2024-05-14"), to_ms("2024-05-15T14:05:00Z"))
    assert plan.requests[0].fetch.end_ms <= now


@pytest.mark.parametrize(
    ("now", "last_covered"),
    [
        ("2024-05-15T19:00:00Z", "2024-05-15"),  # 15:00 ET: today's session is still trading
        ("2024-05-16T00:30:00Z", "2024-05-16"),  # 20:30 ET: the extended session is over, today is final
    ],
)
def test_planner_covers_todays_daily_bar_only_when_session_ended(now: str, last_covered: str) -> None:
    """Today's daily stock bar is covered only once the session has ended."""
    s = spec("AAPL", "1d", "2024-05-13", "2024-05-17")
    plan = plan_backfill(s, {}, to_ms(now))
    assert plan.requests[0].targets[0].covers.end_ms == et(last_covered)
    assert plan.requests[0].fetch.end_ms <= to_ms(now)


def test_planner_uses_grouped_daily_when_many_tickers_few_sessions() -> None:
    """Five stocks known to trade daily over two sessions cost two grouped requests instead of five;
    not known, a ticker absent from a session may cost a request of its own, so grouped requests are
    kept only while that worst case (2 + 5) stays within 2 % of the five per-ticker requests."""
    s = spec("AAPL,MSFT,SPY,QQQ,JPM", "1d", "2024-03-07", "2024-03-08")
    blind = plan_backfill(s, {}, NOW)
    assert [r.kind for r in blind.requests] == ["aggs"] * 5
    plan = plan_backfill(s, {}, NOW, traded={"AAPL", "MSFT", "SPY", "QQQ", "JPM"})
    assert [r.kind for r in plan.requests] == ["grouped", "grouped"]
    one_unknown = plan_backfill(s, {}, NOW, traded={"AAPL", "MSFT", "SPY", "QQQ"})
    assert [r.kind for r in one_unknown.requests] == ["grouped", "grouped"]  # 2 + 1 <= 5.1
    many = spec(",".join(f"T{i:03d}" for i in range(100)), "1d", "2024-03-07", "2024-03-08")
    assert {r.kind for r in plan_backfill(many, {}, NOW).requests} == {"grouped"}  # 2 + 100 <= 102
    assert {t.ticker for t in plan.requests[0].targets} == {"AAPL", "MSFT", "SPY", "QQQ", "JPM"}
    per_ticker = RangeSet.of(t.covers for r in plan.requests for t in r.targets if t.ticker == "AAPL")
    assert per_ticker == RangeSet.of([day_range_ms(date(2024, 3, 7), date(2024, 3, 8), NEW_YORK)])


def test_planner_keeps_per_ticker_daily_when_sessions_outnumber_tickers() -> None:
    """Two stocks over a month stay at one request each."""
    plan = plan_backfill(spec("AAPL,MSFT", "1d", "2024-03-01", "2024-03-31"), {}, NOW)
    assert [(r.kind, r.ticker) for r in plan.requests] == [("aggs", "AAPL"), ("aggs", "MSFT")]
    assert (
        plan_backfill(
            spec("AAPL,MSFT", "1d", "2024-03-01", "2024-03-31", grouped_daily=False), {}, NOW
        ).request_count
        == 2
    )


def test_planner_derive_fetches_only_finest_when_coarser_are_requested() -> None:
    """With derive, 5m is fetched and 15m/1h/4h ride on the same requests as derived targets."""
    s = spec("AAPL", "5m,15m,1h,4h,1d", "2024-03-04", "2024-03-08", derive=True)
    plan = plan_backfill(s, {}, NOW)
    aggs = [r for r in plan.requests if r.timeframe == Timeframe.parse("5m")]
    assert len(aggs) == 1 and plan.request_count == 2
    assert sorted(str(t.timeframe) for t in aggs[0].targets if t.derived) == ["15m", "1h", "4h"]


def test_planner_derive_builds_from_store_when_finest_already_covered() -> None:
    """A coarse gap over covered fine bars becomes a local derive task and no request."""
    s = spec("X:BTCUSD", "5m,1h", "2024-03-04", "2024-03-08", derive=True)
    full = RangeSet.of([s.wanted(CRYPTO)])
    plan = plan_backfill(s, {SeriesKey("X:BTCUSD", Timeframe.parse("5m")): full}, NOW)
    assert plan.request_count == 0
    assert [(d.source, d.target, d.covers) for d in plan.derives] == [
        (Timeframe.parse("5m"), Timeframe.parse("1h"), s.wanted(CRYPTO))
    ]


def test_planner_plans_corporate_actions_incrementally_when_asked() -> None:
    """Dividends and splits of stocks are planned once per missing range; crypto has none."""
    s = spec("AAPL,X:BTCUSD", "1d", "2024-01-01", "2024-01-31", corporate_actions=True)
    plan = plan_backfill(s, {}, NOW)
    assert sorted((a.ticker, a.kind) for a in plan.actions) == [("AAPL", "dividends"), ("AAPL", "splits")]
    held = {ActionsKey("AAPL", "dividends"): RangeSet.of([(utc("2024-01-01"), utc("2025-06-01"))])}
    again = plan_backfill(s, {}, NOW, held)
    div = [a for a in again.actions if a.kind == "dividends"]
    assert [a.covers for a in div] == [TimeRange(utc("2025-06-01"), utc("2025-06-03"))]


def test_planner_counts_requests_per_series_for_dry_run() -> None:
    """The per-series counts add up to the plan's request count."""
    plan = plan_backfill(spec("AAPL,X:ETHUSD", "1m,1d", "2024-01-01", "2024-06-30"), {}, NOW)
    counts = plan.per_series()
    assert sum(counts.values()) == plan.request_count
    assert counts["X:ETHUSD 1m"] == math.ceil(182 * 1440 / 34 / 1440)


def test_planner_final_end_floors_to_window_when_intraday() -> None:
    """An intraday series is final up to the start of the window holding now."""
    now = to_ms("2024-05-15T14:07:30Z")
    assert final_end(CRYPTO, Timeframe.parse("1h"), now) == to_ms("2024-05-15T14:00:00Z")
    assert final_end(STOCK, Timeframe.parse("4h"), now) == to_ms("2024-05-15T12:00:00Z")  # 08:00 ET


# -- properties ----------------------------------------------------------------------------------

DAYS = 60
START = date(2024, 2, 1)


def _day(i: int, asset: AssetClass) -> int:
    return local_midnight_ms(START + timedelta(days=i), asset.tz)


spans = st.lists(st.tuples(st.integers(0, DAYS), st.integers(0, 6)), max_size=8)
assets = st.sampled_from([(STOCK, "AAPL"), (CRYPTO, "X:BTCUSD")])
frames = st.sampled_from(["1m", "5m", "1h", "4h", "1d"])


@settings(max_examples=60, deadline=None)
@given(held_spans=spans, asset_ticker=assets, tf_text=frames)
def test_planner_requests_fill_exactly_the_tradable_gaps_for_any_ledger(
    held_spans: list[tuple[int, int]], asset_ticker: tuple[AssetClass, str], tf_text: str
) -> None:
    """covered | requested holds every tradable wanted window, and nothing tradable is fetched twice."""
    asset, ticker = asset_ticker
    tf = Timeframe.parse(tf_text)
    s = BackfillSpec(tuple(parse_tickers(ticker)), (tf,), START, START + timedelta(days=DAYS - 1))
    held = RangeSet.of([(_day(a, asset), _day(a + n, asset)) for a, n in held_spans])
    plan = plan_backfill(s, {SeriesKey(ticker, Timeframe.parse(tf_text)): held}, NOW)
    got = RangeSet.of(t.covers for r in plan.requests for t in r.targets)
    wanted = RangeSet.of([s.wanted(asset)])
    missing_tradable = tradable(asset, tf, s.wanted(asset)) - held
    assert not (missing_tradable - got)
    assert not tradable(asset, tf, s.wanted(asset)).intersection(got & held)
    assert not (got - wanted)
    assert all(r.base_units <= MAX_BASE * r.pages for r in plan.requests)
    pieces = [t.covers for r in plan.requests for t in r.targets]
    assert sum(p.duration_ms for p in pieces) == got.total_ms  # disjoint


@settings(max_examples=40, deadline=None)
@given(first=st.integers(0, 200), length=st.integers(1, 400), asset=st.sampled_from([STOCK, CRYPTO]))
def test_planner_split_is_minimal_per_day_cut_when_range_is_long(
    first: int, length: int, asset: AssetClass
) -> None:
    """Pieces partition the range, each under the limit, and no two neighbours fit in one."""
    tf = Timeframe.parse("5m")
    rng = TimeRange(_day(first, asset), _day(first + length, asset))
    pieces = split_range(asset, tf, rng)
    assert pieces[0].start_ms == rng.start_ms and pieces[-1].end_ms == rng.end_ms
    assert all(a.end_ms == b.start_ms for a, b in itertools.pairwise(pieces))
    units = [base_units(asset, tf, p) for p in pieces]
    assert all(u <= MAX_BASE for u in units)
    assert all(a + b > MAX_BASE for a, b in itertools.pairwise(units))
    assert len(pieces) >= math.ceil(base_units(asset, tf, rng) / MAX_BASE)


def test_planner_gaps_are_empty_when_range_is_in_the_future() -> None:
    """A range after now plans nothing (the vendor would answer 403)."""
    wanted = TimeRange(NOW + UTC_DAY, NOW + 5 * UTC_DAY)
    assert gaps(CRYPTO, Timeframe.parse("1m"), wanted, RangeSet(), NOW) == []
