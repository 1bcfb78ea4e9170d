"""Vendor use over the last hour and failed ranges, read from run records."""

from __future__ import annotations

from datetime import date

from mdw.config import RateLimit
from mdw.domain import AssetClass, RangeSet, day_range_ms
from mdw.service.run_window import failed_ranges, vendor_window
from mdw.store.base import RunRecord

H = 3_600_000
NOW = 100 * H


def _run(start: int, end: int | None, requests: int, status: str = "ok", **report: object) -> RunRecord:
    body = {"requests": requests, "rate_limited": requests // 10, "retries": requests // 5, **report}
    return RunRecord(id=f"r{start}", kind="backfill", status=status, started_at_ms=start, finished_at_ms=end,
                     report=body)


def test_vendor_window_prorates_runs_that_straddle_the_window() -> None:
    """A run half inside the hour counts half; older runs do not count; running runs count whole."""
    runs = [
        _run(NOW - 30 * 60_000, NOW - 10 * 60_000, 100),  # inside
        _run(NOW - 90 * 60_000, NOW - 30 * 60_000, 200),  # half inside
        _run(NOW - 3 * H, NOW - 2 * H, 1000),  # outside
        _run(NOW - 5 * 60_000, None, 50, status="running"),  # running now
    ]
    w = vendor_window(runs, NOW, 3600, RateLimit.parse("5/min"))
    assert w["requests"] == 100 + 100 + 50
    assert w["rate_limited"] == 10 + 10 + 5
    assert w["retries"] == 20 + 20 + 10
    assert w["runs"] == 3
    assert w["allowance"] == 300
    assert w["budget_share"] == 250 / 300


def test_vendor_window_measures_unlimited_plans_against_the_courtesy_ceiling() -> None:
    """An unlimited plan's share is taken of 100 requests per second."""
    w = vendor_window([_run(NOW - 60_000, NOW, 3600)], NOW, 3600, RateLimit.parse("unlimited"))
    assert w["plan"] == "unlimited"
    assert w["budget_share"] == 3600 / 360_000


def test_failed_ranges_take_the_requested_range_of_series_that_did_not_end_ok() -> None:
    """Only the failed series' runs contribute, over their requested local days."""
    bad = RunRecord(id="a", kind="backfill", status="partial", started_at_ms=0, finished_at_ms=1,
                    params={"specs": [{"tickers": ["AAPL", "MSFT"], "timeframes": ["1d"],
                                       "start": "2024-01-02", "end": "2024-01-03"}]},
                    report={"series": [{"series": "AAPL 1d", "status": "failed"},
                                       {"series": "MSFT 1d", "status": "ok"}]})
    rng = day_range_ms(date(2024, 1, 2), date(2024, 1, 3), AssetClass.STOCKS.tz)
    assert failed_ranges([bad], "AAPL", "1d") == RangeSet.of([rng])
    assert not failed_ranges([bad], "MSFT", "1d")
    assert not failed_ranges([bad], "AAPL", "1h")
