"""The simulated market: a roster of thousands of securities with listings, delistings, renames
and heavy-tailed liquidity, while the legacy names keep their exact data."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pytest

from mdw.domain import NEW_YORK, AssetClass, Timeframe, from_ms, local_midnight_ms, to_ms
from mdw.simulator import Market
from mdw.simulator.names import synthetic_stocks
from mdw.simulator.roster import MARKET_STOCKS, roster

NOW = to_ms(datetime(2026, 11, 20, 12, 0))
TODAY = date(2026, 11, 20)
MARKET = MARKET_STOCKS


@pytest.fixture(scope="module")
def market() -> Market:
    """The roster of a full market (listings only: its bars are generated when asked for)."""
    return Market(42, now_ms=NOW, n_stocks=MARKET)


@pytest.fixture(scope="module")
def small() -> Market:
    """1,000 securities: enough for every kind of life, small enough for grouped daily in a test."""
    return Market(42, now_ms=NOW, n_stocks=1000)


def _days(market: Market, ticker: str, first: date, last: date) -> list[date]:
    bars = market.aggregates(ticker, Timeframe(1, "d"), local_midnight_ms(first, NEW_YORK),
                             local_midnight_ms(last + timedelta(days=1), NEW_YORK))
    return [from_ms(int(t)).astimezone(NEW_YORK).date() for t in bars.t]


def test_legacy_names_keep_their_exact_data_when_the_market_is_listed_beside_them(market: Market) -> None:
    """AAPL's minute bar, a synthetic legacy name's daily bar and KO's dividend are the values
    the simulator served before it had a market (figures taken from that version)."""
    s = local_midnight_ms(date(2024, 3, 5), NEW_YORK)
    e = local_midnight_ms(date(2024, 3, 6), NEW_YORK)
    bars = market.minute_bars("AAPL", s, e)
    assert (int(bars.t[100]), bars.o[100], bars.h[100], bars.l[100], bars.c[100], bars.v[100],
            bars.vw[100], int(bars.n[100])) == (1709640420000, 222.6173, 222.7436, 222.2305, 222.2758,
                                                209.0, 222.39768, 1)
    legacy = synthetic_stocks(42, 130)[0]
    daily = market.aggregates(legacy, Timeframe(1, "d"), s, e)
    assert legacy == "ASKG" and (daily.o[0], daily.c[0], daily.v[0], int(daily.n[0])) == (
        70.0208, 70.0024, 1167130.0, 4581)
    last = market.dividends("KO")[-1]
    assert (last.ex_dividend_date, last.cash_amount) == (date(2026, 12, 10), 0.31)
    assert Market(42, now_ms=NOW).grouped_daily(date(2024, 3, 5), AssetClass.STOCKS, True)["NVDA"].c[0] \
        == 123.16084000000001


def test_universe_lists_over_5000_stocks_with_etfs_otc_and_preferreds_when_the_market_is_asked(
        market: Market) -> None:
    """About 5,000 stocks are listed today, of every kind, and a bigger universe only adds names."""
    today = market.universe(AssetClass.STOCKS, TODAY)
    assert len(today) >= 5000 and len(set(today)) == len(today)
    kinds = {(r.kind, r.market) for r in market.listings() if r.listed_on(TODAY)}
    assert {("CS", "stocks"), ("ETF", "stocks"), ("PFD", "stocks"), ("OS", "otc"), ("ADRC", "otc")} <= kinds
    small = Market(42, now_ms=NOW, n_stocks=1000).listings()
    assert market.listings()[:len(small)] == small
    assert Market(42, now_ms=NOW, n_stocks=300).universe(AssetClass.STOCKS) == sorted(
        r.ticker for r in roster(42).legacy)


def test_universe_liquidity_is_heavy_tailed_when_minutes_are_counted(market: Market) -> None:
    """A few hundred names trade in nearly every minute, most in few, some a few times a day."""
    active = [r for r in market.listings() if r.listed_on(TODAY)]
    tpm = np.asarray([r.trades_per_min for r in active if not r.legacy])
    assert 100 <= int((tpm > 6).sum()) <= 600
    assert np.median(tpm) < 0.3 and int((tpm < 0.01).sum()) > 300
    day = date(2024, 3, 5)
    s, e = local_midnight_ms(day, NEW_YORK), local_midnight_ms(day + timedelta(days=1), NEW_YORK)
    thin = next(r.ticker for r in active if r.trades_per_min < 0.005 and not r.legacy and r.start < day)
    liquid = next(r.ticker for r in active if r.trades_per_min > 8 and not r.legacy and r.start < day)
    assert len(market.minute_bars(thin, s, e)) < 10
    assert len(market.minute_bars(liquid, s, e)) > 380


def test_mixed_case_preferred_is_a_distinct_security_when_its_upper_case_twin_exists(market: Market) -> None:
    """KIMpL (a preferred of KIM) and KIMPL (another company) have different listings and data."""
    pref, twin = market.listing("KIMpL"), market.listing("KIMPL")
    assert pref is not None and twin is not None
    assert (pref.kind, twin.kind) == ("PFD", "CS") and pref.entity != twin.entity
    assert pref.cik == market.listing("KIM").cik  # type: ignore[union-attr]
    day = date(2024, 3, 5)
    assert _days(market, "KIMpL", day, day + timedelta(days=30)) != []
    a = market.aggregates("KIMpL", Timeframe(1, "d"), local_midnight_ms(day, NEW_YORK),
                          local_midnight_ms(day + timedelta(days=30), NEW_YORK))
    b = market.aggregates("KIMPL", Timeframe(1, "d"), local_midnight_ms(day, NEW_YORK),
                          local_midnight_ms(day + timedelta(days=30), NEW_YORK))
    assert not np.array_equal(a.c[:5], b.c[:5])
    assert market.asset_of("KIMpL") is AssetClass.STOCKS and market.asset_of("XYZpQ") is None


def test_delisted_ticker_has_bars_only_while_listed_when_asked_for_its_whole_life(small: Market) -> None:
    """GONE trades from its listing (2005-05-02) to its last day (2019-03-29), and never after."""
    assert _days(small, "GONE", date(2005, 1, 1), date(2005, 6, 1))[0] == date(2005, 5, 2)
    assert _days(small, "GONE", date(2019, 3, 1), date(2019, 6, 1))[-1] == date(2019, 3, 29)
    assert _days(small, "GONE", date(2019, 3, 30), date(2026, 1, 1)) == []
    assert "GONE" not in small.universe(AssetClass.STOCKS, TODAY)
    assert "GONE" in small.universe(AssetClass.STOCKS, date(2015, 6, 1))
    assert "GONE" not in small.grouped_daily(date(2019, 4, 1), AssetClass.STOCKS)
    assert "GONE" in small.grouped_daily(date(2019, 3, 29), AssetClass.STOCKS)


def test_renamed_security_continues_its_price_under_the_new_ticker_when_the_change_day_comes(
        market: Market) -> None:
    """ALFA trades until the session before 2022-06-13; ALPH from that day, continuing ALFA's path."""
    old = _days(market, "ALFA", date(2022, 1, 1), date(2022, 12, 31))
    new = _days(market, "ALPH", date(2022, 1, 1), date(2022, 12, 31))
    assert old[-1] == date(2022, 6, 10) and new[0] == date(2022, 6, 13)
    a = market.daily_bar("ALFA", old[-1])
    b = market.daily_bar("ALPH", new[0])
    assert abs(b.o[0] / a.c[0] - 1) < 0.2  # one security: an ordinary overnight move, not a new price
    rows = roster(42).of_entity(market.listing("ALPH").entity)  # type: ignore[union-attr]
    assert [r.ticker for r in rows] == ["ALFA", "ALPH"]
    assert rows[0].following == "ALPH" and rows[1].previous == "ALFA"
    renamed = [r for r in market.listings() if r.following is not None]
    assert len(renamed) >= 50


def test_grouped_daily_equals_each_listed_tickers_daily_bar_when_the_market_trades(small: Market) -> None:
    """Every listed name that traded is in grouped daily (OTC only on request), with its daily bar."""
    market = small
    day = date(2023, 5, 10)
    rows = dict(market.grouped_rows(day, AssetClass.STOCKS, adjusted=True, include_otc=False))
    with_otc = dict(market.grouped_rows(day, AssetClass.STOCKS, adjusted=True, include_otc=True))
    listed = [r for r in market.listings() if r.listed_on(day)]
    assert set(rows) <= {r.ticker for r in listed if r.market == "stocks"}
    assert set(with_otc) - set(rows) and all(market.listing(t).market == "otc"  # type: ignore[union-attr]
                                            for t in set(with_otc) - set(rows))
    assert len(rows) > 0.7 * sum(1 for r in listed if r.market == "stocks")
    for ticker in sorted(rows)[::40]:
        bar = market.daily_bar(ticker, day, adjusted=True)
        assert rows[ticker] == (int(bar.t[0]), bar.o[0], bar.h[0], bar.l[0], bar.c[0], bar.v[0], bar.vw[0],
                                int(bar.n[0]))


def test_levels_primed_for_a_whole_day_equal_the_per_ticker_ones_bit_for_bit(market: Market) -> None:
    """Grouped daily's one-pass levels are exactly those a single ticker's request computes."""
    from mdw.simulator import sparse
    from mdw.simulator.universe import profile

    day = date(2023, 5, 10).toordinal() - date(2000, 1, 1).toordinal()
    profs = [profile(42, r.ticker) for r in market.listings()[300:2300:7]]
    sparse._PRIMED.clear()
    single = [sparse.market_levels(42, p, day) for p in profs]
    sparse.prime_levels(42, profs, day)
    assert [sparse._PRIMED[(42, p.entity, day)] for p in profs] == single
    sparse._PRIMED.clear()
