"""The simulator's WebSocket stream: the vendor's conversation, events that match REST, and faults.

The clock is frozen in these tests and moved by hand, so each minute's events go out exactly when
the test advances past the minute's end; the receive timeouts only bound a broken test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from mdw.domain import MINUTE_MS, AssetClass, to_ms
from mdw.simulator import SimServer
from mdw.simulator.config import StreamConfig
from mdw.simulator.testing import SimFactory

OPEN = to_ms("2024-03-05T14:31:00Z")  # 09:31 ET on a Tuesday: every big name trades each minute
WAIT_S = 10.0


def _status(status: str, message: str) -> dict[str, str]:
    return {"ev": "status", "status": status, "message": message}


async def _recv(ws: ClientConnection) -> list[dict[str, Any]]:
    frame = await asyncio.wait_for(ws.recv(), WAIT_S)
    events = json.loads(frame)
    assert isinstance(events, list)
    return events


@asynccontextmanager
async def _session(sim: SimServer, subs: str, path: str = "/stocks") -> AsyncIterator[ClientConnection]:
    async with connect(sim.ws_url + path) as ws:
        assert (await _recv(ws))[0]["status"] == "connected"
        await ws.send(json.dumps({"action": "auth", "params": sim.key}))
        assert (await _recv(ws))[0]["status"] == "auth_success"
        await ws.send(json.dumps({"action": "subscribe", "params": subs}))
        for _ in subs.split(","):
            assert (await _recv(ws))[0]["status"] == "success"
        yield ws


async def _events(ws: ClientConnection, count: int, ev: str = "AM") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while len(out) < count:
        out.extend(e for e in await _recv(ws) if e["ev"] == ev)
    return out


async def _frozen(sim_factory: SimFactory, **stream: Any) -> SimServer:
    return await sim_factory(now_ms=OPEN, speed=0, stream=StreamConfig(**stream))


async def test_stream_handshake_follows_the_vendor_conversation(sim_factory: SimFactory) -> None:
    """connected, then auth_success, then one success status per subscribed param, in order."""
    sim = await _frozen(sim_factory)
    async with connect(sim.ws_url + "/stocks") as ws:
        assert await _recv(ws) == [_status("connected", "Connected Successfully")]
        await ws.send(json.dumps({"action": "auth", "params": sim.key}))
        assert await _recv(ws) == [_status("auth_success", "authenticated")]
        await ws.send(json.dumps({"action": "subscribe", "params": "AM.AAPL,AM.MSFT"}))
        acks = [(await _recv(ws))[0]["message"] for _ in range(2)]
        assert acks == ["subscribed to: AM.AAPL", "subscribed to: AM.MSFT"]
        await ws.send(json.dumps({"action": "unsubscribe", "params": "AM.MSFT"}))
        assert await _recv(ws) == [_status("success", "unsubscribed to: AM.MSFT")]


async def test_stream_auth_failed_is_sent_then_the_connection_closes(sim_factory: SimFactory) -> None:
    """An unknown key gets auth_failed ("authentication failed") and the server closes."""
    sim = await _frozen(sim_factory)
    async with connect(sim.ws_url + "/stocks") as ws:
        await _recv(ws)
        await ws.send(json.dumps({"action": "auth", "params": "not-a-key"}))
        assert await _recv(ws) == [_status("auth_failed", "authentication failed")]
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), WAIT_S)
    assert sim.stats()["stream"]["auth_failed"] == 1


async def test_stream_auth_fail_switch_refuses_a_valid_key(sim_factory: SimFactory) -> None:
    """With auth_fail on, even the configured key is refused (the vendor's auth outage)."""
    sim = await _frozen(sim_factory, auth_fail=True)
    async with connect(sim.ws_url + "/stocks") as ws:
        await _recv(ws)
        await ws.send(json.dumps({"action": "auth", "params": sim.key}))
        assert (await _recv(ws))[0]["status"] == "auth_failed"


async def test_stream_auth_timeout_closes_a_silent_connection(sim_factory: SimFactory) -> None:
    """A connection that never authenticates gets auth_timeout and is closed."""
    sim = await _frozen(sim_factory, auth_timeout_s=0.05)
    async with connect(sim.ws_url + "/stocks") as ws:
        await _recv(ws)
        assert await _recv(ws) == [_status("auth_timeout", "No authentication request received.")]
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), WAIT_S)


async def test_stream_subscribe_before_auth_is_refused_with_an_error_status(sim_factory: SimFactory) -> None:
    """Subscribing before auth changes nothing and says why (the vendor's answer is not established)."""
    sim = await _frozen(sim_factory)
    async with connect(sim.ws_url + "/stocks") as ws:
        await _recv(ws)
        await ws.send(json.dumps({"action": "subscribe", "params": "AM.AAPL"}))
        assert (await _recv(ws))[0]["status"] == "error"


async def test_stream_minute_bars_equal_the_rest_bars(sim_factory: SimFactory) -> None:
    """Each AM event goes out when the clock passes its minute's end, with REST's exact values."""
    sim = await _frozen(sim_factory)
    async with _session(sim, "AM.AAPL,AM.MSFT") as ws:
        sim.clock.advance(5 * MINUTE_MS)
        got = await _events(ws, 10)
    assert {e["s"] for e in got} == {OPEN + k * MINUTE_MS for k in range(5)}
    for sym in ("AAPL", "MSFT"):
        mine = sorted((e for e in got if e["sym"] == sym), key=lambda e: e["s"])
        rest = sim.market.minute_bars(sym, OPEN, OPEN + 5 * MINUTE_MS)
        assert [(e["s"], e["o"], e["h"], e["l"], e["c"], float(e["v"]), e["vw"]) for e in mine] == [
            row[:7] for row in rest.rows()]
        assert all(e["e"] == e["s"] + MINUTE_MS and isinstance(e["v"], int) for e in mine)
        assert set(mine[0]) == {"ev", "sym", "v", "av", "op", "vw", "o", "c", "h", "l", "a", "z", "s", "e"}


async def test_stream_star_subscription_sends_every_listed_ticker(sim_factory: SimFactory) -> None:
    """AM.* delivers a bar for every listed stock that traded in the minute, and nothing else."""
    sim = await _frozen(sim_factory, frame_events=50)
    async with _session(sim, "AM.*") as ws:
        sim.clock.advance(MINUTE_MS)
        expected = {t for t in sim.market.universe(AssetClass.STOCKS)
                    if len(sim.market.minute_bars(t, OPEN, OPEN + MINUTE_MS))}
        got = await _events(ws, len(expected))
    assert {e["sym"] for e in got} == expected


async def test_stream_crypto_uses_xa_and_the_pair_spelling(sim_factory: SimFactory) -> None:
    """/crypto sends XA events keyed by pair (BTC-USD) with ev, pair, v, vw, z, o, c, h, l, s, e."""
    sim = await _frozen(sim_factory)
    async with _session(sim, "XA.BTC-USD", path="/crypto") as ws:
        sim.clock.advance(2 * MINUTE_MS)
        got = await _events(ws, 2, ev="XA")
    assert [e["pair"] for e in got] == ["BTC-USD", "BTC-USD"]
    rest = sim.market.minute_bars("X:BTCUSD", OPEN, OPEN + 2 * MINUTE_MS)
    assert [(e["s"], e["o"], e["h"], e["l"], e["c"], e["v"], e["vw"]) for e in got] == [
        row[:7] for row in rest.rows()]
    assert list(got[0]) == ["ev", "pair", "v", "vw", "z", "o", "c", "h", "l", "s", "e"]


async def test_stream_delayed_feed_sends_each_minute_after_the_delay(sim_factory: SimFactory) -> None:
    """/delayed/stocks sends a minute's bar only once the clock is delay_ms past the minute's end."""
    sim = await _frozen(sim_factory, delay_ms=3 * MINUTE_MS)
    async with _session(sim, "AM.AAPL", path="/delayed/stocks") as ws:
        sim.clock.advance(3 * MINUTE_MS)
        got = await _events(ws, 3)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
    now = sim.clock.now_ms()
    assert [e["e"] for e in got] == [OPEN - 2 * MINUTE_MS, OPEN - MINUTE_MS, OPEN]
    assert now - got[-1]["e"] == 3 * MINUTE_MS


async def test_stream_second_bars_add_up_to_their_minute(sim_factory: SimFactory) -> None:
    """A events of a minute open at its open, close at its close, span its range and sum its volume."""
    sim = await _frozen(sim_factory)
    async with _session(sim, "A.AAPL,AM.AAPL") as ws:
        sim.clock.advance(MINUTE_MS)  # schedules the seconds of the minute now starting
        sim.clock.advance(MINUTE_MS)
        seconds: list[dict[str, Any]] = []
        minute: dict[str, Any] | None = None
        while minute is None or minute["s"] != OPEN + MINUTE_MS:
            for e in await _recv(ws):
                if e["ev"] == "A":
                    seconds.append(e)
                elif e["ev"] == "AM":
                    minute = e
    mine = [s for s in seconds if minute["s"] <= s["s"] < minute["e"]]
    assert mine and all(s["e"] - s["s"] == 1000 for s in mine)
    assert mine[0]["o"] == minute["o"] and mine[-1]["c"] == minute["c"]
    assert max(s["h"] for s in mine) == minute["h"] and min(s["l"] for s in mine) == minute["l"]
    assert sum(s["v"] for s in mine) == minute["v"]


async def test_stream_late_bars_arrive_late_ms_after_their_minute(sim_factory: SimFactory) -> None:
    """With late_rate 1 no bar goes out at its minute's end; each arrives late_ms later, unchanged."""
    sim = await _frozen(sim_factory, late_rate=1.0, late_ms=2 * MINUTE_MS)
    async with _session(sim, "AM.AAPL") as ws:
        sim.clock.advance(MINUTE_MS)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        sim.clock.advance(2 * MINUTE_MS)
        got = (await _events(ws, 1))[0]
    assert got["s"] == OPEN
    rest = sim.market.minute_bars("AAPL", OPEN, OPEN + MINUTE_MS)
    assert (got["o"], got["c"], float(got["v"])) == (rest.o[0], rest.c[0], rest.v[0])


async def test_stream_resent_bars_are_first_provisional_then_correct(sim_factory: SimFactory) -> None:
    """With resend_rate 1 each bar goes out with other values, then again with REST's values."""
    sim = await _frozen(sim_factory, resend_rate=1.0, resend_ms=MINUTE_MS)
    async with _session(sim, "AM.AAPL") as ws:
        sim.clock.advance(MINUTE_MS)
        first = (await _events(ws, 1))[0]
        sim.clock.advance(MINUTE_MS)
        again = [e for e in await _events(ws, 2) if e["s"] == OPEN]
    rest = sim.market.minute_bars("AAPL", OPEN, OPEN + MINUTE_MS)
    assert first["s"] == OPEN and (first["c"], float(first["v"])) != (rest.c[0], rest.v[0])
    assert first["h"] >= max(first["o"], first["c"]) and first["l"] <= min(first["o"], first["c"])
    assert len(again) == 1 and (again[0]["c"], float(again[0]["v"])) == (rest.c[0], rest.v[0])


async def test_stream_drop_cuts_connections_without_a_close_frame(sim_factory: SimFactory) -> None:
    """POST /_sim/stream/drop aborts every connection: the client sees an abnormal closure (1006)."""
    sim = await _frozen(sim_factory)
    async with _session(sim, "AM.AAPL") as ws:
        async with aiohttp.ClientSession() as http, http.post(sim.base_url + "/_sim/stream/drop") as r:
            assert (await r.json())["dropped"] == 1
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(ws.recv(), WAIT_S)
    assert info.value.rcvd is None


async def test_stream_drop_rate_one_cuts_the_connection_after_a_minute(sim_factory: SimFactory) -> None:
    """With drop_rate 1 a connection gets one minute's events and is then cut."""
    sim = await _frozen(sim_factory, drop_rate=1.0)
    async with _session(sim, "AM.AAPL") as ws:
        sim.clock.advance(MINUTE_MS)
        assert len(await _events(ws, 1)) == 1
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(ws.recv(), WAIT_S)
    assert sim.stats()["stream"]["dropped"] == 1


async def test_sim_clock_endpoint_sets_and_reports_the_clock(sim_factory: SimFactory) -> None:
    """POST /_sim/clock moves the clock REST and the stream share; bad fields are a 400."""
    sim = await _frozen(sim_factory)
    async with aiohttp.ClientSession() as http:
        async with http.post(sim.base_url + "/_sim/clock", json={"advance_ms": MINUTE_MS}) as r:
            assert r.status == 200 and (await r.json()) == {"now_ms": OPEN + MINUTE_MS, "speed": 0.0}
        async with http.post(sim.base_url + "/_sim/clock", json={"speed": -1}) as r:
            assert r.status == 400
        async with http.post(sim.base_url + "/_sim/clock", json={"when": 1}) as r:
            assert r.status == 400
    assert sim.market.now_ms == OPEN + MINUTE_MS


async def test_sim_clock_at_speed_runs_faster_than_real_time(sim_factory: SimFactory) -> None:
    """At speed 600 the data clock moves 600 times as far as the wall clock between two readings."""
    sim = await sim_factory(now_ms=OPEN, speed=600)
    first = sim.clock.now_ms()
    await asyncio.sleep(0.05)
    assert sim.clock.now_ms() - first >= 600 * 50 - 600  # at least the 50 ms slept, scaled


async def test_sim_stream_config_endpoint_refuses_unknown_fields(sim_factory: SimFactory) -> None:
    """POST /_sim/stream changes the stream's switches; an unknown switch is a 400."""
    sim = await _frozen(sim_factory)
    async with aiohttp.ClientSession() as http:
        async with http.post(sim.base_url + "/_sim/stream", json={"late_rate": 0.5}) as r:
            assert r.status == 200 and (await r.json())["late_rate"] == 0.5
        async with http.post(sim.base_url + "/_sim/stream", json={"lateness": 1}) as r:
            assert r.status == 400
    assert sim.hub.config.late_rate == 0.5
