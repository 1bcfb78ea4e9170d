"""Ticker parsing: vendor forms, friendly forms, and rejected input with a helpful message."""

from __future__ import annotations

import pytest

from mdw.domain import AssetClass, Ticker, parse_ticker, parse_tickers
from mdw.errors import UsageError


@pytest.mark.parametrize(
    ("text", "asset", "symbol", "asset_class"),
    [
        ("AAPL", None, "AAPL", AssetClass.STOCKS),
        ("aapl", None, "aapl", AssetClass.STOCKS),  # kept as written: the reference data judges it
        ("KIMpL", None, "KIMpL", AssetClass.STOCKS),
        ("KIMPL", None, "KIMPL", AssetClass.STOCKS),
        ("BRK.B", None, "BRK.B", AssetClass.STOCKS),
        ("BRK-B", None, "BRK.B", AssetClass.STOCKS),
        ("BRK/B", "stocks", "BRK.B", AssetClass.STOCKS),
        (" MSFT ", None, "MSFT", AssetClass.STOCKS),
        ("X:BTCUSD", None, "X:BTCUSD", AssetClass.CRYPTO),
        ("C:EURUSD", None, "C:EURUSD", AssetClass.FOREX),
        ("I:SPX", None, "I:SPX", AssetClass.INDICES),
        ("O:AAPL241220C00150000", None, "O:AAPL241220C00150000", AssetClass.OPTIONS),
        ("O:SPXW241220P05000000", None, "O:SPXW241220P05000000", AssetClass.OPTIONS),
        ("BTC-USD", None, "X:BTCUSD", AssetClass.CRYPTO),
        ("eth-usd", None, "X:ETHUSD", AssetClass.CRYPTO),
        ("EUR/USD", None, "C:EURUSD", AssetClass.FOREX),
        ("BTCUSD", "crypto", "X:BTCUSD", AssetClass.CRYPTO),
        ("BTCUSD", AssetClass.CRYPTO, "X:BTCUSD", AssetClass.CRYPTO),
        ("EURUSD", "forex", "C:EURUSD", AssetClass.FOREX),
        ("SPX", "indices", "I:SPX", AssetClass.INDICES),
        ("AAPL241220C00150000", "options", "O:AAPL241220C00150000", AssetClass.OPTIONS),
        ("AAPL", "stocks", "AAPL", AssetClass.STOCKS),
        ("X:BTCUSD", "crypto", "X:BTCUSD", AssetClass.CRYPTO),
    ],
)
def test_parse_ticker_maps_accepted_forms_to_vendor_form(
    text: str, asset: AssetClass | str | None, symbol: str, asset_class: AssetClass
) -> None:
    """Every accepted spelling becomes the vendor's ticker with the asset class it implies."""
    assert parse_ticker(text, asset) == Ticker(symbol, asset_class)


def test_parse_ticker_str_is_the_vendor_symbol() -> None:
    """A ticker prints as the vendor symbol, so it can go straight into a URL path."""
    assert str(parse_ticker("BTC-USD")) == "X:BTCUSD"


@pytest.mark.parametrize(
    ("text", "asset", "fragment"),
    [
        ("", None, "empty ticker"),
        ("   ", None, "empty ticker"),
        ("123", None, "invalid ticker '123'"),
        ("AAPL!", None, "invalid ticker 'AAPL!'"),
        ("BRK.", None, "invalid ticker 'BRK.'"),
        ("TOOLONGTICKERNAME", None, "invalid ticker"),
        ("AAPL,MSFT", None, "invalid ticker 'AAPL,MSFT'"),
        ("Z:ABC", None, "invalid ticker 'Z:ABC'"),
        ("X:", None, "invalid crypto ticker 'X:'"),
        ("X:B", None, "invalid crypto ticker"),
        ("C:EU", None, "invalid forex ticker"),
        ("I:S P X", None, "invalid indices ticker"),
        ("O:AAPL", None, "invalid options ticker 'O:AAPL'"),
        ("O:AAPL241220X00150000", None, "invalid options ticker"),
        ("AAPL", "crypto", "invalid ticker 'AAPL'"),
    ],
)
def test_parse_ticker_rejects_garbage_with_the_accepted_forms(
    text: str, asset: str | None, fragment: str
) -> None:
    """Garbage raises UsageError naming the input and listing what is accepted."""
    with pytest.raises(UsageError) as info:
        parse_ticker(text, asset)
    message = str(info.value)
    assert fragment in message
    assert "AAPL" in message and "X:BTCUSD" in message and "BTC-USD" in message


def test_parse_ticker_rejects_a_pair_forced_to_a_non_currency_class() -> None:
    """A currency pair asked for as a stock is refused with a message saying why."""
    with pytest.raises(UsageError, match="is a currency pair, not a stocks ticker"):
        parse_ticker("BTC-USD", "stocks")


def test_parse_ticker_rejects_an_unknown_asset_class_with_the_choices() -> None:
    """An unknown --asset value is a usage error listing the asset classes, not a ValueError."""
    with pytest.raises(UsageError, match="invalid asset class 'bonds'; expected one of stocks, crypto"):
        parse_ticker("AAPL", "bonds")


def test_parse_tickers_splits_commas_and_drops_duplicates_in_order() -> None:
    """A comma list keeps first-seen order and drops repeats, including friendly duplicates."""
    got = parse_tickers("AAPL, X:BTCUSD,BTC-USD,,AAPL,I:SPX,KIMpL,KIMPL")
    assert [t.symbol for t in got] == ["AAPL", "X:BTCUSD", "I:SPX", "KIMpL", "KIMPL"]


@pytest.mark.parametrize(("text", "asset", "vendor"), [
    ("x:btcusd", None, "X:BTCUSD"), ("i:spx", None, "I:SPX"), ("btcusd", "crypto", "X:BTCUSD"),
    ("brk-b", None, "BRK.B"),
])
def test_parse_ticker_refuses_a_lower_case_vendor_form_with_its_spelling(
    text: str, asset: str | None, vendor: str,
) -> None:
    """Prefixed and pair forms are case-sensitive: the wrong case is refused, naming the vendor's form."""
    with pytest.raises(UsageError, match=f"case-sensitive; did you mean {vendor}"):
        parse_ticker(text, asset)


def test_parse_tickers_rejects_an_empty_list() -> None:
    """A list with no tickers is a usage error, not an empty backfill."""
    with pytest.raises(UsageError, match="no tickers given"):
        parse_tickers(" , ")


@pytest.mark.parametrize(
    ("asset", "zone"),
    [(AssetClass.STOCKS, "America/New_York"), (AssetClass.INDICES, "America/New_York"),
     (AssetClass.OPTIONS, "America/New_York"), (AssetClass.CRYPTO, "UTC"), (AssetClass.FOREX, "UTC")],
)
def test_asset_class_tz_is_where_daily_bars_start(asset: AssetClass, zone: str) -> None:
    """US markets' daily bars start at 00:00 ET; crypto and forex at 00:00 UTC."""
    assert asset.tz.key == zone
