"""``POST /v1/backfills`` with ``refetch``, and runs whose process died shown as ``interrupted``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mdw.backfill.liveness import STALE_AFTER_S, now_ms, owner
from mdw.simulator.server import SimServer
from mdw.store import RunRecord, open_store

ServiceFactory = Callable[..., Awaitable[Any]]

DAYS = {"symbols": ["AAPL"], "timeframes": ["1h"], "start": "2024-03-04", "end": "2024-03-08"}


async def test_backfills_refetch_requests_the_held_range_again(
    sim: SimServer, service_factory: ServiceFactory
) -> None:
    """``refetch: true`` makes the planned requests over held data and changes no bar."""
    svc = await service_factory(sim)
    first = await svc.backfill(DAYS)
    assert first["status"] == "ok" and first["report"]["bars_inserted"] > 0
    again = await svc.backfill({**DAYS, "refetch": True})
    report = again["report"]
    assert again["status"] == "ok" and report["requests"] == first["report"]["requests"] > 0
    assert (report["bars_inserted"], report["bars_updated"]) == (0, 0)
    assert report["bars_unchanged"] == first["report"]["bars_inserted"]
    both = {**DAYS, "refetch": True, "distributed": True}
    status, body = await svc.send("POST", "/v1/backfills", json=both, headers=svc.admin)
    assert status == 400 and "refetch" in body["error"]["message"]
    status, spec, _ = await svc.get("/openapi.json")
    assert status == 200 and "refetch" in spec["components"]["schemas"]["BackfillRequest"]["properties"]


async def test_backfills_show_interrupted_when_the_runs_process_is_gone(
    store_url: str, service_factory: ServiceFactory
) -> None:
    """Startup records a dead run as interrupted; a listing shows another one so; a live run stays."""
    stale = now_ms() - int(STALE_AFTER_S * 1000) - 1_000
    async with await open_store(store_url) as store:
        dead = RunRecord("before", "backfill", "running", stale, params={"heartbeat_ms": stale})
        await store.runs.save(dead)
    svc = await service_factory(None)
    saved = await svc.state.store.runs.get("before")
    assert saved is not None and saved.status == "interrupted"
    await svc.state.store.runs.save(RunRecord("after", "scheduled", "running", stale,
                                             params={"heartbeat_ms": stale}))
    await svc.state.store.runs.save(RunRecord("alive", "backfill", "running", now_ms(),
                                             params={"heartbeat_ms": now_ms(), **owner()}))
    status, body, _ = await svc.get("/v1/backfills")
    assert status == 200
    assert {r["id"]: r["status"] for r in body["runs"]} == {
        "before": "interrupted", "after": "interrupted", "alive": "running"}
    status, one, _ = await svc.get("/v1/backfills/alive")
    assert status == 200 and one["status"] == "running"
