"""The synthetic market itself: calendar, determinism, aggregation rules, splits, paging."""

from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta

import numpy as np
import pytest

from mdw.domain import NEW_YORK, AssetClass, BarBatch, Timeframe, local_midnight_ms, to_ms
from mdw.simulator import Market
from mdw.simulator.actions import adjustment_factor

NOW = to_ms(datetime(2026, 11, 20, 12, 0))  # a fixed data clock keeps every test reproducible


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(42, now_ms=NOW)


def _et(day: date, hh: int, mm: int = 0) -> int:
    return int(datetime.combine(day, time(hh, mm), tzinfo=NEW_YORK).timestamp() * 1000)


def _day_range(day: date) -> tuple[int, int]:
    return local_midnight_ms(day, NEW_YORK), local_midnight_ms(day + timedelta(days=1), NEW_YORK)


def _fold(bars: BarBatch, starts: np.ndarray) -> dict[str, np.ndarray]:
    """Aggregate minute bars by window start, written independently of the simulator's code."""
    out: dict[str, list[float]] = {k: [] for k in ("t", "o", "h", "l", "c", "v", "vw", "n")}
    for ws in np.unique(starts):
        sel = starts == ws
        out["t"].append(ws)
        out["o"].append(bars.o[sel][0])
        out["h"].append(bars.h[sel].max())
        out["l"].append(bars.l[sel].min())
        out["c"].append(bars.c[sel][-1])
        out["v"].append(bars.v[sel].sum())
        out["vw"].append((bars.vw[sel] * bars.v[sel]).sum() / bars.v[sel].sum())
        out["n"].append(bars.n[sel].sum())
    return {k: np.asarray(v) for k, v in out.items()}


def test_market_holidays_have_no_bars_when_the_exchange_is_closed(market: Market) -> None:
    """2024's NYSE holidays and weekends have no minute or daily bars for any stock."""
    for day in (
        date(2024, 1, 1),
        date(2024, 7, 4),
        date(2024, 11, 28),
        date(2024, 12, 25),
        date(2024, 3, 29),
        date(2024, 6, 8),
    ):
        start, end = _day_range(day)
        assert len(market.minute_bars("AAPL", start, end)) == 0, day
        assert len(market.aggregates("AAPL", Timeframe(1, "d"), start, end)) == 0, day
    start, end = _day_range(date(2024, 7, 5))
    assert len(market.minute_bars("AAPL", start, end)) > 500


def test_market_minute_bars_stay_in_extended_hours_when_a_session_is_normal(market: Market) -> None:
    """Stock minute bars lie within 04:00-20:00 ET, with sparser extended hours than regular ones."""
    day = date(2024, 3, 5)
    bars = market.minute_bars("AAPL", *_day_range(day))
    assert bars.t.min() >= _et(day, 4) and bars.t.max() < _et(day, 20)
    regular = (bars.t >= _et(day, 9, 30)) & (bars.t < _et(day, 16))
    assert regular.sum() == 390  # a liquid name trades every regular minute
    assert (~regular).sum() < 570 * 0.8  # pre and post market have gaps
    assert bars.problems() == []


def test_market_early_close_ends_trading_at_17_when_the_session_closes_at_13(market: Market) -> None:
    """On 2024-11-29 regular hours end at 13:00 ET and extended hours at 17:00 ET."""
    day = date(2024, 11, 29)
    bars = market.minute_bars("SPY", *_day_range(day))
    assert bars.t.max() < _et(day, 17)
    assert ((bars.t >= _et(day, 9, 30)) & (bars.t < _et(day, 13))).sum() == 210
    daily = market.aggregates("SPY", Timeframe(1, "d"), *_day_range(day))
    regular = (bars.t >= _et(day, 9, 30)) & (bars.t < _et(day, 13))
    assert daily.c[0] == bars.c[regular][-1]
    assert daily.h[0] == bars.h[regular].max()


def test_market_bars_are_identical_when_requested_through_different_windows(market: Market) -> None:
    """A day's bars do not depend on the window they were requested in."""
    week = market.minute_bars("MSFT", to_ms(date(2024, 5, 6)), to_ms(date(2024, 5, 11)))
    day = market.minute_bars("MSFT", *_day_range(date(2024, 5, 8)))
    assert week.between(int(day.t[0]), int(day.t[-1]) + 1).equals(day)
    assert Market(42, now_ms=NOW).minute_bars("MSFT", *_day_range(date(2024, 5, 8))).equals(day)
    other = Market(7, now_ms=NOW).minute_bars("MSFT", *_day_range(date(2024, 5, 8)))
    assert not np.array_equal(other.c[:10], day.c[:10])


@pytest.mark.parametrize("ticker", ["AAPL", "ZZZQ", "X:BTCUSD"])
def test_market_hourly_bars_equal_folded_minutes_when_aggregated_in_the_test(
    market: Market, ticker: str
) -> None:
    """Hourly (and 4-hour, midnight-anchored) bars equal the minute bars folded by hour."""
    start, end = to_ms(date(2024, 5, 6)), to_ms(date(2024, 5, 9))
    minutes = market.minute_bars(ticker, start, end)
    for hours in (1, 4):
        tf = Timeframe(hours, "h")
        asset = AssetClass.CRYPTO if ticker.startswith("X:") else AssetClass.STOCKS
        mids = np.array(
            [
                local_midnight_ms(datetime.fromtimestamp(t / 1000, asset.tz).date(), asset.tz)
                for t in minutes.t.tolist()
            ]
        )
        step = hours * 3_600_000
        folded = _fold(minutes, mids + (minutes.t - mids) // step * step)
        served = market.aggregates(ticker, tf, start, end)
        assert np.array_equal(served.t, folded["t"])
        for col in ("o", "h", "l", "c", "n"):
            assert np.array_equal(getattr(served, col), folded[col]), col
        assert np.allclose(served.v, folded["v"], rtol=1e-12)  # crypto volume is fractional
        assert np.allclose(served.vw, folded["vw"], rtol=1e-12)


def test_market_daily_bar_takes_regular_hours_prices_when_built_from_minutes(market: Market) -> None:
    """A stock's daily bar: OHLC from regular-hours minutes, volume and trades from all minutes."""
    for day in (date(2024, 3, 5), date(2024, 3, 6)):
        bars = market.minute_bars("ZZZQ", *_day_range(day))
        daily = market.aggregates("ZZZQ", Timeframe(1, "d"), *_day_range(day))
        regular = (bars.t >= _et(day, 9, 30)) & (bars.t < _et(day, 16))
        assert daily.t[0] == _day_range(day)[0]
        assert (daily.o[0], daily.c[0]) == (bars.o[regular][0], bars.c[regular][-1])
        assert (daily.h[0], daily.l[0]) == (bars.h[regular].max(), bars.l[regular].min())
        assert daily.v[0] == bars.v.sum() and daily.n[0] == bars.n.sum()
        assert daily.vw[0] == pytest.approx((bars.vw * bars.v).sum() / bars.v.sum(), rel=1e-12)


def test_market_crypto_daily_bar_covers_the_utc_day_when_trading_is_24_7(market: Market) -> None:
    """Crypto trades every day; its daily bar starts at 00:00 UTC and folds all 24 hours."""
    day = date(2024, 6, 8)  # a Saturday
    start = to_ms(day)
    minutes = market.minute_bars("X:ETHUSD", start, start + 86_400_000)
    daily = market.aggregates("X:ETHUSD", Timeframe(1, "d"), start, start + 86_400_000)
    assert len(minutes) > 1000 and daily.t[0] == start
    assert (daily.o[0], daily.c[0], daily.h[0]) == (minutes.o[0], minutes.c[-1], minutes.h.max())


def test_market_weekly_and_monthly_bars_start_on_sunday_and_the_first_when_snapped(market: Market) -> None:
    """Weekly bars start Sunday 00:00 ET and fold that week's daily bars; monthly start on the 1st."""
    start, end = to_ms(date(2024, 3, 1)), to_ms(date(2024, 6, 1))
    days = market.aggregates("AAPL", Timeframe(1, "d"), start, end)
    weeks = market.aggregates("AAPL", Timeframe(1, "w"), start, end)
    months = market.aggregates("AAPL", Timeframe(1, "mo"), start, end)
    for t in weeks.t.tolist():
        assert datetime.fromtimestamp(t / 1000, NEW_YORK).strftime("%a %H:%M") == "Sun 00:00"
    assert [datetime.fromtimestamp(t / 1000, NEW_YORK).date() for t in months.t.tolist()] == [
        date(2024, 3, 1),
        date(2024, 4, 1),
        date(2024, 5, 1),
    ]
    april = days.between(int(months.t[1]), int(months.t[2]))
    assert months.o[1] == april.o[0] and months.c[1] == april.c[-1] and months.v[1] == april.v.sum()


def test_market_split_adjustment_divides_history_when_adjusted_is_true(market: Market) -> None:
    """Adjusted = unadjusted / cumulative ratio before each split; unadjusted prices jump at the split."""
    start, end = to_ms(date(2024, 5, 1)), to_ms(date(2024, 7, 1))
    raw = market.aggregates("NVDA", Timeframe(1, "d"), start, end)
    adj = market.aggregates("NVDA", Timeframe(1, "d"), start, end, adjusted=True)
    days = np.array([datetime.fromtimestamp(t / 1000, NEW_YORK).date().toordinal() for t in raw.t.tolist()])
    splits = tuple(market.splits("NVDA"))
    factor = adjustment_factor(splits, days, market.today())
    assert {20.0, 2.0} <= set(np.unique(factor).tolist())  # 10-for-1 in 2024 and 2-for-1 in 2026 ahead
    assert np.allclose(adj.c, raw.c / factor) and np.allclose(adj.v, raw.v * factor)
    split_day = int(np.argmax(days >= date(2024, 6, 10).toordinal()))
    jump = raw.c[split_day - 1] / raw.o[split_day]
    assert 7.0 < jump < 14.0  # the unadjusted price falls by about 10x overnight
    smooth = adj.c[split_day - 1] / adj.o[split_day]
    assert 0.8 < smooth < 1.25


def test_market_reverse_split_raises_the_price_when_executed(market: Market) -> None:
    """SIRI's 1-for-10 reverse split multiplies the unadjusted price by about 10."""
    (split,) = [s for s in market.splits("SIRI") if s.split_from > s.split_to]
    friday = split.execution_date - timedelta(days=3)
    before = market.aggregates("SIRI", Timeframe(1, "d"), *_day_range(friday))
    after = market.aggregates("SIRI", Timeframe(1, "d"), *_day_range(split.execution_date))
    assert 7.0 < after.o[0] / before.c[0] < 14.0


def test_market_dividends_are_quarterly_when_the_ticker_pays(market: Market) -> None:
    """Well-known payers have quarterly cash dividends, about a quarter of their yield times the price."""
    for ticker in ("AAPL", "KO", "JNJ", "SPY"):
        recent = [d for d in market.dividends(ticker) if d.ex_dividend_date >= date(2024, 11, 1)]
        assert len(recent) >= 7, ticker
        gaps = {(b.ex_dividend_date - a.ex_dividend_date).days for a, b in itertools.pairwise(recent)}
        assert all(80 <= g <= 100 for g in gaps)
    assert market.dividends("TSLA") == []


def test_market_page_returns_only_complete_windows_when_limit_cuts_one(market: Market) -> None:
    """limit counts minutes: 100 minutes from 14:00 give one complete hour bar and a next start."""
    day = date(2024, 3, 5)
    page = market.page("AAPL", Timeframe(1, "h"), _et(day, 14), _et(day, 16) - 1, limit=100)
    assert len(page.bars) == 1 and page.query_count == 60 and page.next_start_ms == _et(day, 15)
    whole = market.page("AAPL", Timeframe(1, "h"), _et(day, 14), _et(day, 16) - 1, limit=120)
    assert len(whole.bars) == 2 and whole.next_start_ms is None


def test_market_has_no_bars_after_now_when_the_clock_is_fixed() -> None:
    """Only minutes completed before the data clock have bars."""
    now = _et(date(2024, 3, 5), 10, 30)
    bars = Market(42, now_ms=now).minute_bars("AAPL", *_day_range(date(2024, 3, 5)))
    assert bars.t.max() + 60_000 <= now
    daily = Market(42, now_ms=now).aggregates("AAPL", Timeframe(1, "d"), *_day_range(date(2024, 3, 5)))
    assert daily.c[0] == bars.c[-1]


def test_market_universe_lists_over_a_thousand_stocks_when_asked(market: Market) -> None:
    """The legacy names, then the market's: distinct, and each listed today or delisted before."""
    big = Market(42, now_ms=NOW, n_stocks=1500)
    tickers = [r.ticker for r in big.listings()]
    assert len(tickers) == len(set(tickers)) >= 1500
    listed = big.universe(AssetClass.STOCKS)
    assert {"AAPL", "NVDA", "SPY", "KIM", "KIMpL"} <= set(listed) and "GONE" not in listed
    assert 1000 < len(listed) < 1500
    assert len(market.universe(AssetClass.CRYPTO)) == 20 and "X:BTCUSD" in market.universe()
