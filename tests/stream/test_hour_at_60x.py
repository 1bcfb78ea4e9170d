"""The issue's acceptance: the simulator's clock at 60x, an hour of market in about a minute.

With drops, late, re-sent and wrong bars switched on, the stream runs with its reconciler (a pass
every two wall seconds, on the simulator's clock); after the last pass every minute bar of the
subscribed tickers equals REST's ground truth exactly and the hour is covered. A shorter run
without faults checks that the stream alone stores every bar as REST serves it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.stream.conftest import until
from tests.stream.test_reconcile import settings_for
from tests.stream.test_stream_store import M1, OPEN, running

from mdw.domain import MINUTE_MS, TimeRange
from mdw.simulator.config import StreamConfig
from mdw.simulator.testing import SimFactory
from mdw.store import Dataset, open_store
from mdw.stream.runner import LiveStream
from mdw.stream.service import open_stream

# A dozen names that trade most minutes, and two thin ones that skip many.
TICKERS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "SPY", "QQQ", "JPM", "XOM", "KO"]
HOUR = 60 * MINUTE_MS


async def _start(stream: LiveStream) -> None:
    await until(lambda: stream.state.connected, "subscribed")
    await asyncio.sleep(0.2)  # the subscribe acks reach the simulator before the clock runs


async def test_an_hour_at_60x_with_faults_equals_rest_after_reconciliation(
        sim_factory: SimFactory, tmp_path: Path) -> None:
    """Drops, late, re-sent and wrong bars on, and a forced disconnect that loses five minutes:
    after reconciliation the hour equals REST exactly."""
    url = f"sqlite:///{tmp_path / 'mdw.db'}"
    store = await open_store(url)
    sim = await sim_factory(now_ms=OPEN, speed=0, stream=StreamConfig(
        drop_rate=0.02, late_rate=0.05, late_ms=2 * MINUTE_MS, resend_rate=0.05, resend_ms=MINUTE_MS,
        wrong_rate=0.05))
    settings = settings_for(sim.base_url, sim.key, url, stream_reconcile_s=2)
    try:
        async with open_stream(settings, store, TICKERS, sim.ws_url, sim.clock.now_ms) as stream, \
                running(stream):
            await _start(stream)
            sim.clock.set(speed=60)
            end = OPEN + HOUR
            rec = stream.state.reconcile
            await until(lambda: (stream.state.last_bar_end_ms or 0) >= OPEN + 30 * MINUTE_MS, "half an hour",
                        300)
            sim.hub.drop_all()  # a forced disconnect mid-session, and five minutes sent while cut off
            sim.clock.advance(5 * MINUTE_MS)
            await until(lambda: sim.clock.now_ms() >= end + 3 * MINUTE_MS, "the hour and its grace", 300)
            assert stream.reconciler is not None
            await stream.reconciler.pass_once(until_ms=end)
            assert rec.through_ms == end
        for ticker in TICKERS:
            got = await store.bars(ticker, M1, OPEN, end)
            truth = sim.market.minute_bars(ticker, OPEN, end)
            assert len(truth) > 0
            assert got.equals(truth.with_source(got.source)), ticker
            assert (await store.coverage(ticker, Dataset.BARS, "1m")).covers(TimeRange(OPEN, end))
        state = stream.state
        assert rec.passes >= 2 and rec.failures == 0
        assert rec.bars_corrected >= 1  # wrong bars are only ever corrected by REST
        assert state.feeds["stocks"].disconnects >= 1 and rec.bars_filled >= len(TICKERS)
        assert state.bars_replaced >= 1  # re-sent bars replaced their provisional values on the stream
    finally:
        await store.close()


async def test_ten_minutes_at_60x_without_faults_the_stream_alone_stores_every_bar(
        sim_factory: SimFactory, tmp_path: Path) -> None:
    """Without faults, the stream alone stores every bar with REST's prices and volume."""
    store = await open_store(f"sqlite:///{tmp_path / 'mdw.db'}")
    sim = await sim_factory(now_ms=OPEN, speed=0)
    try:
        stream = LiveStream(store, sim.ws_url, sim.key, TICKERS, sim.clock.now_ms, batch_ms=50)
        end = OPEN + 10 * MINUTE_MS
        async with running(stream):
            await _start(stream)
            sim.clock.set(speed=60)
            await until(lambda: (stream.state.last_bar_end_ms or 0) >= end, "ten minutes", 120)
            sim.clock.set(speed=0)
        for ticker in TICKERS:
            got = await store.bars(ticker, M1, OPEN, end)
            truth = sim.market.minute_bars(ticker, OPEN, end)
            for col in ("t", "o", "h", "l", "c", "v", "vw"):
                assert getattr(got, col).tolist() == getattr(truth, col).tolist(), (ticker, col)
        assert stream.state.feeds["stocks"].disconnects == 0
    finally:
        await store.close()
