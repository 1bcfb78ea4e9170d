"""The planner's choice between flat files and REST, per dataset and day (pure: tables of inputs)."""

from __future__ import annotations

from datetime import date

from mdw.backfill.fileplan import CostModel, Listing, plan_with_files, rest_per_day
from mdw.backfill.plan import SeriesKey
from mdw.backfill.planner import plan_backfill
from mdw.config import RateLimit
from mdw.domain import NEW_YORK, RangeSet, Timeframe, local_midnight_ms
from mdw.flatfiles.keys import FileInfo, dataset_named, published_at_ms

from .helpers import make_spec

MINUTES = dataset_named("us_stocks_sip/minute_aggs_v1")
DAYS = dataset_named("us_stocks_sip/day_aggs_v1")
MARCH = MINUTES.days(date(2024, 3, 1), date(2024, 3, 31))
NOW = published_at_ms(date(2024, 3, 28)) + 3_600_000  # March 28's files are out; the 29th is Good Friday
UNLIMITED = CostModel(RateLimit.parse("unlimited"))
MANY = ",".join(f"T{i:03d}" for i in range(400))


def _listing(ds: object, size: int, days: list[date] = MARCH) -> Listing:
    prefix = ds.prefix  # type: ignore[attr-defined]
    files = {d: FileInfo(ds.key(d), size, f'"{prefix}{d}"', published_at_ms(d)) for d in days}  # type: ignore[attr-defined]
    return Listing(ds, files)  # type: ignore[arg-type]


def test_fileplan_keeps_rest_for_a_few_tickers_when_requests_are_cheap() -> None:
    """Three tickers over a month on an unlimited plan: a few requests beat 20 files of 30 MB."""
    spec = make_spec("AAPL,MSFT,KO", "1m", "2024-03-01", "2024-03-31")
    plan = plan_with_files(spec, {}, NOW, None, [_listing(MINUTES, 30_000_000)], UNLIMITED)
    assert not plan.files and plan.request_count == 3
    cost = plan.costs[0]
    assert (cost.dataset, cost.days, cost.chosen) == (MINUTES.prefix, 20, 0) and cost.file_s > cost.rest_s


def test_fileplan_takes_every_published_day_from_files_for_the_whole_market() -> None:
    """400 tickers: every published day comes from its file; nothing is left for REST."""
    spec = make_spec(MANY, "1m", "2024-03-01", "2024-03-31")
    plan = plan_with_files(spec, {}, NOW, None, [_listing(MINUTES, 2_000_000)], UNLIMITED)
    assert [f.day for f in plan.files] == MARCH and plan.request_count == 0
    assert plan.file_bytes == 20 * 2_000_000 and plan.costs[0].chosen == 20
    assert all(f.rest_requests > 0 and f.file_s < f.rest_s for f in plan.files)


def test_fileplan_leaves_unpublished_days_to_rest() -> None:
    """Days missing from the listing (not yet published) are fetched per ticker as before."""
    spec = make_spec(MANY, "1m", "2024-03-01", "2024-04-05")
    plan = plan_with_files(spec, {}, local_midnight_ms(date(2024, 4, 6), NEW_YORK), None,
                           [_listing(MINUTES, 2_000_000)], UNLIMITED)
    assert [f.day for f in plan.files] == MARCH
    after = local_midnight_ms(date(2024, 3, 29), NEW_YORK)  # the day after the last published file
    assert plan.requests and all(r.fetch.start_ms >= after for r in plan.requests)
    assert {r.ticker for r in plan.requests} == {f"T{i:03d}" for i in range(400)}


def test_fileplan_source_overrides_the_cost_model_both_ways() -> None:
    """--source flatfiles takes files even for three tickers; --source rest never lists them."""
    few = make_spec("AAPL,MSFT,KO", "1m", "2024-03-01", "2024-03-31", source="flatfiles")
    assert len(plan_with_files(few, {}, NOW, None, [_listing(MINUTES, 30_000_000)], UNLIMITED).files) == 20
    many = make_spec(MANY, "1m", "2024-03-01", "2024-03-31", source="rest")
    plan = plan_with_files(many, {}, NOW, None, [_listing(MINUTES, 1000)], UNLIMITED)
    assert not plan.files and plan.request_count == 400


def test_fileplan_skips_days_already_held_and_files_nobody_needs() -> None:
    """Days every wanted series holds cost nothing; their files are not candidates."""
    spec = make_spec(MANY, "1m", "2024-03-01", "2024-03-31")
    held = RangeSet.of([MINUTES.day_range(d) for d in MARCH[:10]])
    coverage = {SeriesKey.of(f"T{i:03d}", "1m"): held for i in range(400)}
    plan = plan_with_files(spec, coverage, NOW, None, [_listing(MINUTES, 2_000_000)], UNLIMITED)
    assert [f.day for f in plan.files] == MARCH[10:] and plan.costs[0].days == 10


def test_fileplan_sends_a_refused_dataset_to_rest_with_a_note() -> None:
    """A dataset the key may not read is planned over REST, and the plan says why."""
    spec = make_spec(MANY, "1m", "2024-03-01", "2024-03-31")
    refused = Listing(MINUTES, _listing(MINUTES, 1000).files, "403 AccessDenied")
    plan = plan_with_files(spec, {}, NOW, None, [refused], UNLIMITED)
    assert not plan.files and plan.request_count == 400
    assert plan.notes and "403 AccessDenied" in plan.notes[0]


def test_fileplan_derives_coarser_timeframes_from_minute_files_when_asked() -> None:
    """With --derive, the minute files also fill 5m and 1h, so no request is left for them."""
    spec = make_spec(MANY, "1m,5m,1h,1d", "2024-03-01", "2024-03-31", derive=True)
    plan = plan_with_files(spec, {}, NOW, None, [_listing(MINUTES, 2_000_000), _listing(DAYS, 20_000)],
                           UNLIMITED)
    minute_files = [f for f in plan.files if f.dataset == MINUTES]
    assert len(minute_files) == 20 and minute_files[0].derive == (Timeframe(5, "m"), Timeframe(1, "h"))
    assert len([f for f in plan.files if f.dataset == DAYS]) == 20
    assert plan.request_count == 0 and not plan.derives


def test_fileplan_spreads_a_request_over_the_trading_days_it_spans() -> None:
    """A month-long request counts 1/20 of a request on each of March's 20 sessions."""
    spec = make_spec("AAPL", "1m", "2024-03-01", "2024-03-31")
    rest = plan_backfill(spec, {}, NOW)
    per_day = rest_per_day(rest.requests, ())
    assert len(per_day) == 20
    assert all(abs(r - 1 / 20) < 1e-9 for r, _ in per_day.values())
    assert abs(sum(r for r, _ in per_day.values()) - 1.0) < 1e-9


def test_fileplan_rate_limited_rest_makes_files_win_sooner() -> None:
    """At 5 requests a minute, thirty tickers' month costs minutes of waiting: files are cheaper."""
    spec = make_spec(",".join(f"T{i:03d}" for i in range(30)), "1m", "2024-03-01", "2024-03-31")
    listing = [_listing(MINUTES, 30_000_000)]
    assert not plan_with_files(spec, {}, NOW, None, listing, UNLIMITED).files
    slow = CostModel(RateLimit.parse("5/min"))
    assert len(plan_with_files(spec, {}, NOW, None, listing, slow).files) == 20
