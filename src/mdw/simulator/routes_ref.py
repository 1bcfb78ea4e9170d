"""Reference endpoints: dividends and splits (v3 and Massive's /stocks/v1), market status."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
from aiohttp import web

from mdw.domain import AssetClass, Dividend, Split
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
from mdw.simulator.responses import bad_request, json_response
from mdw.simulator.state import STATE, Row, SimState
from mdw.simulator.status import market_status_now, upcoming

routes = web.RouteTableDef()
_V3_DIV_SORTS = ("ex_dividend_date", "pay_date", "declaration_date", "record_date", "cash_amount", "ticker")
_V3_SPLIT_SORTS = ("execution_date", "ticker")


def _tickers_of(st: SimState, params: dict[str, str]) -> list[str]:
    """An exact ``ticker`` (or ``ticker.any_of``) narrows the search; otherwise every stock ticker
    the universe ever listed (a delisted name's past actions are still listed)."""
    if "ticker" in params:
        return [params["ticker"]]
    if "ticker.any_of" in params:
        return [t.strip() for t in params["ticker.any_of"].split(",") if t.strip()]
    # a ticker has actions only while listed: skip those whose life misses the asked dates
    first, last = date(1990, 1, 1), date(2100, 1, 1)
    for col in ("ex_dividend_date", "execution_date"):
        for op, text in ((op, params.get(f"{col}.{op}")) for op in ("gte", "gt", "lte", "lt", "")):
            day = _day(params.get(col) if op == "" else text)
            if day is None:
                continue
            if op in ("gte", "gt", ""):
                first = max(first, day)
            if op in ("lte", "lt", ""):
                last = min(last, day + timedelta(days=40))  # dividends are declared ahead
    return sorted(r.ticker for r in st.market.listings() if r.overlaps(first - timedelta(days=1), last))


def _day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _cached(st: SimState, kind: str, ticker: str, build: Callable[[str], list[Row]]) -> list[Row]:
    key = (kind, ticker, st.market.today())
    rows = st.cache.get(key)
    if rows is None:
        if len(st.cache) > 50_000:
            st.cache.clear()
        rows = st.cache[key] = build(ticker)
    return list(rows)


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def _dividend_rows(st: SimState, ticker: str, since: date | None) -> list[Row]:
    """The ticker's dividend rows with ex-dates from ``since`` on (the factors need no earlier ones)."""
    if st.market.asset_of(ticker) is not AssetClass.STOCKS:
        return []
    market = st.market
    divs: list[tuple[Dividend, float]] = market.dividends_with_prices(ticker, since)
    splits = tuple(market.splits(ticker))
    ratios = actions.adjustment_factor(
        splits, np.asarray([d.ex_dividend_date.toordinal() - 1 for d, _ in divs], dtype=np.int64),
        market.today()).tolist()
    rows: list[Row] = []
    cumulative = 1.0
    for (div, prev), ratio in zip(reversed(divs), reversed(ratios), strict=True):
        # newest first: the historical factor accumulates backwards
        if prev > div.cash_amount:
            cumulative *= 1.0 - div.cash_amount / prev
        rows.append({
            "cash_amount": div.cash_amount, "currency": div.currency,
            "declaration_date": _iso(div.declaration_date), "dividend_type": div.dividend_type,
            "ex_dividend_date": div.ex_dividend_date.isoformat(), "frequency": div.frequency,
            "id": div.id, "pay_date": _iso(div.pay_date), "record_date": _iso(div.record_date),
            "ticker": div.ticker,
            "distribution_type": "special" if div.frequency == 0 else "recurring",
            "historical_adjustment_factor": round(cumulative, 8),
            "split_adjusted_cash_amount": round(div.cash_amount / ratio, 6),
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
            "split_to": s.split_to, "ticker": s.ticker, "reverse_split": s.split_from > s.split_to,
            "adjustment_type": actions.adjustment_type(s), "historical_adjustment_factor": cumulative,
        })
    rows.reverse()
    return rows


def _collect(st: SimState, kind: str, params: dict[str, str]) -> list[Row]:
    if kind == "split":
        return [row for t in _tickers_of(st, params)
                for row in _cached(st, kind, t, lambda t: _split_rows(st, t))]
    bounds = (_day(params.get(f"ex_dividend_date{op}")) for op in (".gte", ".gt", ""))
    since = max((d for d in bounds if d is not None), default=None)
    out: list[Row] = []
    for ticker in _tickers_of(st, params):
        out.extend(_cached(st, f"div-{since}", ticker, lambda t: _dividend_rows(st, t, since)))
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


# fields only one generation of the endpoints has
_V1_ONLY = {"div": ("distribution_type", "historical_adjustment_factor", "split_adjusted_cash_amount"),
            "split": ("adjustment_type", "historical_adjustment_factor")}
_V3_ONLY = {"div": ("dividend_type",), "split": ("reverse_split",)}
_DIV_COLUMNS = ("ticker", "ex_dividend_date", "record_date", "declaration_date", "pay_date", "frequency",
                "cash_amount", "dividend_type")


def _result(st: SimState, kind: str, v1: bool, p: dict[str, str]) -> list[Row]:
    """Every row of a listing query, filtered, sorted and in the version's shape."""
    rows = _collect(st, kind, p)
    if kind == "div":
        cols = [*_DIV_COLUMNS, "distribution_type"] if v1 else list(_DIV_COLUMNS)
        rows = filter_rows(rows, p, cols, any_of=v1)
        keys = (_v1_sort(p, tuple(cols), "ticker.asc") if v1
                else _v3_sort(p, _V3_DIV_SORTS, "ex_dividend_date"))
    else:
        cols = ["ticker", "execution_date", "adjustment_type" if v1 else "reverse_split"]
        rows = filter_rows(rows, p, cols, any_of=v1)
        keys = (_v1_sort(p, ("ticker", "execution_date", "adjustment_type"), "execution_date.desc")
                if v1 else _v3_sort(p, _V3_SPLIT_SORTS, "execution_date"))
    drop = set((_V3_ONLY if v1 else _V1_ONLY)[kind])
    return [{k: v for k, v in r.items() if k not in drop} for r in sort_rows(rows, keys)]


async def _listing(request: web.Request, kind: str, v1: bool) -> web.StreamResponse:
    st = request.app[STATE]
    try:
        q: Query = read_query(request)
        p = q.params
        limit = read_limit(p, 100, 5000) if v1 else read_limit(p, 10, 1000)
        # a market-wide query sorts tens of thousands of rows: keep the result while pages are read
        key = ("q-actions", kind, v1, tuple(sorted((k, v) for k, v in p.items() if k != "limit")),
               st.market.today())
        rows = st.cache.get(key)
        if rows is None:
            rows = _result(st, kind, v1, p)
            if len(rows) > 1000:
                stale = [k for k in st.cache if isinstance(k, tuple) and k[:1] == ("q-actions",)]
                for old in stale[:-16]:
                    del st.cache[old]
                st.cache[key] = rows
    except ListingError as exc:
        return bad_request(str(exc))
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


@routes.get("/v1/marketstatus/upcoming", name="marketstatus_upcoming")
async def marketstatus_upcoming(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    return json_response(upcoming(st.market.now_ms))


@routes.get("/v1/marketstatus/now", name="marketstatus_now")
async def marketstatus_now(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    return json_response(market_status_now(st.market.now_ms))
