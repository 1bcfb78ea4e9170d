"""``mdw stream``'s core against the simulator's WebSocket: bars stored as sent, provisional, replaced.

The simulator's clock is frozen and moved by hand, so each minute goes out exactly when the test
moves past it; waits only bound a broken test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import pytest
from tests.stream.conftest import until

from mdw.domain import MINUTE_MS, Timeframe, to_ms
from mdw.errors import UsageError, VendorAuthError
from mdw.simulator import SimServer
from mdw.simulator.config import StreamConfig
from mdw.simulator.testing import SimFactory
from mdw.store import Dataset, Store
from mdw.stream.runner import LiveStream, subscriptions

OPEN = to_ms("2024-03-05T14:31:00Z")  # 09:31 ET on a Tuesday: the big names trade every minute
M1 = Timeframe.parse("1m")
TICKERS = ["AAPL", "MSFT", "SPY"]


@asynccontextmanager
async def running(stream: LiveStream) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop), name="test-stream")
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _stream(sim: SimServer, store: Store, symbols: list[str]) -> LiveStream:
    return LiveStream(store, sim.ws_url, sim.key, symbols, sim.clock.now_ms, batch_ms=20)


async def test_stream_stores_each_minute_as_sent_provisional_and_uncovered(
        sim_factory: SimFactory, store: Store) -> None:
    """Five minutes of three tickers are stored exactly as REST serves them, minus the trade count,
    with source 'stream', and no window is marked covered."""
    sim = await sim_factory(now_ms=OPEN, speed=0)
    stream = _stream(sim, store, TICKERS)
    async with running(stream):
        await until(lambda: stream.state.connected, "subscribed")
        await asyncio.sleep(0.1)  # the subscribe acks reach the simulator before the clock moves
        for _ in range(5):
            sim.clock.advance(MINUTE_MS)
            await asyncio.sleep(0)
        await until(lambda: stream.state.bars_stored >= 15, "15 bars stored")
    for ticker in TICKERS:
        got = await store.bars(ticker, M1, OPEN, OPEN + 5 * MINUTE_MS)
        truth = sim.market.minute_bars(ticker, OPEN, OPEN + 5 * MINUTE_MS)
        assert len(got) == 5
        np.testing.assert_array_equal(got.t, truth.t)
        for col in ("o", "h", "l", "c", "v", "vw"):
            np.testing.assert_array_equal(getattr(got, col), getattr(truth, col), err_msg=col)
        assert not got.n.any()  # the stream has no trade count
        assert not await store.coverage(ticker, Dataset.BARS, "1m")
    assert stream.state.bad_frames == 0 and stream.state.feeds["stocks"].connects == 1


async def test_stream_resent_bar_replaces_the_provisional_one(sim_factory: SimFactory, store: Store) -> None:
    """With every bar re-sent, the provisional values are stored first, then replaced by REST's."""
    sim = await sim_factory(now_ms=OPEN, speed=0, stream=StreamConfig(resend_rate=1.0, resend_ms=MINUTE_MS))
    stream = _stream(sim, store, ["AAPL"])
    async with running(stream):
        await until(lambda: stream.state.connected, "subscribed")
        await asyncio.sleep(0.1)
        sim.clock.advance(MINUTE_MS)
        await until(lambda: stream.state.bars_stored >= 1, "the provisional bar")
        first = await store.bars("AAPL", M1, OPEN, OPEN + MINUTE_MS)
        truth = sim.market.minute_bars("AAPL", OPEN, OPEN + MINUTE_MS)
        assert first.v[0] != truth.v[0]
        sim.clock.advance(MINUTE_MS)
        await until(lambda: stream.state.bars_replaced >= 1, "the corrected bar")
    again = await store.bars("AAPL", M1, OPEN, OPEN + MINUTE_MS)
    assert again.v[0] == truth.v[0] and again.c[0] == truth.c[0]


async def test_stream_survives_a_forced_disconnect_and_resubscribes(
        sim_factory: SimFactory, store: Store) -> None:
    """Cut by the server, the client reconnects, subscribes again and goes on storing; the
    disconnect is counted."""
    sim = await sim_factory(now_ms=OPEN, speed=0)
    stream = _stream(sim, store, ["AAPL"])
    feed = stream.state.feeds["stocks"]
    async with running(stream):
        await until(lambda: stream.state.connected, "subscribed")
        await asyncio.sleep(0.1)
        sim.clock.advance(MINUTE_MS)
        await until(lambda: stream.state.bars_stored >= 1, "a bar before the cut")
        assert sim.hub.drop_all() == 1
        await until(lambda: feed.disconnects == 1 and feed.connects == 2, "the reconnect")
        await asyncio.sleep(0.1)
        sim.clock.advance(MINUTE_MS)
        await until(lambda: stream.state.bars_stored >= 2, "a bar after the reconnect")
    assert len(await store.bars("AAPL", M1, OPEN, OPEN + 2 * MINUTE_MS)) == 2


async def test_stream_refused_key_stops_with_vendor_auth_error(sim_factory: SimFactory, store: Store) -> None:
    """auth_failed is not retried: the stream stops with VendorAuthError."""
    sim = await sim_factory(now_ms=OPEN, speed=0, stream=StreamConfig(auth_fail=True))
    stream = _stream(sim, store, ["AAPL"])
    with pytest.raises(VendorAuthError):
        await asyncio.wait_for(stream.run(asyncio.Event()), 30)
    assert stream.state.feeds["stocks"].auth_failures == 1


def test_subscriptions_split_markets_and_collapse_wildcards() -> None:
    """Stocks and crypto go to their own paths; '*' replaces the tickers of its market."""
    assert subscriptions(["AAPL", "X:BTCUSD", "MSFT"]) == {"stocks": ["AM.AAPL", "AM.MSFT"],
                                                          "crypto": ["XA.BTC-USD"]}
    assert subscriptions(["AAPL", "*"]) == {"stocks": ["AM.*"]}


async def test_stream_symbols_take_a_universe_s_members_today(sim_factory: SimFactory, store: Store) -> None:
    """MDW_STREAM_UNIVERSE adds the universe's stock members of the day to the given symbols."""
    from datetime import date

    from mdw.backfill import catalog
    from mdw.backfill.reference import refresh_tickers
    from mdw.config import Settings
    from mdw.polygon import Pacing, PolygonClient
    from mdw.stream.service import stream_symbols

    day = date(2024, 3, 5)
    sim = await sim_factory(now_ms=OPEN, speed=0)
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as client:
        await refresh_tickers(store, client, today=day)
    await catalog.define(store, "pair", catalog.define_spec(tickers=["AAPL", "MSFT"]))
    settings = Settings(stream_symbols="X:BTCUSD", stream_universe="pair")
    assert await stream_symbols(settings, store, today=day) == ["X:BTCUSD", "AAPL", "MSFT"]
    with pytest.raises(UsageError):
        await stream_symbols(Settings(stream_universe="nope"), store, today=day)


async def test_stream_crypto_pair_is_stored_under_the_warehouse_ticker(
        sim_factory: SimFactory, store: Store) -> None:
    """X:BTCUSD subscribes as XA.BTC-USD on /crypto and its minutes are stored as X:BTCUSD."""
    sim = await sim_factory(now_ms=OPEN, speed=0)
    stream = _stream(sim, store, ["X:BTCUSD", "AAPL"])
    assert sorted(stream.state.feeds) == ["crypto", "stocks"]
    async with running(stream):
        await until(lambda: stream.state.connected, "both feeds subscribed")
        await asyncio.sleep(0.1)
        sim.clock.advance(2 * MINUTE_MS)
        await until(lambda: (stream.state.last_bar_end_ms or 0) >= OPEN + 2 * MINUTE_MS
                    and stream.state.bars_stored >= 4, "two minutes of both")
    got = await store.bars("X:BTCUSD", M1, OPEN, OPEN + 2 * MINUTE_MS)
    truth = sim.market.minute_bars("X:BTCUSD", OPEN, OPEN + 2 * MINUTE_MS)
    assert len(got) == 2
    for col in ("t", "o", "h", "l", "c", "v", "vw"):
        assert getattr(got, col).tolist() == getattr(truth, col).tolist(), col
