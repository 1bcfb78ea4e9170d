"""``GET /v1/bars/{ticker}``: raw bars adjusted on read, as a JSON page or a streamed CSV/Arrow body.

Paging is keyset paging on ``t`` behind an opaque cursor. A JSON page holds at most ``limit``
rows (default 5,000, at most 50,000). CSV and Arrow are streamed chunk by chunk, so their pages
may be far larger (default and maximum 1,000,000 rows); their page end is fixed in time before
the first byte is sent (``limit`` windows of the timeframe), so the next cursor can travel in the
``X-Next-Cursor`` header.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Literal, TypedDict

from fastapi import APIRouter, Query, Request
from starlette.responses import Response, StreamingResponse

from mdw.adjust import adjust_bars, boundary_ms
from mdw.backfill import answer
from mdw.backfill import stitch as _stitch
from mdw.backfill.planner import uncovered
from mdw.backfill.stitch import Stitched
from mdw.bar_schema import BarSchema
from mdw.domain import (
    DAY_MS,
    HOUR_MS,
    BarBatch,
    Dividend,
    RangeSet,
    Split,
    Ticker,
    Timeframe,
    TimeRange,
    from_ms,
)
from mdw.polygon import BreakerState
from mdw.service.auth import Reader
from mdw.service.encode import ARROW_MEDIA_TYPE, CSV_MEDIA_TYPE, arrow_stream, csv_stream, encode_json
from mdw.service.errors import ApiError
from mdw.service.freshness import lag_ms
from mdw.service.params import decode_cursor, encode_cursor, ticker_param, time_param, timeframe_param
from mdw.service.state import ServiceState, get_state
from mdw.store.base import Dataset

router = APIRouter(tags=["bars"])
JSON_DEFAULT, JSON_MAX = 5_000, 50_000
STREAM_MAX = 1_000_000
_CALENDAR_MS = {"mo": 28 * DAY_MS, "q": 89 * DAY_MS, "y": 365 * DAY_MS}
_GAPS_SHOWN = 50


def min_spacing_ms(tf: Timeframe) -> int:
    """The least distance between two consecutive bar starts (DST can shorten a local day by 1 h)."""
    fixed = tf.fixed_ms
    if fixed is None:
        return tf.multiplier * _CALENDAR_MS[tf.unit] - HOUR_MS
    return fixed - HOUR_MS if fixed > HOUR_MS else fixed


def _iter(st: ServiceState, tk: Ticker, tf: Timeframe, start: int, end: int, n: int,
          plan: Stitched | None) -> AsyncIterator[BarBatch]:
    if plan is None:
        return st.store.iter_bars(tk.symbol, tf, start, end, chunk=n)
    return _stitch.iter_stitched(st.store, plan.parts, tf, start, end, label=plan.ticker, chunk=n)


async def _first_chunk(st: ServiceState, tk: Ticker, tf: Timeframe, start: int, end: int, n: int,
                       plan: Stitched | None = None) -> BarBatch:
    if plan is not None:  # the first part may end before n rows: gather across the change
        got = [b async for b in _iter(st, tk, tf, start, end, n, plan)]
        return BarBatch.concat(got).take(slice(0, n)) if got else BarBatch.empty(plan.ticker, tf)
    it = _iter(st, tk, tf, start, end, n, None)
    try:
        async for batch in it:
            return batch
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()
    return BarBatch.empty(tk.symbol, tf)


class _Adjuster:
    """Adjusts every chunk of one response the same way (actions and reference closes read once)."""

    def __init__(self, mode: str, splits: list[Split], dividends: list[Dividend], closes: dict[str, float],
                 as_of: date) -> None:
        self.mode = mode
        self.splits = splits
        self.dividends = dividends
        self.closes = closes
        self.as_of = as_of  # the market's local date: actions dated later are not effective yet
        self.skipped = sorted(d.ex_dividend_date.isoformat() for d in dividends
                              if d.id not in closes and d.ex_dividend_date <= as_of)

    @classmethod
    async def load(cls, st: ServiceState, tk: Ticker, tf: Timeframe, mode: str, first_t: int) -> _Adjuster:
        today = from_ms(st.clock.now_ms()).astimezone(tk.asset_class.tz).date()
        if mode == "none":
            return cls(mode, [], [], {}, today)
        splits = await st.store.actions.splits(tk.symbol)
        dividends = await st.store.actions.dividends(tk.symbol) if mode == "all" else []
        closes: dict[str, float] = {}
        relevant = []
        for d in dividends:
            cut = boundary_ms(tk.symbol, d.ex_dividend_date)
            if cut <= first_t or d.ex_dividend_date > today:
                continue  # no bar of the response starts before it, or it is not effective yet
            relevant.append(d)
            ref = await reference_close(st, tk, tf, cut)
            if ref is not None:
                closes[d.id] = ref
        return cls(mode, splits, relevant, closes, today)

    def headers(self) -> dict[str, str]:
        if not self.skipped:
            return {}
        return {"X-Adjust-Skipped": ",".join(self.skipped[:50])}

    def __call__(self, batch: BarBatch) -> BarBatch:
        if self.mode == "none":
            return batch
        return adjust_bars(batch, self.splits, self.dividends, self.mode, closes=self.closes,
                           as_of=self.as_of)


async def reference_close(st: ServiceState, tk: Ticker, tf: Timeframe, cut_ms: int) -> float | None:
    """The raw close before an ex-date: the daily bar if stored, else the series' own last bar."""
    for frame in (Timeframe(1, "d"), tf):
        batch = await st.store.bars(tk.symbol, frame, cut_ms - 14 * DAY_MS, cut_ms)
        if len(batch):
            return float(batch.c[-1])
    return None


class CoverageSummary(TypedDict):
    """How much of the requested range is held (the ``coverage`` of a bars response)."""

    start_ms: int
    end_ms: int
    covered_ms: int
    missing_ms: int
    complete: bool
    ratio: float
    covered_end_ms: int | None
    lag_ms: int
    gaps: list[list[int]]
    gap_count: int


class Summary(TypedDict):
    """Coverage and staleness of a bars response: in its JSON body and (short) in its headers."""

    coverage: CoverageSummary
    stale: bool
    stale_reasons: list[str]


async def _summary(st: ServiceState, tk: Ticker, tf: Timeframe, start: int, end: int,
                   plan: Stitched | None = None) -> Summary:
    rng = TimeRange(start, end)
    parts = [(tk.symbol, rng)] if plan is None else [(p.ticker, p.rng) for p in plan.parts]
    covered, gaps = RangeSet(), RangeSet()
    for symbol, part in parts:
        held = await st.store.coverage(symbol, Dataset.BARS, str(tf))
        covered = covered.union(held.clip(part))
        gaps = gaps.union(uncovered(tk.asset_class, tf, part, held))
    expected = covered.total_ms + gaps.total_ms
    now = st.clock.now_ms()
    held_end = covered.ranges[-1].end_ms if covered else start
    lag = lag_ms(tk.symbol, tf, held_end, min(end, now)) if held_end < min(end, now) else 0
    reasons = []
    state, _ = st.breaker()
    if state is not BreakerState.CLOSED:
        reasons.append(f"vendor circuit breaker is {state}; serving stored data only")
    if lag / 1000 > st.settings.stale_after_s:
        reasons.append(f"stored data ends {lag / 3_600_000:.1f} h of trading time before the requested end")
    return {
        "coverage": {
            "start_ms": start, "end_ms": end, "covered_ms": covered.total_ms, "missing_ms": gaps.total_ms,
            "complete": not gaps, "ratio": round(covered.total_ms / expected, 6) if expected else 1.0,
            "covered_end_ms": held_end if covered else None, "lag_ms": lag,
            "gaps": [[g.start_ms, g.end_ms] for g in list(gaps)[:_GAPS_SHOWN]], "gap_count": len(gaps),
        },
        "stale": bool(reasons),
        "stale_reasons": reasons,
    }


def _headers(summary: Summary, next_cursor: str | None) -> dict[str, str]:
    headers = {"X-Stale": "true" if summary["stale"] else "false",
               "X-Coverage-Ratio": str(summary["coverage"]["ratio"])}
    if summary["stale"]:
        headers["Warning"] = '110 mdw "' + "; ".join(summary["stale_reasons"]).replace('"', "'") + '"'
    if next_cursor:
        headers["X-Next-Cursor"] = next_cursor
    return headers


@router.get(
    "/v1/bars/{ticker}",
    summary="Bars of one series, adjusted on read",
    responses={200: {"description": "A JSON page, or a CSV / Arrow IPC stream",
                     "content": {"application/json": {}, "text/csv": {}, ARROW_MEDIA_TYPE: {}}},
               400: {"description": "Bad parameter"},
               404: {"description": "Unknown ticker (with a did-you-mean), or a timeframe never stored"},
               409: {"description": "strict=true and the range is held only in part; or an adjusted"
                                    " read whose corporate actions were never fetched"}},
)
async def get_bars(
    request: Request,
    ticker: str,
    _: Reader,
    timeframe: Annotated[str, Query(description="1m, 5m, 1h, 1d ...", max_length=12)] = "1d",
    start: Annotated[str | None, Query(description="YYYY-MM-DD, ISO datetime or epoch ms",
                                       max_length=40)] = None,
    end: Annotated[str | None, Query(description="inclusive day, ISO datetime or epoch ms (exclusive)",
                                     max_length=40)] = None,
    adjust: Literal["none", "splits", "all"] = "none",
    format: Literal["json", "csv", "arrow"] = "json",
    limit: Annotated[int | None, Query(ge=1, le=STREAM_MAX, description="rows per page")] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    strict: Annotated[bool, Query(description="answer 409 instead of a partly held range")] = False,
    names: Annotated[Literal["long", "vendor"], Query(
        description="column names: long (timestamp, date, open, high, low, close, volume, vwap, trades)"
                    " or vendor (t in epoch ms, o, h, l, c, v, vw, n)")] = "long",
    stitch: Annotated[bool, Query(description="the security today's ticker (or a FIGI/CIK) names, read "
                                              "across its ticker changes (raw bars only)")] = False,
) -> Response:
    """Bars of one series. Every format has the same columns: ``timestamp`` (UTC; ISO 8601 in JSON
    and CSV, ``timestamp[ms, tz=UTC]`` in Arrow), ``date`` (the session's, daily and longer bars
    only), ``open, high, low, close, volume, vwap, trades``; ``names=vendor`` gives the vendor's
    ``t`` (epoch ms in JSON and CSV), ``o, h, l, c, v, vw, n``. Adjusted values are rounded to the
    instrument's precision. Dates in ``start``/``end`` are the market's own days (New York for US
    stocks, UTC for crypto and forex). The Arrow schema's metadata names the ticker, timeframe,
    adjustment, as-of day and coverage.

    ``stitch=true``: ``ticker`` (today's ticker, a composite FIGI or a CIK) names a security whose
    tickers are read over the days each was its ticker, concatenated; the tickers and the change
    points are in ``X-Stitch-Tickers``, ``X-Stitch-Changes`` and the JSON body's ``stitch``."""
    st = get_state(request)
    tk = ticker_param(ticker, stitch=stitch)
    tf = timeframe_param(timeframe)
    tz = tk.asset_class.tz
    now = st.clock.now_ms()
    last = time_param("end", end, tz, end=True, default=now + DAY_MS)
    first = time_param("start", start, tz, end=False, default=-1)
    if stitch and adjust != "none":
        raise ApiError(400, "bad_adjust", "stitched reads are unadjusted: use adjust=none with stitch=true")
    if first < 0:  # default: where the stored series begins (or a year back when nothing is held)
        first = await _default_start(st, tk, tf, last, stitch)
    if last < first:
        raise ApiError(400, "bad_range", "end is before start")
    page_start = max(first, decode_cursor(cursor)) if cursor else first
    if format == "json" and (limit or JSON_DEFAULT) > JSON_MAX:
        raise ApiError(400, "bad_limit", f"limit for JSON is at most {JSON_MAX}; use csv or arrow for more")
    plan: Stitched | None = None
    if stitch:  # after the parameters: bad input is a 400 first
        plan = await _stitch.plan_stitch(st.store, tk.symbol, tk.asset_class, TimeRange(first, last))
        await _stitch.require_stored(st.store, plan, tf)
    else:
        await answer.require_series(st.store, tk, tf)
    page_start = min(page_start, last)
    summary = await _summary(st, tk, tf, first, last, plan)
    if strict and plan is not None:
        answer.require_complete(await _stitch.coverage(st.store, plan, tf, TimeRange(first, last), now,
                                                       tk.asset_class))
    elif strict:
        answer.require_complete(await answer.coverage_of(st.store, tk, tf, TimeRange(first, last), now))
    lacking, _as_of = await answer.missing_actions(st.store, tk, adjust, TimeRange(first, last), now)
    if lacking:
        raise answer.actions_refusal(tk, adjust, lacking, TimeRange(first, last))
    stitched = _stitch_headers(plan)
    label = plan.ticker if plan else tk.symbol
    if format == "json":
        size = limit or JSON_DEFAULT
        batch = await _first_chunk(st, tk, tf, page_start, last, size + 1, plan)
        next_cursor = None
        if len(batch) > size:
            next_cursor = encode_cursor(int(batch.t[size]))
            batch = batch.take(slice(0, size))
        adjuster = await _Adjuster.load(st, tk, tf, adjust, int(batch.t[0]) if len(batch) else last)
        schema = BarSchema(label, tf, adjust, adjuster.as_of, names)
        body = {"ticker": label, "timeframe": str(tf), "adjust": adjust,
                "as_of": adjuster.as_of.isoformat(), "names": names, "start_ms": first, "end_ms": last,
                "count": len(batch),
                "next_cursor": next_cursor, **summary, "adjust_skipped": adjuster.skipped,
                "bars": schema.rows(adjuster(batch)), **({"stitch": plan.to_dict()} if plan else {})}
        headers = {**_headers(summary, next_cursor), **adjuster.headers(), **stitched}
        return Response(encode_json(body), media_type="application/json", headers=headers)
    size = limit or STREAM_MAX
    head = await _first_chunk(st, tk, tf, page_start, last, 1, plan)
    begin = int(head.t[0]) if len(head) else last
    stop = min(last, begin + size * min_spacing_ms(tf))
    next_cursor = encode_cursor(stop) if stop < last else None
    adjuster = await _Adjuster.load(st, tk, tf, adjust, begin)

    async def chunks() -> AsyncIterator[BarBatch]:
        if begin < stop:
            async for chunk in _iter(st, tk, tf, begin, stop, 100_000, plan):
                yield adjuster(chunk)

    extra = {"mdw.coverage": encode_json(summary["coverage"]).decode()}
    if plan is not None:
        extra["mdw.stitch"] = encode_json(plan.to_dict()).decode()
    schema = BarSchema(label, tf, adjust, adjuster.as_of, names, extra=extra)
    encoder = arrow_stream if format == "arrow" else csv_stream
    media = ARROW_MEDIA_TYPE if format == "arrow" else CSV_MEDIA_TYPE
    headers = {**_headers(summary, next_cursor), **adjuster.headers(), **stitched}
    suffix = "arrows" if format == "arrow" else "csv"
    name = tk.symbol.replace(":", "_")
    headers["Content-Disposition"] = f'inline; filename="{name}_{tf}.{suffix}"'
    return StreamingResponse(encoder(schema, chunks()), media_type=media, headers=headers)



async def _default_start(st: ServiceState, tk: Ticker, tf: Timeframe, last: int, stitch: bool) -> int:
    """Where the stored series begins (for a stitched read, its security's earliest ticker's)."""
    symbols = [tk.symbol]
    if stitch:
        symbols = [x.ticker for x in await st.store.reference.history(tk.symbol)] or symbols
    starts = []
    for symbol in dict.fromkeys(symbols):
        held = await st.store.coverage(symbol, Dataset.BARS, str(tf))
        if held:
            starts.append(held.ranges[0].start_ms)
    return min(min(starts), last) if starts else max(0, last - 365 * DAY_MS)


def _stitch_headers(plan: Stitched | None) -> dict[str, str]:
    """``X-Stitch-Tickers`` (the tickers read, oldest first) and ``X-Stitch-Changes`` (``date old>new``)."""
    if plan is None:
        return {}
    tickers = ",".join(dict.fromkeys(p.ticker for p in plan.parts)) or plan.ticker
    return {"X-Stitch-Tickers": tickers, "X-Stitch-Changes": plan.header()}
