"""Reference endpoints: dividends and splits (v3 and Massive's /stocks/v1), tickers, market status."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
from aiohttp import web

from mdw.domain import AssetClass, Dividend, Split, parse_ticker
from mdw.errors import UsageError
from mdw.simulator import actions
from mdw.simulator.encode import request_id
from mdw.simulator.listing import (
    ListingError,
    Query,
    filter_rows,
    page_body,
    read_limit,
    read_query,
    sort_rows,
)
from mdw.simulator.market import asset_of
from mdw.simulator.responses import bad_request, json_response, not_found
from mdw.simulator.state import STATE, Row, SimState
from mdw.simulator.status import market_status_now, upcoming
from mdw.simulator.universe import ETFS, company_name, stable_hash

routes = web.RouteTableDef()
_V3_DIV_SORTS = ("ex_dividend_date", "pay_date", "declaration_date", "record_date", "cash_amount", "ticker")
_V3_SPLIT_SORTS = ("execution_date", "ticker")


def _tickers_of(st: SimState, params: dict[str, str]) -> list[str]:
    """An exact ``ticker`` (or ``ticker.any_of``) narrows the search; otherwise every listed stock."""
    if "ticker" in params:
        return [params["ticker"]]
    if "ticker.any_of" in params:
        return [t.strip() for t in params["ticker.any_of"].split(",") if t.strip()]
    return st.market.universe(AssetClass.STOCKS)


def _cached(st: SimState, kind: str, ticker: str, build: Callable[[str], list[Row]]) -> list[Row]:
    key = (kind, ticker, st.market.today())
    rows = st.cache.get(key)
    if rows is None:
        if len(st.cache) > 20_000:
            st.cache.clear()
        rows = st.cache[key] = build(ticker)
    return list(rows)


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def _dividend_rows(st: SimState, ticker: str) -> list[Row]:
    if asset_of(ticker) is not AssetClass.STOCKS:
        return []
    market = st.market
    divs: list[Dividend] = market.dividends(ticker)
    splits = tuple(market.splits(ticker))
    today = market.today()
    rows: list[Row] = []
    cumulative = 1.0
    for div in reversed(divs):  # newest first: the historical factor accumulates backwards
        prev = market.reference_price(ticker, div.ex_dividend_date - timedelta(days=1))
        if prev > div.cash_amount:
            cumulative *= 1.0 - div.cash_amount / prev
        ratio = float(actions.adjustment_factor(
            splits, np.array([div.ex_dividend_date.toordinal() - 1]), today)[0])
        rows.append({
            "cash_amount": div.cash_amount, "currency": div.currency,
            "declaration_date": _iso(div.declaration_date), "dividend_type": div.dividend_type,
            "ex_dividend_date": div.ex_dividend_date.isoformat(), "frequency": div.frequency,
            "id": div.id, "pay_date": _iso(div.pay_date), "record_date": _iso(div.record_date),
            "ticker": div.ticker,
            "_distribution_type": "recurring", "_haf": round(cumulative, 8),
            "_split_adjusted": round(div.cash_amount / ratio, 6),
        })
    rows.reverse()
    return rows


def _split_rows(st: SimState, ticker: str) -> list[Row]:
    splits: list[Split] = st.market.splits(ticker)
    rows: list[Row] = []
    cumulative = 1.0
    for s in reversed(splits):
        cumulative *= s.split_from / s.split_to
        rows.append({
            "execution_date": s.execution_date.isoformat(), "id": s.id, "split_from": s.split_from,
            "split_to": s.split_to, "ticker": s.ticker, "_reverse": s.split_from > s.split_to,
            "_haf": cumulative,
        })
    rows.reverse()
    return rows


def _collect(st: SimState, kind: str, params: dict[str, str]) -> list[Row]:
    build = (lambda t: _dividend_rows(st, t)) if kind == "div" else (lambda t: _split_rows(st, t))
    out: list[Row] = []
    for ticker in _tickers_of(st, params):
        out.extend(_cached(st, kind, ticker, build))
    return out


def _v3_sort(params: dict[str, str], allowed: tuple[str, ...], default: str) -> list[tuple[str, bool]]:
    col = params.get("sort", default)
    if col not in allowed:
        raise ListingError(f"sort must be one of: {', '.join(allowed)}")
    order = params.get("order", "desc").lower()
    if order not in ("asc", "desc"):
        raise ListingError("order must be 'asc' or 'desc'")
    return [(col, order == "desc"), ("ticker", False), ("id", False)]


def _v1_sort(params: dict[str, str], allowed: tuple[str, ...], default: str) -> list[tuple[str, bool]]:
    keys: list[tuple[str, bool]] = []
    for part in params.get("sort", default).split(","):
        col, _, direction = part.strip().partition(".")
        if col not in allowed or direction not in ("asc", "desc", ""):
            raise ListingError(f"sort must be a comma list of <column>.asc|desc with column in {allowed}")
        keys.append((col, direction == "desc"))
    return [*keys, ("id", False)]


def _public(row: Row, renames: dict[str, str]) -> Row:
    out = {k: v for k, v in row.items() if not k.startswith("_")}
    for hidden, name in renames.items():
        out[name] = row[hidden]
    return out


async def _listing(request: web.Request, kind: str, v1: bool) -> web.StreamResponse:
    st = request.app[STATE]
    try:
        q: Query = read_query(request)
        p = q.params
        limit = read_limit(p, 100, 5000) if v1 else read_limit(p, 10, 1000)
        rows = _collect(st, kind, p)
        if kind == "div":
            cols = ["ticker", "ex_dividend_date", "record_date", "declaration_date", "pay_date",
                    "frequency", "cash_amount", "dividend_type"]
            if v1:
                rows = [r | {"distribution_type": r["_distribution_type"]} for r in rows]
                cols.append("distribution_type")
            rows = filter_rows(rows, p, cols, any_of=v1)
            keys = (_v1_sort(p, tuple(cols), "ticker.asc") if v1
                    else _v3_sort(p, _V3_DIV_SORTS, "ex_dividend_date"))
            renames = {"_haf": "historical_adjustment_factor",
                       "_split_adjusted": "split_adjusted_cash_amount"} if v1 else {}
        else:
            rows = [r | {"reverse_split": r["_reverse"],
                         "adjustment_type": "reverse_split" if r["_reverse"] else "forward_split"}
                    for r in rows]
            cols = ["ticker", "execution_date", "reverse_split"] + (["adjustment_type"] if v1 else [])
            rows = filter_rows(rows, p, cols, any_of=v1)
            keys = (_v1_sort(p, ("ticker", "execution_date", "adjustment_type"), "execution_date.desc")
                    if v1 else _v3_sort(p, _V3_SPLIT_SORTS, "execution_date"))
            renames = {"_haf": "historical_adjustment_factor"} if v1 else {}
            drop = ("reverse_split",) if v1 else ("adjustment_type", "reverse_split")
            rows = [{k: v for k, v in r.items() if k not in drop} for r in rows]
    except ListingError as exc:
        return bad_request(str(exc))
    rows = [_public(r, renames) for r in sort_rows(rows, keys)]
    body = page_body(request, st.base_for(request), rows, q, limit, {"request_id": request_id()})
    return json_response(body)


@routes.get("/v3/reference/dividends", name="dividends_v3")
async def dividends_v3(request: web.Request) -> web.StreamResponse:
    return await _listing(request, "div", v1=False)


@routes.get("/v3/reference/splits", name="splits_v3")
async def splits_v3(request: web.Request) -> web.StreamResponse:
    return await _listing(request, "split", v1=False)


@routes.get("/stocks/v1/dividends", name="dividends_v1")
async def dividends_v1(request: web.Request) -> web.StreamResponse:
    return await _listing(request, "div", v1=True)


@routes.get("/stocks/v1/splits", name="splits_v1")
async def splits_v1(request: web.Request) -> web.StreamResponse:
    return await _listing(request, "split", v1=True)


def ticker_row(ticker: str, seed: int) -> Row:
    asset = parse_ticker(ticker).asset_class
    market = {AssetClass.STOCKS: "stocks", AssetClass.CRYPTO: "crypto", AssetClass.FOREX: "fx"}[asset]
    h = stable_hash("ticker", seed, ticker)
    row: Row = {"ticker": ticker, "name": company_name(ticker), "market": market,
                "locale": "us" if asset is AssetClass.STOCKS else "global", "active": True,
                "currency_name": "usd", "last_updated_utc": "2026-01-02T00:00:00Z"}
    if asset is AssetClass.STOCKS:
        row |= {"primary_exchange": "ARCX" if ticker in ETFS else ("XNAS" if h % 2 else "XNYS"),
                "type": "ETF" if ticker in ETFS else "CS", "cik": f"{h % 10**10:010d}",
                "composite_figi": f"BBG{h % 10**9:09d}",
                "share_class_figi": f"BBG{(h >> 7) % 10**9:09d}"}
    elif asset is AssetClass.CRYPTO:
        row |= {"currency_symbol": "USD", "base_currency_symbol": ticker[2:-3],
                "base_currency_name": ticker[2:-3], "currency_name": "United States dollar"}
    else:
        row |= {"currency_symbol": ticker[5:], "currency_name": ticker[5:],
                "base_currency_symbol": ticker[2:5], "base_currency_name": ticker[2:5]}
    return row


@routes.get("/v3/reference/tickers", name="tickers")
async def tickers(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    try:
        q = read_query(request)
        p = q.params
        limit = read_limit(p, 100, 1000)
        markets = {"stocks": AssetClass.STOCKS, "crypto": AssetClass.CRYPTO, "fx": AssetClass.FOREX}
        wanted = p.get("market")
        if wanted is not None and wanted not in markets and wanted not in ("otc", "indices"):
            raise ListingError("market must be one of: stocks, crypto, fx, otc, indices")
        names = st.market.universe(markets[wanted]) if wanted in markets else (
            [] if wanted else st.market.universe())
        key = ("tickers", tuple(names))
        rows = st.cache.get(key)
        if rows is None:
            rows = st.cache[key] = [ticker_row(t, st.market.seed) for t in names]
        active = p.get("active", "true").lower() != "false"
        rows = [r for r in rows if r["active"] == active]
        rows = filter_rows(rows, p, ["ticker", "type", "cik", "primary_exchange"])
        if "search" in p:
            needle = p["search"].lower()
            rows = [r for r in rows if needle in str(r["ticker"]).lower() or needle in str(r["name"]).lower()]
        col = p.get("sort", "ticker")
        if col not in ("ticker", "name", "market", "locale", "primary_exchange", "type", "cik",
                       "last_updated_utc", "currency_name"):
            raise ListingError("invalid sort column")
        order = p.get("order", "asc").lower()
        if order not in ("asc", "desc"):
            raise ListingError("order must be 'asc' or 'desc'")
    except ListingError as exc:
        return bad_request(str(exc))
    rows = sort_rows(rows, [(col, order == "desc"), ("ticker", False)])
    body = page_body(request, st.base_for(request), rows, q, limit, {"request_id": request_id()})
    body["count"] = len(rows[q.offset:q.offset + limit])  # the results on this page
    return json_response(body)


@routes.get("/v3/reference/tickers/{ticker}", name="ticker_details")
async def ticker_details(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    ticker = request.match_info["ticker"]
    if ticker in st.config.not_found_tickers or ticker not in set(st.market.universe()):
        return not_found()
    try:
        row = ticker_row(ticker, st.market.seed)
    except UsageError:
        return not_found()
    return json_response({"request_id": request_id(), "results": row, "status": "OK"})


@routes.get("/v1/marketstatus/upcoming", name="marketstatus_upcoming")
async def marketstatus_upcoming(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    return json_response(upcoming(st.market.now_ms))


@routes.get("/v1/marketstatus/now", name="marketstatus_now")
async def marketstatus_now(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    return json_response(market_status_now(st.market.now_ms))
