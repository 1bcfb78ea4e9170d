"""The vendor's flat-file layout: keys, publication times, ticker spellings."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from mdw.domain import NEW_YORK, AssetClass, Timeframe
from mdw.errors import UsageError
from mdw.flatfiles.keys import (
    DATASETS,
    dataset,
    dataset_named,
    file_ticker,
    last_published_day,
    parse_key,
    published_at_ms,
    vendor_ticker,
)


def test_keys_follow_the_vendor_layout_when_built_and_parsed() -> None:
    """A key is <market>/<kind>_v1/YYYY/MM/YYYY-MM-DD.csv.gz and parses back to its dataset and day."""
    ds = dataset(AssetClass.STOCKS, Timeframe(1, "m"))
    assert ds is not None
    key = ds.key(date(2024, 3, 7))
    assert key == "us_stocks_sip/minute_aggs_v1/2024/03/2024-03-07.csv.gz"
    assert parse_key(key) == (ds, date(2024, 3, 7))
    assert ds.month_prefix(2024, 3) == "us_stocks_sip/minute_aggs_v1/2024/03/"
    assert [d.prefix for d in DATASETS] == sorted(d.prefix for d in DATASETS)  # listing order


@pytest.mark.parametrize("key", ["us_stocks_sip/minute_aggs_v1/2024/04/2024-03-07.csv.gz",
                                 "us_stocks_sip/trades_v1/2024/03/2024-03-07.csv.gz",
                                 "us_stocks_sip/minute_aggs_v1/2024/02/2024-02-30.csv.gz",
                                 "us_stocks_sip/minute_aggs_v1/2024/03/2024-03-07.csv"])
def test_keys_parse_to_none_when_not_an_aggregates_file(key: str) -> None:
    """A month folder that disagrees with the date, trades, impossible dates and other names are not ours."""
    assert parse_key(key) is None


def test_keys_have_files_only_on_trading_days_of_their_market() -> None:
    """Stocks: NYSE sessions only; crypto: every UTC day; forex: not Saturdays."""
    stocks = dataset_named("us_stocks_sip/day_aggs_v1")
    crypto = dataset_named("global_crypto/day_aggs_v1")
    fx = dataset_named("global_forex/minute_aggs_v1")
    march = (date(2024, 3, 1), date(2024, 3, 31))
    assert len(stocks.days(*march)) == 20 and not stocks.has_file(date(2024, 3, 29))  # Good Friday
    assert len(crypto.days(*march)) == 31
    assert len(fx.days(*march)) == 31 - 5 and not fx.has_file(date(2024, 3, 2))
    with pytest.raises(UsageError, match="us_stocks_sip/day_aggs_v1"):
        dataset_named("us_stocks/day")


def test_keys_publish_a_day_at_11_et_the_next_calendar_day() -> None:
    """Friday's file is out Saturday 11:00 ET; before 11:00 the latest published day is two days back."""
    friday = date(2024, 3, 8)
    expected = datetime(2024, 3, 9, 11, 0, tzinfo=NEW_YORK)
    assert published_at_ms(friday) == int(expected.timestamp() * 1000)
    assert last_published_day(published_at_ms(friday)) == friday
    assert last_published_day(published_at_ms(friday) - 1) == date(2024, 3, 7)


def test_keys_translate_pair_spellings_both_ways() -> None:
    """X:BTC-USD and C:EUR-USD in files are X:BTCUSD and C:EURUSD in mdw; stocks pass unchanged."""
    assert vendor_ticker("X:BTC-USD") == "X:BTCUSD" and vendor_ticker("C:EUR-USD") == "C:EURUSD"
    assert vendor_ticker("BRK.B") == "BRK.B" and vendor_ticker("X:BTCUSD") == "X:BTCUSD"
    assert file_ticker("X:BTCUSD") == "X:BTC-USD" and file_ticker("AAPL") == "AAPL"
    assert file_ticker("X:BTCUSD", dashed=False) == "X:BTCUSD"
