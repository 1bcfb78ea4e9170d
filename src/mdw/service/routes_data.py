"""Symbols (tracking), corporate actions, coverage (with the per-session heat map) and the quarantine."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, NotRequired, TypedDict

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from mdw.backfill.boundary import plan_reach
from mdw.backfill.plan import BackfillSpec
from mdw.backfill.report import stored_report
from mdw.backfill.tickers import check_tickers
from mdw.domain import AssetClass, RangeSet, SeriesKey, Ticker, Timeframe, TimeRange, day_range_ms, from_ms
from mdw.errors import UsageError
from mdw.service.auth import Admin, Reader
from mdw.service.coverage_sessions import day_span, session_states
from mdw.service.encode import encode_json
from mdw.service.errors import ApiError
from mdw.service.freshness import freshness_of
from mdw.service.openapi import vendor_errors
from mdw.service.params import ticker_param, timeframe_param
from mdw.service.state import ServiceState, get_state
from mdw.store.base import Dataset, RunRecord, SymbolInfo

router = APIRouter(tags=["symbols and data"])
HEATMAP_MAX_DAYS = 400
QUARANTINE_MAX = 10_000


def _json(value: object, status: int = 200) -> Response:
    return Response(encode_json(value), status_code=status, media_type="application/json")


class SymbolCreate(BaseModel):
    """Start tracking a ticker: the scheduler keeps these timeframes current from ``start``."""

    ticker: str = Field(max_length=40, examples=["AAPL"])
    timeframes: list[str] = Field(default_factory=lambda: ["1d"], min_length=1, max_length=20)
    start: date | None = Field(default=None, description="first day to hold (default: one year ago)")
    name: str = Field(default="", max_length=200)
    backfill: bool = Field(default=True, description="start a backfill of the new series now")


class SymbolPatch(BaseModel):
    """Change a tracked symbol; omitted fields keep their value."""

    timeframes: list[str] | None = Field(default=None, min_length=1, max_length=20)
    start: date | None = None
    name: str | None = Field(default=None, max_length=200)
    active: bool | None = None


def _timeframes(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(timeframe_param(v)) for v in values))


def _start_day(value: date | None, st: ServiceState) -> date:
    if value is None:
        return from_ms(st.clock.now_ms()).date() - timedelta(days=365)
    if not date(1970, 1, 1) <= value <= date(2099, 12, 31):
        raise ApiError(400, "bad_time", "start must lie between 1970-01-01 and 2099-12-31")
    return value


class SeriesView(TypedDict):
    """One stored series of a symbol as ``/v1/symbols`` shows it; freshness once anything is covered."""

    timeframe: str
    bars: int
    first_t: int | None
    last_t: int | None
    covered_end_ms: NotRequired[int]
    fetched_at_ms: NotRequired[int]
    lag_s: NotRequired[float]
    stale: NotRequired[bool]


def symbol_dict(info: SymbolInfo, series: dict[str, SeriesView] | None = None) -> dict[str, object]:
    return {"ticker": info.ticker, "asset_class": info.asset_class, "name": info.name, "active": info.active,
            "timeframes": list(info.timeframes), "start_date": info.start_date,
            "series": list((series or {}).values())}


async def _series_by_ticker(st: ServiceState, ticker: str | None = None) -> dict[str, dict[str, SeriesView]]:
    """Per ticker and timeframe: bars stored, first/last t and freshness (of one ticker, when given)."""
    out: dict[str, dict[str, SeriesView]] = {}
    for s in await st.store.catalog.series(ticker):
        out.setdefault(s.ticker, {})[s.timeframe] = {"timeframe": s.timeframe, "bars": s.bars,
                                                     "first_t": s.first_t, "last_t": s.last_t}
    for f in freshness_of(await st.store.catalog.ledger(ticker), st.clock.now_ms()):
        tf = str(f.series.timeframe)
        row = out.setdefault(f.series.ticker, {}).setdefault(tf, {"timeframe": tf, "bars": 0,
                                                                  "first_t": None, "last_t": None})
        row["covered_end_ms"], row["fetched_at_ms"] = f.covered_end_ms, f.fetched_at_ms
        row["lag_s"] = f.lag_ms / 1000
        row["stale"] = f.lag_ms / 1000 > st.settings.stale_after_s
    return out


def _start_backfill(st: ServiceState, tk: Ticker, tfs: tuple[str, ...], start: date) -> str | None:
    if st.client is None:
        return None
    spec = BackfillSpec(tickers=(tk,), timeframes=tuple(Timeframe.parse(t) for t in tfs), start=start,
                        end=st.clock.now_ms(), corporate_actions=tk.asset_class is AssetClass.STOCKS)
    return st.runs.start(spec)


@router.get("/v1/symbols", summary="Tracked symbols with their stored series and freshness")
async def list_symbols(request: Request, _: Reader, active_only: bool = False) -> Response:
    st = get_state(request)
    series = await _series_by_ticker(st)
    infos = await st.store.symbols.all(active_only=active_only)
    return _json({"symbols": [symbol_dict(i, series.get(i.ticker)) for i in infos]})


@router.get("/v1/symbols/{ticker}", summary="One tracked symbol")
async def get_symbol(request: Request, ticker: str, _: Reader) -> Response:
    st = get_state(request)
    tk = ticker_param(ticker)
    info = await st.store.symbols.get(tk.symbol)
    if info is None:
        raise ApiError(404, "not_found", f"{tk.symbol} is not tracked")
    return _json(symbol_dict(info, (await _series_by_ticker(st, tk.symbol)).get(tk.symbol)))


@router.post("/v1/symbols", status_code=201, summary="Track a ticker and backfill it (admin)",
             responses=vendor_errors())
async def create_symbol(request: Request, body: SymbolCreate, who: Admin) -> Response:
    st = get_state(request)
    tk = ticker_param(body.ticker)
    tfs = _timeframes(body.timeframes)
    start = _start_day(body.start, st)
    if body.backfill and st.client is None:
        raise ApiError(409, "no_vendor_key", f"cannot backfill {tk.symbol}: the server has no vendor key"
                       " (set POLYGON_API_KEY and restart it); to track it without fetching, send"
                       ' "backfill": false')
    await check_tickers([tk], st.store, st.client)  # a mixed-case typo: 400 with a did-you-mean
    old = await st.store.symbols.get(tk.symbol)
    info = SymbolInfo(tk.symbol, tk.asset_class.value, body.name or (old.name if old else ""), True, tfs,
                      start.isoformat())
    await st.store.symbols.upsert(info)
    run_id = _start_backfill(st, tk, tfs, start) if body.backfill else None
    await st.store.audit.append(who.actor, "symbols.create", {"ticker": tk.symbol, "timeframes": list(tfs),
                                                        "start": start.isoformat(), "run_id": run_id})
    return _json({"symbol": symbol_dict(info), "run_id": run_id}, 201)


@router.patch("/v1/symbols/{ticker}", summary="Change a tracked symbol (admin)")
async def patch_symbol(request: Request, ticker: str, body: SymbolPatch, who: Admin) -> Response:
    st = get_state(request)
    tk = ticker_param(ticker)
    old = await st.store.symbols.get(tk.symbol)
    if old is None:
        raise ApiError(404, "not_found", f"{tk.symbol} is not tracked")
    info = SymbolInfo(
        tk.symbol, old.asset_class, old.name if body.name is None else body.name,
        old.active if body.active is None else body.active,
        old.timeframes if body.timeframes is None else _timeframes(body.timeframes),
        old.start_date if body.start is None else _start_day(body.start, st).isoformat(),
    )
    await st.store.symbols.upsert(info)
    await st.store.audit.append(who.actor, "symbols.update", {"ticker": tk.symbol,
                                                        **body.model_dump(mode="json", exclude_none=True)})
    return _json({"symbol": symbol_dict(info)})


@router.delete("/v1/symbols/{ticker}", summary="Stop tracking; purge=true also deletes its data (admin)")
async def delete_symbol(request: Request, ticker: str, who: Admin, purge: bool = False) -> Response:
    st = get_state(request)
    tk = ticker_param(ticker)
    found = await st.store.symbols.delete(tk.symbol, purge=purge)
    if not found:
        raise ApiError(404, "not_found", f"{tk.symbol} is not tracked")
    await st.store.audit.append(who.actor, "symbols.delete", {"ticker": tk.symbol, "purge": purge})
    return _json({"ticker": tk.symbol, "tracked": False, "purged": purge})


@router.get("/v1/dividends/{ticker}", summary="Stored cash dividends")
async def dividends(request: Request, ticker: str, _: Reader) -> Response:
    st = get_state(request)
    tk = ticker_param(ticker)
    rows = sorted(await st.store.actions.dividends(tk.symbol), key=lambda d: d.ex_dividend_date)
    return _json({"ticker": tk.symbol, "dividends": [
        {"id": d.id, "ex_dividend_date": d.ex_dividend_date.isoformat(), "cash_amount": d.cash_amount,
         "currency": d.currency, "declaration_date": _iso(d.declaration_date),
         "record_date": _iso(d.record_date), "pay_date": _iso(d.pay_date), "frequency": d.frequency,
         "dividend_type": d.dividend_type} for d in rows]})


@router.get("/v1/splits/{ticker}", summary="Stored splits")
async def splits(request: Request, ticker: str, _: Reader) -> Response:
    st = get_state(request)
    tk = ticker_param(ticker)
    rows = sorted(await st.store.actions.splits(tk.symbol), key=lambda s: s.execution_date)
    return _json({"ticker": tk.symbol, "splits": [
        {"id": s.id, "execution_date": s.execution_date.isoformat(), "split_from": s.split_from,
         "split_to": s.split_to, "ratio": s.ratio} for s in rows]})


@router.get(
    "/v1/quarantine", summary="Invalid vendor bars that runs refused to store, newest first",
    description="Bars the vendor kept serving with broken invariants (high below low, open or close "
                "outside the range, negative volume, non-finite prices), or that the store refused. They "
                "are never served as data; each names its reason, the run and the (redacted) request. "
                "Prices and volumes that were not numbers are null.",
)
async def quarantine(
    request: Request, _: Reader,
    ticker: Annotated[str | None, Query(max_length=40, description="only this ticker's bars")] = None,
    limit: Annotated[int, Query(ge=1, le=QUARANTINE_MAX, description="most entries returned")] = 1000,
) -> Response:
    st = get_state(request)
    symbol = ticker_param(ticker).symbol if ticker is not None else None
    rows = await st.store.quarantine.recent(symbol, limit)
    return _json({"ticker": symbol, "count": len(rows), "bars": rows})


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _spec_ms(text: str, asset: AssetClass, *, end: bool) -> int:
    if text.isdigit():
        return int(text)
    day = date.fromisoformat(text)
    rng = day_range_ms(day, day, asset.tz)
    return rng.end_ms if end else rng.start_ms


def failed_ranges(runs: list[RunRecord], ticker: str, timeframe: str, asset: AssetClass) -> RangeSet:
    """Ranges that recent runs wanted for the series and reported failed (or partial) on."""
    label = str(SeriesKey.of(ticker, timeframe))  # reports name their series in this form
    out: list[TimeRange] = []
    for run in runs:
        if label not in {s.series for s in stored_report(run.report).series if s.status != "ok"}:
            continue
        specs = run.params.get("specs")
        for spec in specs if isinstance(specs, list) else []:
            try:
                s = _spec_ms(str(spec["start"]), asset, end=False)
                e = _spec_ms(str(spec["end"]), asset, end=True)
                out.append(TimeRange(s, max(s, e)))
            except (KeyError, TypeError, ValueError, UsageError):
                continue
    return RangeSet.of(out)


@router.get("/v1/coverage/{ticker}", summary="Coverage ledger; with timeframe, a per-session heat map",
            description="The ledger's entries; ``outside_plan`` is the plan's history boundary (``before``,"
            " ``before_ms``, ``source``: configured or learned, ``plan``), or null when none is known. With"
            " ``timeframe``, ``heatmap.sessions`` give each session's state: covered, empty, partial,"
            " missing, failed, or outside_plan (unheld and before the boundary: not sold, not a gap).")
async def coverage(
    request: Request, ticker: str, _: Reader,
    timeframe: Annotated[str | None, Query(max_length=12, description="adds per-session states")] = None,
    start: Annotated[date | None, Query(description="first day of the heat map")] = None,
    end: Annotated[date | None, Query(description="last day of the heat map (inclusive)")] = None,
) -> Response:
    st = get_state(request)
    tk = ticker_param(ticker)
    entries = await st.store.catalog.ledger(tk.symbol)
    body: dict[str, object] = {"ticker": tk.symbol, "asset_class": tk.asset_class.value, "entries": [
        {"dataset": e.dataset.value, "timeframe": e.timeframe, "start_ms": e.start_ms, "end_ms": e.end_ms,
         "fetched_at_ms": e.fetched_at_ms} for e in entries]}
    now = st.clock.now_ms()
    reach = await plan_reach(st.store, st.settings.limits, now)
    plan_from_ms = (day_range_ms(reach.first_day, reach.first_day, tk.asset_class.tz).start_ms
                    if reach.first_day is not None else None)
    body["outside_plan"] = None if reach.first_day is None else {
        "before": reach.first_day.isoformat(), "before_ms": plan_from_ms, "source": reach.source,
        "plan": reach.plan}
    if timeframe is not None:
        tf = timeframe_param(timeframe)
        today = from_ms(now).astimezone(tk.asset_class.tz).date()
        last = min(end or today, today)
        first = start or last - timedelta(days=89)
        if first > last:
            raise ApiError(400, "bad_range", "start is after end")
        first, last = day_span(max(first, date(1970, 1, 2)), last, HEATMAP_MAX_DAYS)
        span = day_range_ms(first, last, tk.asset_class.tz)
        held = await st.store.coverage(tk.symbol, Dataset.BARS, str(tf))
        bars = await st.store.bars(tk.symbol, tf, span.start_ms, span.end_ms)
        failed = failed_ranges(await st.store.runs.recent(50), tk.symbol, str(tf), tk.asset_class)
        cells = session_states(tk.asset_class, tf, first, last, covered=held, bar_times=bars.t,
                               failed=failed, now_ms=now, plan_from_ms=plan_from_ms)
        counts: dict[str, int] = {}
        for c in cells:
            counts[c.state] = counts.get(c.state, 0) + 1
        body["heatmap"] = {"timeframe": str(tf), "start": first.isoformat(), "end": last.isoformat(),
                           "counts": counts, "sessions": [
                               {"day": c.day.isoformat(), "state": c.state, "bars": c.bars,
                                "expected_ms": c.expected_ms, "covered_ms": c.covered_ms} for c in cells]}
    return _json(body)
