"""Typing-only checks of the public API, read by mypy --strict in `make lint` and never run.

Each line is a use a caller writes; if a signature drifts, mypy fails here (the stamina habit).
"""

from __future__ import annotations

from typing import assert_type

import mdw
from mdw import (
    AssetClass,
    BarBatch,
    MdwError,
    RangeSet,
    RateLimit,
    Settings,
    Ticker,
    Timeframe,
    TimeRange,
    load_settings,
    parse_ticker,
)


def _uses() -> None:
    assert_type(parse_ticker("AAPL"), Ticker)
    assert_type(parse_ticker("BTCUSD", "crypto").asset_class, AssetClass)
    assert_type(parse_ticker("BTCUSD", AssetClass.CRYPTO).symbol, str)
    tf = Timeframe.parse("5m")
    assert_type(tf, Timeframe)
    assert_type(tf.fixed_ms, int | None)
    assert_type(Timeframe.from_vendor(5, "minute"), Timeframe)
    ranges = RangeSet.of([TimeRange(0, 10), (20, 30)])
    assert_type(ranges - RangeSet.of([(5, 25)]), RangeSet)
    assert_type(ranges | [TimeRange(40, 50)], RangeSet)
    assert_type(ranges & ranges, RangeSet)
    assert_type(ranges.total_ms, int)
    batch = BarBatch.empty("AAPL", tf)
    assert_type(batch.validate(), BarBatch)
    assert_type(len(batch), int)
    settings = load_settings(None, rate_limit="100/s")
    assert_type(settings, Settings)
    assert_type(settings.rate_limit, RateLimit)
    assert_type(settings.api_key, str | None)
    assert_type(RateLimit.parse("5/min").seconds_for(10), float)
    assert_type(mdw.__version__, str)
    wh = mdw.connect("sqlite:///mdw.db", rate_limit="unlimited", polygon_api_key="k")
    mdw.connect("sqlite:///mdw.db", rate_limt="100/s")  # type: ignore[call-arg]  # a typo is caught
    assert_type(wh.plan("AAPL", "1d", "2024-01-02", "2024-01-31", derive=True).request_count, int)
    assert_type(wh.backfill(["AAPL"], ["1d"], "2024-01-02", "2024-01-31", rate_limit="10/s").exit_code, int)
    assert_type(wh.coverage("AAPL", "1d"), RangeSet)
    try:
        load_settings("mdw.toml")
    except MdwError as exc:
        assert_type(str(exc), str)
