"""Operations: liveness, readiness, Prometheus metrics, and the overview the dashboard is built on."""

from __future__ import annotations

import math
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from mdw.backfill.liveness import recent_runs
from mdw.domain import HOUR_MS, MINUTE_MS, SeriesKey
from mdw.errors import MdwError
from mdw.service.auth import Reader
from mdw.service.encode import encode_json
from mdw.service.freshness import freshness_of
from mdw.service.state import ServiceState, get_state

router = APIRouter(tags=["operations"])
_BARS_REFRESH_MS = 60_000


def _json(value: object, status: int = 200) -> Response:
    return Response(encode_json(value), status_code=status, media_type="application/json")


@router.get("/healthz", summary="The process is up (never touches the database)")
async def healthz() -> Response:
    return _json({"status": "ok"})


async def readiness(st: ServiceState) -> tuple[bool, dict[str, object]]:
    """Database reachable and migrated; plus breaker, scheduler leader and the age of the last run."""
    checks: dict[str, object] = {}
    db_ok = migrated = False
    try:
        have, want = await st.store.ping()
        db_ok, migrated = True, have == want
        checks["database"] = {"ok": True}
        checks["migrations"] = {"ok": migrated, "version": have, "expected": want}
    except MdwError as exc:
        checks["database"] = {"ok": False, "error": str(exc)}
    if not db_ok:
        checks["migrations"] = {"ok": False, "error": "database unreachable"}
    state, wait = st.breaker()
    checks["vendor"] = {"configured": st.client is not None, "breaker": state, "probe_in_s": round(wait, 1)}
    sched = st.scheduler
    checks["scheduler"] = {"enabled": sched is not None, "leader": bool(sched and sched.leader),
                           "last_tick_ms": sched.last_tick_ms if sched else None,
                           "last_skip": sched.last_skip if sched else None}
    last: dict[str, object] | None = None
    if db_ok:
        try:
            runs = await recent_runs(st.store, 1)
        except MdwError:
            runs = []
        if runs:
            run = runs[0]
            ref = run.finished_at_ms or run.started_at_ms
            last = {"id": run.id, "kind": run.kind, "status": run.status,
                    "finished_at_ms": run.finished_at_ms, "age_s": round((st.clock.now_ms() - ref) / 1000, 1)}
    checks["last_run"] = last
    # Reported, not gating: the stream reconnects by itself, and REST reads do not need it.
    checks["stream"] = ({"enabled": False} if st.stream is None else
                        {"enabled": True, **st.stream.state.to_dict(time.monotonic())})
    return db_ok and migrated, checks


@router.get("/readyz", summary="Ready to serve: database reachable and migrations current (503 otherwise)")
async def readyz(request: Request) -> Response:
    ready, checks = await readiness(get_state(request))
    return _json({"ready": ready, "checks": checks}, 200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    st = get_state(request)
    now = st.clock.now_ms()
    try:
        st.metrics.set_freshness(freshness_of(await st.store.catalog.ledger(), now))
        if st.bars_counted_ms is None or now - st.bars_counted_ms >= _BARS_REFRESH_MS:
            # Counting rows is the one costly query here; once a minute is plenty.
            counts = {SeriesKey.of(s.ticker, s.timeframe): s.bars for s in await st.store.catalog.series()}
            st.metrics.set_series_bars(counts)
            st.bars_counted_ms = now
    except MdwError:
        pass  # the database being down must not hide the vendor and HTTP metrics
    return Response(st.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


def _budget(st: ServiceState, used_last_min: int) -> dict[str, object]:
    rate = st.settings.rate_limit
    allowed = None if math.isinf(rate.requests) else rate.requests * 60.0 / rate.period
    return {"plan": str(rate), "allowed_per_min": allowed, "used_last_min": used_last_min,
            "share": round(used_last_min / allowed, 4) if allowed else None}


@router.get("/v1/overview", summary="Everything a dashboard's front page shows, in one call")
async def overview(request: Request, _: Reader) -> Response:
    st = get_state(request)
    now = st.clock.now_ms()
    stats = st.stats()
    if stats is not None:
        st.history.record(stats, now)
    entries = await st.store.catalog.ledger()
    fresh = freshness_of(entries, now)
    series_stats = await st.store.catalog.series()
    symbols = await st.store.symbols.all()
    runs = await recent_runs(st.store, 10)
    stale_after = st.settings.stale_after_s
    state, wait = st.breaker()
    hour = st.history.since(now - HOUR_MS, stats) if stats else {}
    minute = st.history.since(now - MINUTE_MS, stats) if stats else {}
    body = {
        "now_ms": now, "started_at_ms": st.started_at_ms,
        "series": {
            "tracked_symbols": sum(1 for s in symbols if s.active), "symbols": len(symbols),
            "series": len(series_stats), "bars": sum(s.bars for s in series_stats),
            "stale": sum(1 for f in fresh if f.lag_ms / 1000 > stale_after), "stale_after_s": stale_after,
            "max_lag_s": max((f.lag_ms / 1000 for f in fresh), default=0.0),
            "last_fetched_ms": max((e.fetched_at_ms for e in entries), default=None),
        },
        "vendor": {
            "configured": st.client is not None, "breaker": state, "probe_in_s": round(wait, 1),
            "totals": {"requests": stats.total_requests, "rate_limited": stats.rate_limited_count,
                       "retries": stats.retries, "bytes": stats.bytes_received} if stats else None,
            "last_hour": hour, "budget": _budget(st, int(minute.get("requests", 0))),
            "limiter_per_s": stats.limiter_per_second if stats else None,
        },
        "scheduler": st.scheduler.status() if st.scheduler else {"enabled": False},
        "runs": {"active": st.runs.active_ids(), "recent": [
            {"id": r.id, "kind": r.kind, "status": r.status, "started_at_ms": r.started_at_ms,
             "finished_at_ms": r.finished_at_ms, "bars_fetched": r.report.get("bars_fetched"),
             "requests": r.report.get("requests")} for r in runs]},
        "alerts": [a.payload() for a in st.alerts.recent[-10:]],
        "stream": ({"enabled": False} if st.stream is None else
                   {"enabled": True, **st.stream.state.to_dict(time.monotonic())}),
    }
    return _json(body)


@router.get("/v1/vendor/history", summary="Vendor requests, 429s, retries and failures per minute")
async def vendor_history(
    request: Request, _: Reader, minutes: Annotated[int, Query(ge=1, le=1440)] = 60,
) -> Response:
    st = get_state(request)
    now = st.clock.now_ms()
    stats = st.stats()
    if stats is not None:
        st.history.record(stats, now)
    rows = st.history.per_minute(now - minutes * MINUTE_MS)
    used = rows[-1]["requests"] if rows else 0
    return _json({"minutes": rows, "budget": _budget(st, used)})


@router.get("/v1/alerts", summary="Recent alerts (also posted to the webhook)")
async def alerts(request: Request, _: Reader) -> Response:
    return _json({"alerts": [a.payload() for a in get_state(request).alerts.recent]})
