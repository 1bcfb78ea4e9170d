"""A vendor outage: reads stay served but marked stale, runs skip, alerts go out, and recovery follows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio
from aiohttp import web

from mdw.clock import ManualClock
from mdw.domain import to_ms
from mdw.polygon import BreakerState
from mdw.service.leader import LocalLock
from mdw.simulator.config import FaultConfig
from mdw.simulator.server import SimServer
from mdw.store.base import SymbolInfo

ServiceFactory = Callable[..., Awaitable[Any]]


class Receiver:
    """A webhook receiver on loopback that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.alerts.append(await request.json())
        self.arrived.set()
        return web.json_response({"ok": True})

    async def wait_for(self, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(20):
            while True:
                found = [a for a in self.alerts if a["kind"] == kind]
                if found:
                    return found[-1]
                self.arrived.clear()
                await self.arrived.wait()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A local aiohttp server that collects webhook posts."""
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rec.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield rec
    finally:
        await runner.cleanup()


async def test_outage_serves_stale_reads_skips_runs_alerts_and_recovers(
    sim: SimServer, service_factory: ServiceFactory, receiver: Receiver
) -> None:
    """While the breaker is open reads are 200 + stale + Warning, scheduled jobs skip; then all recovers."""
    clock = ManualClock(to_ms("2024-07-03T13:00:00Z"))
    svc = await service_factory(sim, clock=clock, scheduler=True, lock=LocalLock(), webhook_url=receiver.url,
                                breaker_threshold=2, breaker_cooldown_s=0.5, breaker_cooldown_cap_s=0.5,
                                stale_after_s=3600)
    sched = svc.state.scheduler
    await sched.wait_for_tick(clock.now_ms())
    first = await svc.backfill({"symbols": ["AAPL"], "timeframes": ["1d"], "start": "2024-01-02",
                                "end": "2024-01-05"})
    assert first["status"] == "ok"
    await svc.state.store.symbols.upsert(SymbolInfo("AAPL", "stocks", "", True, ("1d",), "2024-07-01"))

    sim.set_faults(FaultConfig(outage=True))
    status, started = await svc.send("POST", "/v1/backfills", headers=svc.admin, json={
        "symbols": ["AAPL"], "timeframes": ["1m"], "start": "2024-02-05", "end": "2024-02-06"})
    assert status == 202
    async with asyncio.timeout(20):
        while svc.state.breaker()[0] is BreakerState.CLOSED:
            await asyncio.sleep(0.02)
    status, page, headers = await svc.get("/v1/bars/AAPL?timeframe=1d&start=2024-01-02&end=2024-01-05")
    assert status == 200 and page["count"] == 4 and page["stale"] is True
    assert headers["X-Stale"] == "true" and headers["Warning"].startswith("110 mdw")
    assert (await svc.get("/readyz"))[1]["checks"]["vendor"]["breaker"] == "open"

    clock.set(to_ms("2024-07-03T13:01:00Z"))
    await sched.wait_for_tick(clock.now_ms())
    skipped = {f.job: f for f in sched.history if f.at_ms == clock.now_ms()}
    assert "daily:AAPL:1d" in skipped
    assert all(f.run_id is None and "breaker" in str(f.skipped) for f in skipped.values())
    assert (await receiver.wait_for("breaker_open"))["severity"] == "critical"
    assert (await receiver.wait_for("stale_data"))["detail"]["ticker"] == "AAPL"

    # The vendor comes back: the run in flight rides out the outage, its probe closes the breaker.
    sim.set_faults(FaultConfig())
    async with asyncio.timeout(30):
        await svc.state.runs.wait_idle()
    status, run, _ = await svc.get(f"/v1/backfills/{started['run_id']}")
    assert run["status"] == "ok" and run["report"]["bars_fetched"] > 0
    assert svc.state.breaker()[0] is BreakerState.CLOSED
    assert (await receiver.wait_for("breaker_closed"))["kind"] == "breaker_closed"
    clock.set(to_ms("2024-07-03T13:02:00Z"))
    await sched.wait_for_tick(clock.now_ms())
    fired = {f.job: f for f in sched.history if f.at_ms == clock.now_ms()}
    assert "daily:AAPL:1d" in fired
    assert all(f.run_id is not None and f.skipped is None for f in fired.values())
    await svc.state.runs.wait_idle()
    status, page, headers = await svc.get("/v1/bars/AAPL?timeframe=1d&start=2024-07-01&end=2024-07-02")
    assert status == 200 and page["count"] == 2 and page["stale"] is False and "Warning" not in headers


async def test_failed_run_posts_a_run_failed_alert(sim: SimServer, service_factory: ServiceFactory,
                                                  receiver: Receiver) -> None:
    """A run the vendor refuses (a key it does not know) ends failed and the webhook hears of it."""
    svc = await service_factory(sim, webhook_url=receiver.url, polygon_api_key="not-a-known-key")
    run = await svc.backfill({"symbols": ["AAPL"], "timeframes": ["1d"], "start": "2024-01-02",
                              "end": "2024-01-05"})
    assert run["status"] == "failed"
    alert = await receiver.wait_for("run_failed")
    assert alert["detail"]["run_id"] == run["id"] and alert["detail"]["failed_series"] == ["AAPL 1d"]
    assert "not-a-known-key" not in str(receiver.alerts)
