"""The trading calendar: NYSE holidays, early closes, DST, 24/7 crypto, 24/5 forex, bar windows."""

from __future__ import annotations

import calendar as pycal
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdw.calendar import (
    bar_window_start,
    is_market_open,
    next_session_close,
    nyse_holiday_names,
    nyse_session,
    nyse_sessions,
    tradable,
    trading_days,
)
from mdw.domain import AssetClass, RangeSet, Timeframe, TimeRange, day_range_ms

NY = ZoneInfo("America/New_York")
UTCZ = ZoneInfo("UTC")
STOCKS, CRYPTO, FOREX = AssetClass.STOCKS, AssetClass.CRYPTO, AssetClass.FOREX
NYSE_HOLIDAYS_2024 = [
    date(2024, 1, 1), date(2024, 1, 15), date(2024, 2, 19), date(2024, 3, 29), date(2024, 5, 27),
    date(2024, 6, 19), date(2024, 7, 4), date(2024, 9, 2), date(2024, 11, 28), date(2024, 12, 25),
]


def utc_ms(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    """Epoch ms of a UTC wall time, computed without the code under test."""
    return pycal.timegm((y, mo, d, h, mi, 0)) * 1000


def tf(text: str) -> Timeframe:
    return Timeframe.parse(text)


@pytest.mark.parametrize("holiday", NYSE_HOLIDAYS_2024, ids=str)
def test_nyse_has_no_session_on_2024_holidays(holiday: date) -> None:
    """Each 2024 NYSE holiday has no session, no daily bar date and no intraday window."""
    assert nyse_session(holiday) is None
    day = day_range_ms(holiday, holiday, NY)
    assert trading_days(STOCKS, day) == []
    assert tradable(STOCKS, tf("1m"), day) == RangeSet()
    assert tradable(STOCKS, tf("1d"), day) == RangeSet()


def test_nyse_holiday_names_name_exactly_the_2024_holidays() -> None:
    """The holiday names cover the ten 2024 closures, e.g. Thanksgiving on 2024-11-28."""
    names = nyse_holiday_names(2024)
    assert sorted(names) == NYSE_HOLIDAYS_2024
    assert names[date(2024, 11, 28)] == "Thanksgiving"


def test_nyse_2024_has_252_sessions_and_none_on_weekends() -> None:
    """2024 had 252 NYSE sessions, all on weekdays, none on a holiday."""
    sessions = nyse_sessions(date(2024, 1, 1), date(2024, 12, 31))
    assert len(sessions) == 252
    assert all(s.day.weekday() < 5 and s.day not in NYSE_HOLIDAYS_2024 for s in sessions)


def test_nyse_early_close_on_2024_11_29_is_13_00_et() -> None:
    """The day after Thanksgiving closes at 13:00 ET (18:00Z); extended hours end at 17:00 ET."""
    s = nyse_session(date(2024, 11, 29))
    assert s is not None and s.early_close
    assert s.regular_close_ms == utc_ms(2024, 11, 29, 18)
    assert s.extended_close_ms == utc_ms(2024, 11, 29, 22)
    assert s.regular_open_ms == utc_ms(2024, 11, 29, 14, 30)
    normal = nyse_session(date(2024, 11, 27))
    assert normal is not None and not normal.early_close
    assert normal.regular_close_ms == utc_ms(2024, 11, 27, 21)


@pytest.mark.parametrize(
    ("day", "open_utc_hour"),
    [(date(2024, 3, 8), 9), (date(2024, 3, 11), 8), (date(2024, 11, 1), 8), (date(2024, 11, 4), 9)],
    ids=str,
)
def test_nyse_extended_open_is_04_00_et_on_both_sides_of_dst(day: date, open_utc_hour: int) -> None:
    """04:00 ET is 09:00Z under EST and 08:00Z under EDT; the session is 16 hours either way."""
    s = nyse_session(day)
    assert s is not None
    assert s.extended_open_ms == utc_ms(day.year, day.month, day.day, open_utc_hour)
    assert s.regular_open_ms == s.extended_open_ms + 5 * 3_600_000 + 30 * 60_000
    assert s.extended_close_ms - s.extended_open_ms == 16 * 3_600_000


def test_tradable_minutes_across_the_spring_dst_weekend_shift_by_an_hour_in_utc() -> None:
    """Friday before and Monday after 2024-03-10 give two 16-hour windows an hour apart in UTC."""
    rng = day_range_ms(date(2024, 3, 8), date(2024, 3, 11), NY)
    got = tradable(STOCKS, tf("1m"), rng)
    assert got.ranges == (
        TimeRange(utc_ms(2024, 3, 8, 9), utc_ms(2024, 3, 9, 1)),
        TimeRange(utc_ms(2024, 3, 11, 8), utc_ms(2024, 3, 12, 0)),
    )


def test_tradable_stocks_over_thanksgiving_week_skips_the_holiday_and_shortens_friday() -> None:
    """Intraday: four sessions, Friday ending 17:00 ET; daily: four ET days, Thursday missing."""
    rng = day_range_ms(date(2024, 11, 24), date(2024, 11, 30), NY)
    intraday = tradable(STOCKS, tf("5m"), rng)
    full_days = [TimeRange(utc_ms(2024, 11, d, 9), utc_ms(2024, 11, d + 1, 1)) for d in (25, 26, 27)]
    assert intraday.ranges == (*full_days, TimeRange(utc_ms(2024, 11, 29, 9), utc_ms(2024, 11, 29, 22)))
    daily = tradable(STOCKS, tf("1d"), rng)
    assert daily.ranges == (
        TimeRange(utc_ms(2024, 11, 25, 5), utc_ms(2024, 11, 28, 5)),
        TimeRange(utc_ms(2024, 11, 29, 5), utc_ms(2024, 11, 30, 5)),
    )
    assert trading_days(STOCKS, rng) == [date(2024, 11, d) for d in (25, 26, 27, 29)]


def test_tradable_weekly_and_monthly_start_at_their_window_start_even_when_closed() -> None:
    """A weekly bar starts Sunday 00:00 ET and a monthly one on the 1st, both closed days."""
    week = tradable(STOCKS, tf("1w"), day_range_ms(date(2024, 11, 24), date(2024, 11, 30), NY))
    assert week.contains(utc_ms(2024, 11, 24, 5))  # Sunday 00:00 ET
    june1 = day_range_ms(date(2024, 6, 1), date(2024, 6, 1), NY)  # a Saturday
    assert tradable(STOCKS, tf("1mo"), june1) == RangeSet.of([june1])
    assert tradable(STOCKS, tf("1d"), june1) == RangeSet()


def test_tradable_intraday_widens_to_the_bar_window_holding_the_open() -> None:
    """A 90m bar anchored at midnight ET starting 03:00 ET holds the 04:00 open, so it counts."""
    rng = day_range_ms(date(2024, 11, 27), date(2024, 11, 27), NY)
    got = tradable(STOCKS, tf("90m"), rng)
    assert got.ranges[0].start_ms == utc_ms(2024, 11, 27, 8)  # 03:00 ET


@settings(deadline=None, max_examples=50)
@given(st.integers(0, 3 * 365 * 24), st.integers(1, 24 * 40), st.sampled_from(["1m", "1h", "4h", "1d", "1w"]))
def test_tradable_crypto_has_no_gaps(start_hour: int, hours: int, timeframe: str) -> None:
    """Crypto trades 24/7: every part of any range can hold a bar, through weekends and DST."""
    start = utc_ms(2023, 1, 1) + start_hour * 3_600_000
    rng = TimeRange(start, start + hours * 3_600_000)
    assert tradable(CRYPTO, tf(timeframe), rng) == RangeSet.of([rng])


def test_crypto_trades_on_holidays_and_weekends() -> None:
    """Every calendar day is a crypto trading day, and the market is always open."""
    rng = day_range_ms(date(2024, 12, 21), date(2024, 12, 29), UTCZ)
    assert trading_days(CRYPTO, rng) == [date(2024, 12, 21) + timedelta(days=i) for i in range(9)]
    assert is_market_open(CRYPTO, utc_ms(2024, 12, 25, 3))


def test_forex_closes_from_friday_17_00_to_sunday_17_00_et() -> None:
    """Forex trades 24/5: Saturday is closed; Sunday opens at 17:00 ET (22:00Z in November)."""
    rng = day_range_ms(date(2024, 11, 22), date(2024, 11, 25), UTCZ)
    got = tradable(FOREX, tf("1h"), rng)
    assert got.ranges == (
        TimeRange(utc_ms(2024, 11, 22), utc_ms(2024, 11, 22, 22)),
        TimeRange(utc_ms(2024, 11, 24, 22), utc_ms(2024, 11, 26)),
    )
    assert date(2024, 11, 23) not in trading_days(FOREX, rng)
    assert not is_market_open(FOREX, utc_ms(2024, 11, 23, 12))
    assert is_market_open(FOREX, utc_ms(2024, 11, 25, 12))


@pytest.mark.parametrize(
    ("asset", "timeframe", "at", "start"),
    [
        (STOCKS, "4h", utc_ms(2024, 3, 11, 14, 15), utc_ms(2024, 3, 11, 12)),  # 10:15 EDT -> 08:00 EDT
        (STOCKS, "4h", utc_ms(2024, 3, 8, 14, 15), utc_ms(2024, 3, 8, 13)),  # 09:15 EST -> 08:00 EST
        (CRYPTO, "4h", utc_ms(2024, 3, 11, 10, 15), utc_ms(2024, 3, 11, 8)),
        (STOCKS, "1h", utc_ms(2024, 3, 11, 14, 59), utc_ms(2024, 3, 11, 14)),
        (STOCKS, "5m", utc_ms(2024, 3, 11, 14, 59), utc_ms(2024, 3, 11, 14, 55)),
        (STOCKS, "1d", utc_ms(2024, 3, 11, 3), utc_ms(2024, 3, 10, 5)),  # 23:00 ET Mar 10 -> 00:00 EST
        (STOCKS, "1d", utc_ms(2024, 3, 11, 4), utc_ms(2024, 3, 11, 4)),  # 00:00 EDT Mar 11
        (CRYPTO, "1d", utc_ms(2024, 3, 11, 3), utc_ms(2024, 3, 11)),
        (STOCKS, "1w", utc_ms(2024, 11, 27, 15), utc_ms(2024, 11, 24, 5)),  # Wed -> Sunday 00:00 EST
        (CRYPTO, "1w", utc_ms(2024, 11, 27, 15), utc_ms(2024, 11, 24)),
        (STOCKS, "1mo", utc_ms(2024, 11, 27, 15), utc_ms(2024, 11, 1, 4)),  # Nov 1 was still EDT
        (CRYPTO, "1mo", utc_ms(2024, 11, 27, 15), utc_ms(2024, 11, 1)),
        (STOCKS, "1q", utc_ms(2024, 11, 27, 15), utc_ms(2024, 10, 1, 4)),
        (STOCKS, "1y", utc_ms(2024, 11, 27, 15), utc_ms(2024, 1, 1, 5)),
    ],
)
def test_bar_window_start_anchors_at_local_midnight(
    asset: AssetClass, timeframe: str, at: int, start: int
) -> None:
    """Bars start at local midnight multiples (ET for stocks, UTC for crypto), Sundays, the 1st."""
    assert bar_window_start(asset, tf(timeframe), at) == start


def test_is_market_open_distinguishes_regular_and_extended_hours() -> None:
    """07:00 ET is extended hours only; the early-close afternoon is closed after 13:00 ET."""
    pre = utc_ms(2024, 11, 27, 12)  # 07:00 EST
    assert is_market_open(STOCKS, pre) and not is_market_open(STOCKS, pre, extended=False)
    after_early = utc_ms(2024, 11, 29, 19)  # 14:00 EST on the early-close day
    assert is_market_open(STOCKS, after_early) and not is_market_open(STOCKS, after_early, extended=False)
    assert not is_market_open(STOCKS, utc_ms(2024, 11, 28, 15))  # Thanksgiving


def test_next_session_close_skips_holidays_and_weekends() -> None:
    """After Wednesday's close the next close is the early close on Friday (Thursday is a holiday)."""
    s = next_session_close(utc_ms(2024, 11, 27, 21))
    assert s.day == date(2024, 11, 29) and s.regular_close_ms == utc_ms(2024, 11, 29, 18)
