"""Named universes over HTTP: define, list, show, remove, backfill; reference refresh; coverage.

The same definitions as ``mdw universe define`` (parsed by :mod:`mdw.backfill.catalog`, so a bad
word is refused with the same message, as a 400). Reads are anonymous like the other reads;
changes and vendor calls take an admin key.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from mdw.backfill import catalog
from mdw.domain import from_ms
from mdw.service.auth import Admin, Reader
from mdw.service.encode import encode_json
from mdw.service.errors import ApiError
from mdw.service.openapi import vendor_errors
from mdw.service.params import timeframe_param
from mdw.service.state import ServiceState, get_state
from mdw.store.base import RunStatus

router = APIRouter(tags=["universes"])
Name = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class UniverseBody(BaseModel):
    """A universe's definition; every empty filter matches everything."""

    market: list[str] = Field(default_factory=lambda: ["stocks"], max_length=4, examples=[["stocks"]])
    types: list[str] = Field(default_factory=list, max_length=50, examples=[["CS", "ETF"]])
    exchanges: list[str] = Field(default_factory=list, max_length=50, examples=[["XNAS"]])
    tickers: list[str] = Field(default_factory=list, max_length=100_000)
    active_on: date | None = None
    include_delisted: bool = Field(default=True,
                                   description="keep the names delisted since, on their listed days")
    underlying: str | None = Field(default=None, max_length=32, description="options: the underlying")
    expiry: str | None = Field(default=None, max_length=10, description="options: YYYY-MM or YYYY-MM-DD")
    strikes: str | None = Field(default=None, max_length=16, description="options: ATM±N")


class UniverseBackfill(BaseModel):
    """The days (inclusive) and timeframes to backfill a universe's members over."""

    timeframes: list[str] = Field(default_factory=lambda: ["1d"], min_length=1, max_length=20)
    start: date
    end: date | None = Field(default=None, description="last day, inclusive (default: today)")
    corporate_actions: bool = False


def _json(value: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(encode_json(value), status_code=status, media_type="application/json", headers=headers)


async def _known(st: ServiceState, name: str) -> None:
    """An unknown universe is a 404 (the message lists some known ones)."""
    from mdw.errors import UsageError

    try:
        await catalog.record(st.store, name)
    except UsageError as exc:
        raise ApiError(404, "not_found", str(exc)) from None


def _today(st: ServiceState) -> date:
    return from_ms(st.clock.now_ms()).date()


def _day(name: str, text: str | None, default: date) -> date:
    if text is None:
        return default
    if not _DAY.fullmatch(text):
        raise ApiError(400, "bad_date", f"{name} must be YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "bad_date", f"{name} {text!r} is no such day") from None


@router.get("/v1/universes", summary="Every defined universe")
async def list_universes(request: Request, _: Reader) -> Response:
    st = get_state(request)
    return _json({"universes": [{"name": r.name, "definition": r.spec, "updated_at_ms": r.updated_at_ms}
                                for r in await st.store.universes.all()]})


@router.get("/v1/universes/coverage", summary="Coverage of every universe, per timeframe")
async def universes_coverage(
    request: Request, _: Reader,
    start: Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD; default: each universe's "
                                                                  "first backfilled day")] = None,
    end: Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD (default today)")] = None,
    timeframes: Annotated[str | None, Query(max_length=100, description="1d,1m ... (default: each "
                                                                       "universe's backfilled ones)")] = None,
) -> Response:
    """Per universe and timeframe: members, complete, partial, missing and the held share of their
    listed days, from reference data and the ledger."""
    st = get_state(request)
    today = _today(st)
    first = _day("start", start, today) if start else None
    last = _day("end", end, today) if end else None
    if first is not None and last is not None and last < first:
        raise ApiError(400, "bad_range", "end is before start")
    tfs = [str(timeframe_param(t.strip())) for t in (timeframes or "").split(",") if t.strip()]
    found = await catalog.coverage(st.store, today, first=first, last=last, timeframes=tfs)
    return _json({"coverage": [c.to_dict() for c in found]})


@router.put("/v1/universes/{name}", summary="Define or redefine a universe (admin)")
async def put_universe(request: Request, name: Name, body: UniverseBody, who: Admin) -> Response:
    st = get_state(request)
    spec = catalog.define_spec(market=body.market, types=body.types, exchanges=body.exchanges,
                               active_on=body.active_on, tickers=body.tickers,
                               include_delisted=body.include_delisted, underlying=body.underlying,
                               expiry=body.expiry, strikes=body.strikes)
    rec = await catalog.define(st.store, name, spec)
    await st.store.audit.append(who.actor, "universes.define", {"name": name})
    return _json({"name": rec.name, "definition": rec.spec})


@router.get("/v1/universes/{name}", summary="A universe's definition and its members on a day")
async def get_universe(
    request: Request, name: Name, _: Reader,
    on: Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD (default today)")] = None,
) -> Response:
    st = get_state(request)
    await _known(st, name)  # an unknown name is a 404 before a bad day is a 400
    view = await catalog.show(st.store, name, _day("on", on, _today(st)), _today(st))
    return _json(view.to_dict())


@router.get("/v1/universes/{name}/sizes", summary="A universe's member count over time")
async def universe_sizes(
    request: Request, name: Name, _: Reader,
    start: Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD (default 5 years ago)")] = None,
    end: Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD (default today)")] = None,
    points: Annotated[int, Query(ge=2, le=500)] = 60,
) -> Response:
    st = get_state(request)
    today = _today(st)
    last = _day("end", end, today)
    first = _day("start", start, last - timedelta(days=5 * 365))
    if last < first:
        raise ApiError(400, "bad_range", "end is before start")
    await _known(st, name)
    sizes = await catalog.size_over_time(st.store, name, first, last, points, today)
    return _json({"name": name, "sizes": [{"date": d.isoformat(), "members": n} for d, n in sizes]})


@router.delete("/v1/universes/{name}", status_code=204, summary="Forget a universe (admin); its bars stay")
async def delete_universe(request: Request, name: Name, who: Admin) -> Response:
    st = get_state(request)
    await _known(st, name)
    await catalog.remove(st.store, name)
    await st.store.audit.append(who.actor, "universes.remove", {"name": name})
    return Response(status_code=204)


@router.post("/v1/universes/{name}/backfill", status_code=202,
             summary="Backfill a universe's members, each on its listed days (admin)",
             responses=vendor_errors())
async def backfill_universe(request: Request, name: Name, body: UniverseBackfill, who: Admin) -> Response:
    from dataclasses import replace

    from mdw.backfill.members import universe_spec

    st = get_state(request)
    await _known(st, name)
    tfs = tuple(dict.fromkeys(timeframe_param(t) for t in body.timeframes))
    today = _today(st)
    end = body.end or today
    if not date(1970, 1, 1) <= body.start <= end <= date(2099, 12, 31):
        raise ApiError(400, "bad_range", "need 1970-01-01 <= start <= end <= 2099-12-31")
    if st.client is None:
        raise ApiError(503, "vendor_unconfigured", "no vendor API key is configured (POLYGON_API_KEY)")
    spec = await universe_spec(st.store, st.client, name, tfs, body.start, end, today=today)
    spec = replace(spec, corporate_actions=body.corporate_actions)
    await catalog.remember_backfill(st.store, name, [str(t) for t in tfs], body.start)
    run_id = st.runs.start(spec)
    await st.store.audit.append(who.actor, "universes.backfill", {"name": name, "run_id": run_id,
                                                                   "tickers": len(spec.tickers)})
    url = f"/v1/backfills/{run_id}"
    return _json({"run_id": run_id, "status": RunStatus.RUNNING, "url": url, "tickers": len(spec.tickers)},
                 202, {"Location": url})


@router.post("/v1/reference/refresh", summary="Refresh the reference data from the vendor (admin)",
             responses=vendor_errors())
async def refresh_reference(request: Request, who: Admin) -> Response:
    st = get_state(request)
    if st.client is None:
        raise ApiError(503, "vendor_unconfigured", "no vendor API key is configured (POLYGON_API_KEY)")
    out = await catalog.refresh_reference(st.store, st.client, _today(st))
    await st.store.audit.append(who.actor, "reference.refresh", {})
    return _json({k: (v if isinstance(v, int) else {"listings": v.listings, "listed_today": v.listed_today,
                                                   "changes": v.changes, "requests": v.requests})
                  for k, v in out.items()})
