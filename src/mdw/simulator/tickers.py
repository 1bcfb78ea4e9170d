"""Ticker reference data as of a date: the rows of `/v3/reference/tickers`, details and ticker events.

A ticker's row depends on the day asked about: before its listing it does not exist; while
listed it is ``active``; after its last day it is inactive and carries ``delisted_utc`` (the
last day it traded). A renamed security's old ticker is delisted on the day the new one lists.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from mdw.domain import AssetClass
from mdw.simulator.listing import ListingError, filter_rows, sort_rows
from mdw.simulator.market import Market
from mdw.simulator.names import company_name
from mdw.simulator.roster import Listing, roster
from mdw.simulator.state import Row

MARKETS = ("stocks", "crypto", "fx", "otc", "indices")
SORTS = ("ticker", "name", "market", "locale", "primary_exchange", "type", "currency_symbol",
         "currency_name", "base_currency_symbol", "base_currency_name", "cik", "composite_figi",
         "share_class_figi", "last_updated_utc", "delisted_utc")
_FIELDS = ("ticker", "type", "cik", "primary_exchange")


def stock_row(row: Listing, as_of: date) -> Row:
    """The vendor's ticker row of a stock listing, as it stood on ``as_of``."""
    out: Row = {
        "ticker": row.ticker, "name": row.name, "market": row.market, "locale": "us",
        "primary_exchange": row.exchange, "type": row.kind, "active": row.listed_on(as_of),
        "currency_name": "usd", "cik": row.cik, "composite_figi": row.composite_figi,
        "share_class_figi": row.share_class_figi, "list_date": row.list_date.isoformat(),
        "last_updated_utc": f"{as_of.isoformat()}T00:00:00Z",
    }
    if row.exchange is None:
        del out["primary_exchange"]
    last = row.last_day
    if row.end is not None and row.end <= as_of and last is not None:
        out["delisted_utc"] = f"{last.isoformat()}T00:00:00Z"
    return out


def pair_row(ticker: str, as_of: date) -> Row:
    """The row of a crypto or forex pair (listed on every day)."""
    crypto = ticker.startswith("X:")
    row: Row = {"ticker": ticker, "name": company_name(ticker), "market": "crypto" if crypto else "fx",
                "locale": "global", "active": True, "last_updated_utc": f"{as_of.isoformat()}T00:00:00Z"}
    if crypto:
        row |= {"currency_symbol": "USD", "base_currency_symbol": ticker[2:-3],
                "base_currency_name": ticker[2:-3], "currency_name": "United States dollar"}
    else:
        row |= {"currency_symbol": ticker[5:], "currency_name": ticker[5:],
                "base_currency_symbol": ticker[2:5], "base_currency_name": ticker[2:5]}
    return row


def query(market: Market, params: dict[str, str], as_of: date) -> list[Row]:
    """Every row matching the vendor's filters, sorted (the whole result, before paging).

    Raises:
        ListingError: a bad ``market``, ``sort``, ``order`` or ``active`` value.
    """
    wanted = params.get("market")
    if wanted is not None and wanted not in MARKETS:
        raise ListingError(f"market must be one of: {', '.join(MARKETS)}")
    active_text = params.get("active", "true").strip().lower()
    if active_text not in ("true", "false", "1", "0"):
        raise ListingError("active must be true or false")
    active = active_text in ("true", "1")
    col = params.get("sort", "ticker")
    if col not in SORTS:
        raise ListingError(f"sort must be one of: {', '.join(SORTS)}")
    order = params.get("order", "asc").lower()
    if order not in ("asc", "desc"):
        raise ListingError("order must be 'asc' or 'desc'")
    rows: list[Row] = []
    if wanted in (None, "stocks", "otc"):
        for listing in market.listings():
            if listing.start > as_of or (wanted is not None and listing.market != wanted):
                continue
            if listing.listed_on(as_of) == active:
                rows.append(stock_row(listing, as_of))
    if wanted in (None, "crypto", "fx") and active:
        for asset in (AssetClass.CRYPTO, AssetClass.FOREX):
            if wanted in (None, "crypto" if asset is AssetClass.CRYPTO else "fx"):
                rows.extend(pair_row(t, as_of) for t in market.universe(asset))
    exchange = params.get("exchange")
    if exchange:
        rows = [r for r in rows if r.get("primary_exchange") == exchange]
    rows = filter_rows(rows, {k: v for k, v in params.items() if k != "market"}, _FIELDS)
    if "search" in params:
        needle = params["search"].lower()
        rows = [r for r in rows if needle in str(r["ticker"]).lower() or needle in str(r["name"]).lower()]
    return sort_rows(rows, [(col, order == "desc"), ("ticker", False)])


def details(market: Market, ticker: str, as_of: date) -> Row | None:
    """The details row of a ticker that exists on ``as_of`` (listed, or delisted before), or None."""
    row = market.listing(ticker)
    if row is not None:
        return stock_row(row, as_of) if row.start <= as_of else None
    if ticker in market.universe(AssetClass.CRYPTO) or ticker in market.universe(AssetClass.FOREX):
        return pair_row(ticker, as_of)
    return None


def events(market: Market, ident: str, types: str | None, type_key: str) -> dict[str, Any] | None:
    """The ticker-change timeline of the security a ticker (or composite FIGI) currently names.

    As the vendor's: newest first, the first event being the listing under the first ticker. A
    ticker that was renamed away no longer names the security, so it has no events (None: 404);
    its FIGI still finds them.
    """
    today = market.today()
    listing = market.listing(ident)
    if listing is not None:
        rows = roster(market.seed).of_entity(listing.entity)
    else:
        rows = roster(market.seed).by_figi(ident)
        if not rows or market.listing(rows[0].ticker) is None:
            return None
    seen = [r for r in rows if r.start <= today]
    if not seen or (listing is not None and seen[-1].ticker != listing.ticker):
        return None
    wanted = {t.strip() for t in types.split(",")} if types else {"ticker_change"}
    timeline = []
    if "ticker_change" in wanted:
        for i, r in enumerate(reversed(seen)):
            day = r.list_date if i == len(seen) - 1 else r.start
            timeline.append({"ticker_change": {"ticker": r.ticker}, type_key: "ticker_change",
                             "date": day.isoformat()})
    current = seen[-1]
    return {"name": current.name, "composite_figi": current.composite_figi, "cik": current.cik,
            "events": timeline}
