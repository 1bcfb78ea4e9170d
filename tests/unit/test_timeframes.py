"""Timeframe parsing, the vendor mapping both ways, and the base aggregate."""

from __future__ import annotations

import pytest

from mdw.domain import Timeframe, parse_timeframes
from mdw.errors import UsageError


@pytest.mark.parametrize(
    ("text", "multiplier", "timespan", "base", "fixed_ms"),
    [
        ("30s", 30, "second", "minute", 30_000),
        ("1m", 1, "minute", "minute", 60_000),
        ("5m", 5, "minute", "minute", 300_000),
        ("1h", 1, "hour", "minute", 3_600_000),
        ("4h", 4, "hour", "minute", 14_400_000),
        ("1d", 1, "day", "day", 86_400_000),
        ("1w", 1, "week", "day", 604_800_000),
        ("1mo", 1, "month", "day", None),
        ("1q", 1, "quarter", "day", None),
        ("1y", 1, "year", "day", None),
        (" 15M ", 15, "minute", "minute", 900_000),
        ("3MO", 3, "month", "day", None),
    ],
)
def test_timeframe_parse_maps_to_vendor_and_back(
    text: str, multiplier: int, timespan: str, base: str, fixed_ms: int | None
) -> None:
    """Each timeframe has the vendor's (multiplier, timespan), a base aggregate, and maps back."""
    tf = Timeframe.parse(text)
    assert (tf.multiplier, tf.timespan, tf.base, tf.fixed_ms) == (multiplier, timespan, base, fixed_ms)
    assert Timeframe.from_vendor(multiplier, timespan) == tf
    assert Timeframe.parse(str(tf)) == tf
    assert tf.intraday is (base == "minute")


@pytest.mark.parametrize(
    "text", ["", "m", "0m", "-1m", "1.5m", "1x", "1 m", "1min", "5mins", "100000m", "h1"]
)
def test_timeframe_parse_rejects_malformed_text_with_the_accepted_form(text: str) -> None:
    """A malformed timeframe raises UsageError quoting it and giving the <n><unit> form."""
    with pytest.raises(UsageError) as info:
        Timeframe.parse(text)
    assert f"invalid timeframe {text.strip()!r}" in str(info.value)
    assert "<n><unit> with unit one of s m h d w mo q y" in str(info.value)


def test_timeframe_constructor_rejects_unknown_units_and_zero() -> None:
    """Building a Timeframe directly enforces the same rules as parsing."""
    with pytest.raises(UsageError, match="invalid timeframe 1x"):
        Timeframe(1, "x")
    with pytest.raises(UsageError, match="invalid timeframe 0m"):
        Timeframe(0, "m")


def test_timeframe_from_vendor_rejects_unknown_timespans_listing_the_known_ones() -> None:
    """An unknown vendor timespan names itself and the timespans the vendor uses."""
    with pytest.raises(UsageError, match="unknown vendor timespan 'minutes'; expected one of second, minute"):
        Timeframe.from_vendor(1, "minutes")


def test_parse_timeframes_drops_duplicates_and_rejects_empty_lists() -> None:
    """A comma list keeps first-seen order without repeats; an empty one is a usage error."""
    assert parse_timeframes("1m,5m, 1M,1d") == [Timeframe(1, "m"), Timeframe(5, "m"), Timeframe(1, "d")]
    with pytest.raises(UsageError, match="no timeframes given"):
        parse_timeframes(",")


def test_timeframe_sort_key_orders_by_unit_then_multiplier() -> None:
    """Sorting puts finer units first: 1m, 5m, 1h, 1d, 1w, 1mo."""
    tfs = [Timeframe.parse(x) for x in ("1mo", "1d", "5m", "1w", "1h", "1m")]
    assert [str(t) for t in sorted(tfs, key=Timeframe.sort_key)] == ["1m", "5m", "1h", "1d", "1w", "1mo"]


def test_timeframe_is_hashable_and_equal_by_value() -> None:
    """Timeframes are frozen values usable as dict keys."""
    assert {Timeframe.parse("5m"): 1}[Timeframe(5, "m")] == 1
