"""The stream inside ``mdw serve``: ``/v1/stream/bars`` pushes each bar as it is stored, and the
stream's state shows in ``/readyz`` and ``/metrics`` (a forced disconnect included).

Storage and receipt are stamped on the same clock seam (the service's clock, read in this
process); the simulator's data clock is frozen and moved by hand.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from tests.service.conftest import serve
from tests.stream.conftest import WAIT_S, until
from tests.stream.test_stream_store import OPEN

from mdw.clock import SYSTEM_CLOCK
from mdw.config import Settings
from mdw.domain import MINUTE_MS
from mdw.service.app import create_app
from mdw.simulator.testing import SimFactory

TICKERS = ["AAPL", "MSFT"]


async def _sse(resp: aiohttp.ClientResponse) -> tuple[str, dict[str, Any]]:
    """The next event (name, data) of an SSE response; comments are skipped."""
    name, data = "message", ""
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), WAIT_S)).decode().rstrip("\n")
        if not line:
            if data:
                return name, json.loads(data)
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(": ")
        if field == "event":
            name = value
        elif field == "data":
            data += value


async def test_serve_pushes_each_stored_bar_within_a_second_and_reports_the_stream(
        sim_factory: SimFactory, store_url: str) -> None:
    """Every bar of three minutes reaches an SSE client in storage order, each within a second of
    its storage; /readyz and /metrics show the stream, and a forced disconnect is counted."""
    sim = await sim_factory(now_ms=OPEN, speed=0)
    settings = Settings(POLYGON_API_KEY=sim.key, POLYGON_BASE_URL=sim.base_url, database_url=store_url,
                        rate_limit="unlimited", scheduler=False, stream=True, stream_url=sim.ws_url,
                        stream_symbols=",".join(TICKERS), stream_batch_ms=20, stream_reconcile_s=3600)
    app = create_app(settings)
    async with serve(app) as base, aiohttp.ClientSession() as http:
        st = app.state.mdw
        assert st.stream is not None
        await until(lambda: st.stream.state.connected, "subscribed")
        async with http.get(base + "/v1/stream/bars", params={"tickers": ",".join(TICKERS)}) as resp:
            assert resp.status == 200 and resp.content_type == "text/event-stream"
            assert (await _sse(resp))[0] == "ready"
            await asyncio.sleep(0.1)  # the subscribe acks reach the simulator before the clock moves
            sim.clock.advance(3 * MINUTE_MS)
            got: list[tuple[dict[str, Any], int]] = []
            while len(got) < 6:
                name, bar = await _sse(resp)
                got.append((bar, SYSTEM_CLOCK.now_ms()))
                assert name == "bar"
        stamps = [bar["stored_at_ms"] for bar, _ in got]
        assert stamps == sorted(stamps)
        assert all(received - bar["stored_at_ms"] <= 1000 for bar, received in got)
        for ticker in TICKERS:
            truth = sim.market.minute_bars(ticker, OPEN, OPEN + 3 * MINUTE_MS)
            mine = sorted((b for b, _ in got if b["ticker"] == ticker), key=lambda b: b["t"])
            assert [b["t"] for b in mine] == truth.t.tolist()
            assert [b["c"] for b in mine] == truth.c.tolist()
            assert all(b["source"] == "stream" for b in mine)

        async with http.get(base + "/readyz") as resp:
            checks = (await resp.json())["checks"]
        assert checks["stream"]["enabled"] and checks["stream"]["connected"]
        assert checks["stream"]["bars_stored"] == 6
        async with http.get(base + "/v1/overview") as resp:
            assert (await resp.json())["stream"]["bars_stored"] == 6
        async with http.get(base + "/") as resp:  # the dashboard's overview, rendered from /v1/overview
            page = await resp.text()
        assert 'data-field="stream_connected" data-value="True"' in page
        assert 'data-field="bars_stored" data-value="6"' in page

        sim.hub.drop_all()
        feed = st.stream.state.feeds["stocks"]
        await until(lambda: feed.connects == 2, "the reconnect")
        async with http.get(base + "/metrics") as resp:
            text = await resp.text()
        assert 'mdw_stream_disconnects_total{feed="stocks"} 1.0' in text
        assert 'mdw_stream_connected{feed="stocks"} 1.0' in text
        assert 'mdw_stream_bars_total{outcome="stored"} 6.0' in text


async def test_serve_stream_route_without_the_stream_is_409(sim_factory: SimFactory, store_url: str) -> None:
    """Asking for live bars from a service that does not stream is a JSON 409, not a silent hang."""
    settings = Settings(database_url=store_url, scheduler=False)
    app = create_app(settings)
    async with serve(app) as base, aiohttp.ClientSession() as http, \
            http.get(base + "/v1/stream/bars") as resp:
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "stream_off"


async def test_serve_stream_refused_key_stops_the_stream_with_an_alert(
        sim_factory: SimFactory, store_url: str) -> None:
    """auth_failed on the stream: one attempt, a critical alert, /readyz says so; the API stays up."""
    from mdw.simulator.config import StreamConfig

    sim = await sim_factory(now_ms=OPEN, speed=0, stream=StreamConfig(auth_fail=True))
    settings = Settings(POLYGON_API_KEY=sim.key, POLYGON_BASE_URL=sim.base_url, database_url=store_url,
                        rate_limit="unlimited", scheduler=False, stream=True, stream_url=sim.ws_url,
                        stream_symbols="AAPL", stream_reconcile_s=3600)
    app = create_app(settings)
    async with serve(app) as base, aiohttp.ClientSession() as http:
        feed = app.state.mdw.stream.state.feeds["stocks"]
        alerts = app.state.mdw.alerts
        await until(lambda: feed.auth_failures == 1
                    and any(a.kind == "stream_auth_failed" for a in alerts.recent),
                    "the refusal and its alert")
        async with http.get(base + "/v1/alerts") as resp:
            body = await resp.json()
        kinds = [a["kind"] for a in body["alerts"]]
        assert "stream_auth_failed" in kinds
        async with http.get(base + "/readyz") as resp:
            assert resp.status == 200
            stream = (await resp.json())["checks"]["stream"]
        assert not stream["connected"] and stream["feeds"]["stocks"]["last_error"] == "auth_failed"
        await asyncio.sleep(0.5)
        assert sim.hub.stats.counts["auth_failed"] == 1  # not retried


async def test_serve_live_stop_ends_open_event_streams(sim_factory: SimFactory, store_url: str) -> None:
    """LiveBars.stop (what `mdw serve` calls on SIGTERM) ends every open /v1/stream/bars response."""
    sim = await sim_factory(now_ms=OPEN, speed=0)
    settings = Settings(POLYGON_API_KEY=sim.key, POLYGON_BASE_URL=sim.base_url, database_url=store_url,
                        rate_limit="unlimited", scheduler=False, stream=True, stream_url=sim.ws_url,
                        stream_symbols="AAPL", stream_reconcile_s=3600)
    app = create_app(settings)
    async with serve(app) as base, aiohttp.ClientSession() as http, \
            http.get(base + "/v1/stream/bars") as resp:
        assert (await _sse(resp))[0] == "ready"
        app.state.mdw.live.stop_threadsafe()
        assert await asyncio.wait_for(resp.content.read(), WAIT_S) == b""  # the response ended
