"""Backfill runs: start one (admin), follow its live progress, list the recent ones."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from mdw.backfill.liveness import current_run, recent_runs
from mdw.backfill.plan import BackfillSpec
from mdw.backfill.report import stored_report
from mdw.backfill.tickers import check_tickers
from mdw.domain import from_ms
from mdw.service.auth import Admin, Reader
from mdw.service.encode import encode_json
from mdw.service.errors import ApiError
from mdw.service.openapi import vendor_errors
from mdw.service.params import ticker_param, timeframe_param
from mdw.service.state import ServiceState, get_state
from mdw.store.base import RunRecord, RunStatus

router = APIRouter(tags=["backfills"])


class BackfillRequest(BaseModel):
    """Symbols x timeframes x days; every gap in the range is filled (with ``refetch``, all of it)."""

    symbols: list[str] = Field(min_length=1, max_length=500, examples=[["AAPL", "X:BTCUSD"]])
    timeframes: list[str] = Field(default_factory=lambda: ["1d"], min_length=1, max_length=20)
    start: date
    end: date | None = Field(default=None, description="last day, inclusive (default: today)")
    corporate_actions: bool = False
    derive: bool = Field(default=False, description="build coarser intraday bars from the finest one")
    distributed: bool = Field(default=False, description="hand the requests to `mdw worker` processes")
    source: Literal["rest", "flatfiles", "auto"] = Field(default="auto", description=(
        "where bars come from: rest, flatfiles (the vendor's whole-market daily files; needs the "
        "flat-file key pair) or auto (per dataset and day, whichever is cheaper)"))
    refetch: bool = Field(default=False, description=(
        "fetch the whole range again even where the ledger holds it (bars the vendor corrected are "
        "updated, the rest count as unchanged); local runs only, not with `distributed`"))


def _json(value: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(encode_json(value), status_code=status, media_type="application/json", headers=headers)


def run_dict(st: ServiceState, run: RunRecord | None, run_id: str) -> dict[str, object]:
    """A run as the API shows it: its record, plus live progress while it runs."""
    live = st.runs.live.get(run_id)
    out: dict[str, object] = {"id": run_id, "kind": live.kind if live else "", "status": RunStatus.RUNNING,
                           "started_at_ms": live.started_at_ms if live else None, "finished_at_ms": None,
                           "params": {}, "report": {}}
    if run is not None:
        out.update(kind=run.kind, status=run.status, started_at_ms=run.started_at_ms,
                   finished_at_ms=run.finished_at_ms, params=run.params, report=run.report)
    if live is not None:
        out["progress"] = live.to_dict()
    elif run is not None and run.report:
        r = stored_report(run.report)
        out["progress"] = {
            "series_done": len(r.series), "series_total": len(r.series),
            "requests_done": r.requests, "requests_total": r.planned_requests,
            "requests_failed": sum(s.requests_failed for s in r.series),
            "bars": r.bars_fetched, "bars_per_s": r.bars_per_s, "elapsed_s": r.wall_s, "eta_s": 0.0,
        }
    return out


@router.post("/v1/backfills", status_code=202, summary="Start a backfill (admin); returns its run id",
             responses=vendor_errors())
async def start_backfill(request: Request, body: BackfillRequest, who: Admin) -> Response:
    st = get_state(request)
    tickers = tuple(dict.fromkeys(ticker_param(s) for s in body.symbols))
    tfs = tuple(dict.fromkeys(timeframe_param(t) for t in body.timeframes))
    today = from_ms(st.clock.now_ms()).date()
    end = body.end or today
    if not date(1970, 1, 1) <= body.start <= end <= date(2099, 12, 31):
        raise ApiError(400, "bad_range", "need 1970-01-01 <= start <= end <= 2099-12-31")
    spec = BackfillSpec(tickers=tickers, timeframes=tfs, start=body.start, end=end, derive=body.derive,
                        corporate_actions=body.corporate_actions, refetch=body.refetch, source=body.source)
    await check_tickers(tickers, st.store, st.client)  # a mixed-case typo: 400 with a did-you-mean
    if body.source == "flatfiles" and st.settings.flatfiles_credentials is None:
        raise ApiError(400, "flatfiles_unconfigured", "source flatfiles needs the flat-file key pair "
                       "(MDW_FLATFILES_KEY_ID and MDW_FLATFILES_SECRET) on the server")
    if body.distributed and body.refetch:
        raise ApiError(400, "bad_request", "refetch runs locally only; send it without distributed")
    if body.distributed:
        if st.distributed is None:
            raise ApiError(501, "distributed_unavailable",
                           "distributed backfills need a job queue and `mdw worker` processes; this server "
                           "has none configured, so run it without distributed")
        run_id = await st.distributed.submit(spec, actor=who.actor)
    else:
        if st.client is None:
            raise ApiError(503, "vendor_unconfigured", "no vendor API key is configured (POLYGON_API_KEY)")
        run_id = st.runs.start(spec)
    detail = {"run_id": run_id, **body.model_dump(mode="json")}
    await st.store.audit.append(who.actor, "backfills.start", detail)
    url = f"/v1/backfills/{run_id}"
    return _json({"run_id": run_id, "status": RunStatus.RUNNING, "url": url}, 202, {"Location": url})


@router.get("/v1/backfills/{run_id}", summary="One run with its live progress")
async def get_backfill(
    request: Request, run_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")], _: Reader,
) -> Response:
    st = get_state(request)
    run = await current_run(st.store, run_id)
    if run is None and run_id not in st.runs.live:
        raise ApiError(404, "not_found", f"no run {run_id}")
    return _json(run_dict(st, run, run_id))


@router.get("/v1/backfills", summary="Recent runs, newest first")
async def list_backfills(
    request: Request, _: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    st = get_state(request)
    runs = await recent_runs(st.store, limit)
    out = []
    for run in runs:
        item = run_dict(st, run, run.id)
        item.pop("report", None)
        item["summary"] = {k: run.report.get(k) for k in ("requests", "bars_fetched", "bars_written",
                                                          "wall_s", "rate_limited", "retries")}
        item["failed_series"] = [s.series for s in stored_report(run.report).series if s.status != "ok"]
        out.append(item)
    return _json({"runs": out, "active": st.runs.active_ids()})
