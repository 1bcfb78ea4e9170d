"""Universe endpoints: tickers (list, details, events) and options contracts (list, details)."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from mdw.simulator import tickers
from mdw.simulator.encode import request_id
from mdw.simulator.listing import ListingError, Query, page_body, read_limit, read_query
from mdw.simulator.options import Contract, chain, contract, expirations, optionable
from mdw.simulator.responses import bad_request, json_response, not_found
from mdw.simulator.state import STATE, Row, SimState, encode_cursor, parse_day

routes = web.RouteTableDef()
_CONTRACT_SORTS = ("ticker", "underlying_ticker", "expiration_date", "strike_price")
_CACHE_LIMIT = 64


def _as_of(st: SimState, text: str | None, name: str) -> date:
    if not text:
        return st.market.today()
    day = parse_day(text)
    if day is None:
        raise ListingError(f"{name} must be a date formatted YYYY-MM-DD")
    return day


def _cached_query(
    st: SimState, kind: str, params: dict[str, str], build: Callable[[], list[Row]]
) -> list[Row]:
    """Whole results of a listing query, kept while the data day lasts (paging re-asks often)."""
    key = (kind, tuple(sorted(params.items())), st.market.today())
    rows = st.cache.get(key)
    if rows is None:
        queries = [k for k in st.cache if isinstance(k, tuple) and k[:1] in (("q-tickers",), ("q-options",))]
        if len(queries) > _CACHE_LIMIT:
            for old in queries:
                del st.cache[old]
        rows = st.cache[key] = build()
    return list(rows)


@routes.get("/v3/reference/tickers", name="tickers")
async def list_tickers(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    try:
        q: Query = read_query(request)
        params = dict(q.params)
        limit = read_limit(params, 100, 1000)
        # the vendor pins a listing to the day it was first asked about: the cursor carries `date`
        as_of = _as_of(st, params.get("date"), "date")
        params["date"] = as_of.isoformat()
        filters = {k: v for k, v in params.items() if k != "limit"}
        rows = _cached_query(st, "q-tickers", filters, lambda: tickers.query(st.market, filters, as_of))
    except ListingError as exc:
        return bad_request(str(exc))
    body = page_body(request, st.base_for(request), rows, Query(params, q.offset), limit,
                     {"request_id": request_id()})
    body["count"] = len(rows[q.offset:q.offset + limit])  # the results on this page
    return json_response(body)


@routes.get("/v3/reference/tickers/{ticker}", name="ticker_details")
async def ticker_details(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    ticker = request.match_info["ticker"]
    if ticker in st.config.not_found_tickers:
        return not_found()
    try:
        as_of = _as_of(st, request.query.get("date"), "date")
    except ListingError as exc:
        return bad_request(str(exc))
    row = tickers.details(st.market, ticker, as_of)
    if row is None:
        return not_found()
    return json_response({"request_id": request_id(), "results": row, "status": "OK"})


@routes.get("/vX/reference/tickers/{id}/events", name="ticker_events")
async def ticker_events(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    result = tickers.events(st.market, request.match_info["id"], request.query.get("types"),
                            st.config.ticker_event_key)
    if result is None:
        return not_found()
    return json_response({"results": result, "status": "OK", "request_id": request_id()})


def _bounds(params: dict[str, str], col: str, parse: Any) -> tuple[Any, Any, Any]:
    """(equal, lowest allowed, highest allowed) of a column's filters (None where absent)."""
    eq = parse(params[col]) if col in params else None
    lo = hi = None
    if f"{col}.gte" in params:
        lo = parse(params[f"{col}.gte"])
    if f"{col}.gt" in params:
        lo = ("gt", parse(params[f"{col}.gt"]))
    if f"{col}.lte" in params:
        hi = parse(params[f"{col}.lte"])
    if f"{col}.lt" in params:
        hi = ("lt", parse(params[f"{col}.lt"]))
    return eq, lo, hi


def _ok(value: Any, eq: Any, lo: Any, hi: Any) -> bool:
    if eq is not None and value != eq:
        return False
    if lo is not None and not (value > lo[1] if isinstance(lo, tuple) else value >= lo):
        return False
    return hi is None or (value < hi[1] if isinstance(hi, tuple) else value <= hi)


def _date(text: str) -> date:
    day = parse_day(text)
    if day is None:
        raise ListingError(f"invalid date {text!r}; expected YYYY-MM-DD")
    return day


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ListingError(f"invalid number {text!r}") from None


def _contracts(st: SimState, params: dict[str, str], after: str | None) -> Iterator[Contract]:
    """Contracts matching the filters, in ticker order, lazily (after the ticker ``after``)."""
    as_of = _as_of(st, params.get("as_of"), "as_of")
    expired = params.get("expired", "false").strip().lower() in ("true", "1")
    kind = params.get("contract_type")
    if kind is not None and kind not in ("call", "put"):
        raise ListingError("contract_type must be call or put")
    u_eq, u_lo, u_hi = _bounds(params, "underlying_ticker", str)
    e_eq, e_lo, e_hi = _bounds(params, "expiration_date", _date)
    s_eq, s_lo, s_hi = _bounds(params, "strike_price", _number)
    first, last = (as_of, as_of + timedelta(days=400)) if not expired else (date(2010, 1, 1),
                                                                             as_of - timedelta(days=1))
    names = sorted(r.ticker for r in st.market.listings() if optionable(r) and r.start <= as_of)
    start = 0
    if after is not None:
        known = contract(st.market.seed, after)
        start = bisect.bisect_left(names, known.underlying) if known else bisect.bisect_right(names, after)
    for underlying in names[start:]:
        if not _ok(underlying, u_eq, u_lo, u_hi):
            continue
        for exp, weekly in expirations(st.market.seed, underlying, first, last):
            if not _ok(exp, e_eq, e_lo, e_hi):
                continue
            for c in chain(st.market.seed, underlying, exp, weekly):
                if c.listed > as_of or (after is not None and c.ticker <= after):
                    continue
                if (kind is None or c.contract_type == kind) and _ok(c.strike, s_eq, s_lo, s_hi):
                    yield c


@routes.get("/v3/reference/options/contracts", name="options_contracts")
async def options_contracts(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    try:
        q = read_query(request)
        params = dict(q.params)
        limit = read_limit(params, 10, 1000)
        params.setdefault("as_of", st.market.today().isoformat())
        sort = params.get("sort", "ticker")
        order = params.get("order", "asc").lower()
        if sort not in _CONTRACT_SORTS or order not in ("asc", "desc"):
            raise ListingError(f"sort must be one of {', '.join(_CONTRACT_SORTS)}; order asc or desc")
        if sort in ("ticker", "underlying_ticker") and order == "asc":
            # ticker order is generation order: page by the last ticker, generating only what is shown
            after = params.pop("after", None)
            page: list[Contract] = []
            for c in _contracts(st, params, after):
                page.append(c)
                if len(page) > limit:
                    break
            body: dict[str, Any] = {"results": [c.row() for c in page[:limit]], "status": "OK",
                                    "request_id": request_id()}
            if len(page) > limit:
                carried = params | {"after": page[limit - 1].ticker, "limit": str(limit)}
                body["next_url"] = f"{st.base_for(request)}{request.path}?cursor={encode_cursor(carried)}"
            return json_response(body)
        filters = {k: v for k, v in params.items() if k != "limit"}
        keys = {"ticker": lambda c: c.ticker, "underlying_ticker": lambda c: (c.underlying, c.ticker),
                "expiration_date": lambda c: (c.expiration, c.ticker),
                "strike_price": lambda c: (c.strike, c.ticker)}
        rows = _cached_query(st, "q-options", filters, lambda: [
            c.row() for c in sorted(_contracts(st, filters, None), key=keys[sort], reverse=order == "desc")])
    except ListingError as exc:
        return bad_request(str(exc))
    out = page_body(request, st.base_for(request), rows, Query(params, q.offset), limit,
                    {"request_id": request_id()})
    return json_response(out)


@routes.get("/v3/reference/options/contracts/{options_ticker}", name="options_contract")
async def options_contract(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    c = contract(st.market.seed, request.match_info["options_ticker"])
    if c is None or st.market.listing(c.underlying) is None:
        return not_found("Contract not found.")
    return json_response({"results": c.row(), "status": "OK", "request_id": request_id()})
