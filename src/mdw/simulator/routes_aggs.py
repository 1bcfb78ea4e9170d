"""Aggregates endpoints: custom bars (with next_url paging), grouped daily, previous close."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime, time, timedelta

from aiohttp import web

from mdw.domain import DAY_MS, NEW_YORK, AssetClass, BarBatch, Timeframe, local_midnight_ms
from mdw.simulator import encode as enc
from mdw.simulator import revisions
from mdw.simulator.responses import bad_request, json_response, not_authorized, not_found
from mdw.simulator.state import PLAN, STATE, SimState, decode_cursor, encode_cursor, parse_day, parse_time

TIMESPANS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
DEFAULT_LIMIT = 5000
MAX_LIMIT = 50000
routes = web.RouteTableDef()


def _bool(text: str | None, default: bool) -> bool:
    if text is None:
        return default
    return text.strip().lower() not in ("false", "0", "no")


def _limit(text: str | None) -> int | None:
    if text is None or text == "":
        return DEFAULT_LIMIT
    try:
        value = int(text)
    except ValueError:
        return None
    return max(1, min(MAX_LIMIT, value))


def _time_check(st: SimState, request: web.Request, from_ms: int, to_ms: int) -> web.Response | int:
    """403 for a start in the future or before the plan's history, else the start to serve from.

    A range that starts before the history and ends inside it is refused whole, or clipped to
    the history under ``straddle="clip"`` (the vendor's answer is not known).
    """
    if from_ms > st.market.clock_ms:
        return not_authorized()
    start = st.history_start_ms(request.get(PLAN, "unlimited"))
    if start is not None and from_ms < start:
        if st.config.straddle == "refuse" or to_ms < start:
            return not_authorized()
        return start
    return from_ms


def _published(st: SimState, request: web.Request) -> AbstractContextManager[None]:
    """Serve as the calling key's plan publishes: nothing newer than its delay."""
    return st.market.published_before(st.published_before_ms(request.get(PLAN, "unlimited")))


@routes.get("/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}", name="aggs")
async def aggregates(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    info = request.match_info
    ticker = info["ticker"]
    if ticker in st.config.not_found_tickers:
        return not_found()
    try:
        mult = int(info["multiplier"])
    except ValueError:
        mult = 0
    if mult < 1 or mult > 99_999:
        return bad_request("multiplier must be a positive integer")
    timespan = info["timespan"]
    if timespan not in TIMESPANS:
        return bad_request(f"Invalid timespan '{timespan}'. Use one of: {', '.join(TIMESPANS)}")
    query = request.query
    carried: dict[str, str] = {}
    if "cursor" in query:
        decoded = decode_cursor(query["cursor"])
        if decoded is None:
            return bad_request("Invalid cursor")
        carried = decoded
    limit = _limit(carried.get("limit", query.get("limit")))
    if limit is None:
        return bad_request("limit must be an integer")
    sort = carried.get("sort", query.get("sort", "asc")).lower()
    if sort not in ("asc", "desc"):
        return bad_request("sort must be 'asc' or 'desc'")
    adjusted_raw = query.get("adjusted", carried.get("adjusted"))
    adjusted = _bool(adjusted_raw, True)
    asset = st.market.asset_of(ticker) or AssetClass.STOCKS
    from_ms = parse_time(info["from"], asset, end=False)
    to_ms = parse_time(info["to"], asset, end=True)
    if from_ms is None or to_ms is None:
        which = "from" if from_ms is None else "to"
        return bad_request(f"Could not parse the '{which}' parameter: use YYYY-MM-DD or a Unix ms timestamp")
    if to_ms < from_ms:
        return bad_request("The parameter 'to' cannot be a time that occurs before 'from'")
    checked = _time_check(st, request, from_ms, to_ms)
    if isinstance(checked, web.Response):
        return checked
    with _published(st, request):
        results, query_count, count, next_start = _page(st, ticker, mult, timespan, checked, to_ms, limit,
                                                        sort, adjusted)
    body: dict[str, object] = {
        "ticker": ticker,
        "queryCount": query_count,
        "resultsCount": count,
        "adjusted": adjusted,
    }
    if count:
        body["results"] = enc.raw(results)
    elif st.config.null_results:
        body["results"] = None
    body["status"] = st.config.status
    body["request_id"] = enc.request_id()
    if count:
        body["count"] = count
    if next_start is not None:
        cursor: dict[str, str] = {"limit": str(limit), "sort": sort}
        if st.config.cursor_adjusted and adjusted_raw is not None and not adjusted:
            cursor["adjusted"] = "false"
        tail = f"{next_start}/{info['to']}" if sort == "asc" else f"{info['from']}/{next_start}"
        body["next_url"] = (f"{st.base_for(request)}/v2/aggs/ticker/{ticker}/range/{mult}/{timespan}/"
                            f"{tail}?cursor={encode_cursor(cursor)}")
    st.stats.bars_served += count
    st.stats.pages_served += 1
    return json_response(body)


def _page(st: SimState, ticker: str, mult: int, timespan: str, from_ms: int, to_ms: int, limit: int,
          sort: str, adjusted: bool) -> tuple[bytes, int, int, int | None]:
    """(results JSON, queryCount, resultsCount, next start) of one page, cached once it is final."""
    key = (ticker, mult, timespan, from_ms, to_ms, limit, sort, adjusted, st.market.today())
    corrupting = st.faults.config.invalid_bar_rate > 0 or st.faults.config.bad_value_rate > 0
    final = to_ms + 2 * DAY_MS < st.market.now_ms and not corrupting
    if final and (hit := st.pages.get(key)) is not None:
        return hit
    tf = Timeframe.from_vendor(mult, timespan)
    page = st.market.page(ticker, tf, from_ms, to_ms, limit=limit, sort=sort, adjusted=adjusted)
    bars = page.bars
    if ticker in st.config.revised and tf == Timeframe(1, "d"):
        bars = revisions.as_served(bars, st.market.asset_of(ticker) or AssetClass.STOCKS, st.market.clock_ms)
    bars, corrupted = st.faults.corrupt(bars)
    if corrupted:
        st.stats.faults["invalid_bar"] += corrupted
    listing = st.market.listing(ticker)
    otc = st.config.otc_flag and listing is not None and listing.market == "otc"
    vw_n = ticker not in st.config.no_vw_n
    spoiled = st.faults.bad_rows(len(bars))
    if spoiled:
        st.stats.faults["bad_value"] += len(spoiled)
        encoded = enc.spoiled_json(bars, spoiled, st.faults.config.bad_value, vw_n=vw_n, otc=otc)
    else:
        encoded = enc.bars_json(bars, vw_n=vw_n, otc=otc) if len(bars) else b""
    item = (encoded, page.query_count, len(bars), page.next_start_ms)
    if final:
        st.pages.put(key, item)
    return item


def _grouped_t(asset: AssetClass, day: date) -> int:
    """Grouped daily and previous-close ``t``: 16:00 ET for stocks, 23:59:59.999 UTC for crypto/fx."""
    if asset in (AssetClass.CRYPTO, AssetClass.FOREX):
        return local_midnight_ms(day + timedelta(days=1), asset.tz) - 1
    return int(datetime.combine(day, time(16), tzinfo=NEW_YORK).timestamp() * 1000)


def _grouped_body(rows: Sequence[object], adjusted: bool, status: str) -> dict[str, object]:
    body: dict[str, object] = {"queryCount": len(rows), "resultsCount": len(rows), "adjusted": adjusted}
    if rows:
        body["results"] = rows
    body["status"] = status
    body["request_id"] = enc.request_id()
    if rows:
        body["count"] = len(rows)
    return body


async def _grouped(request: web.Request, asset: AssetClass) -> web.StreamResponse:
    st = request.app[STATE]
    day = parse_day(request.match_info["date"])
    if day is None:
        return bad_request("Could not parse the 'date' parameter: use YYYY-MM-DD")
    midnight = local_midnight_ms(day, asset.tz)
    checked = _time_check(st, request, midnight, midnight)
    if isinstance(checked, web.Response):
        return checked
    adjusted = _bool(request.query.get("adjusted"), True)
    include_otc = _bool(request.query.get("include_otc"), False)
    t = _grouped_t(asset, day)
    with _published(st, request):
        grouped = st.market.grouped_rows(day, asset, adjusted, include_otc)
    revised, clock = st.config.revised, st.market.clock_ms
    otc = (frozenset(r.ticker for r in st.market.listings() if r.market == "otc")
           if st.config.otc_flag and include_otc else frozenset())
    rows = [enc.grouped_values(ticker, revisions.row_as_served(asset, values, clock) if ticker in revised
                               else values, t, ticker in otc) for ticker, values in grouped]
    st.stats.bars_served += len(rows)
    return json_response(_grouped_body(rows, adjusted, "OK"))


@routes.get("/v2/aggs/grouped/locale/us/market/stocks/{date}", name="grouped_stocks")
async def grouped_stocks(request: web.Request) -> web.StreamResponse:
    return await _grouped(request, AssetClass.STOCKS)


@routes.get("/v2/aggs/grouped/locale/global/market/crypto/{date}", name="grouped_crypto")
async def grouped_crypto(request: web.Request) -> web.StreamResponse:
    return await _grouped(request, AssetClass.CRYPTO)


@routes.get("/v2/aggs/grouped/locale/global/market/fx/{date}", name="grouped_fx")
async def grouped_fx(request: web.Request) -> web.StreamResponse:
    return await _grouped(request, AssetClass.FOREX)


@routes.get("/v2/aggs/ticker/{ticker}/prev", name="prev")
async def previous_close(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    ticker = request.match_info["ticker"]
    if ticker in st.config.not_found_tickers:
        return not_found()
    adjusted = _bool(request.query.get("adjusted"), True)
    asset = st.market.asset_of(ticker)
    with _published(st, request):
        bar: BarBatch | None = st.market.previous_close(ticker, adjusted) if asset else None
    rows = []
    if bar is not None and asset is not None and len(bar):
        day = datetime.fromtimestamp(int(bar.t[0]) / 1000, tz=asset.tz).date()
        rows = [enc.grouped_row(ticker, bar, _grouped_t(asset, day))]
    body = {"ticker": ticker, **_grouped_body(rows, adjusted, st.config.status)}
    st.stats.bars_served += len(rows)
    return json_response(body)
