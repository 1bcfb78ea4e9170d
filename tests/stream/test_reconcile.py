"""Reconciliation: streamed bars stay provisional until a REST pass over their settled span
confirms them, corrects the wrong ones and fills what a disconnect lost.

The simulator's clock is frozen and moved by hand; the pass runs on that clock (the clock seam).
"""

from __future__ import annotations

import asyncio

import numpy as np
from tests.stream.conftest import until
from tests.stream.test_stream_store import M1, OPEN, running

from mdw.config import Settings
from mdw.domain import MINUTE_MS, TimeRange
from mdw.simulator.config import StreamConfig
from mdw.simulator.testing import SimFactory
from mdw.store import Dataset, Store
from mdw.stream.service import open_stream

TICKERS = ["AAPL", "MSFT", "SPY", "NVDA"]


def settings_for(sim_base: str, key: str, db: str, **extra: object) -> Settings:
    values: dict[str, object] = {"stream_batch_ms": 20, "stream_settle_s": 120, "stream_reconcile_s": 3600,
                                 **extra}
    return Settings(POLYGON_API_KEY=key, POLYGON_BASE_URL=sim_base, database_url=db, rate_limit="unlimited",
                    **values)


async def test_reconcile_makes_the_streamed_span_equal_rest_with_faults_and_a_disconnect(
        sim_factory: SimFactory, store: Store, store_url: str) -> None:
    """Late, re-sent and wrong bars and a forced disconnect: after the pass, every bar of the
    span equals REST's exactly, the span is covered, and corrections and fills are counted."""
    sim = await sim_factory(now_ms=OPEN, speed=0, stream=StreamConfig(
        late_rate=0.1, late_ms=2 * MINUTE_MS, resend_rate=0.1, resend_ms=MINUTE_MS, wrong_rate=0.1))
    settings = settings_for(sim.base_url, sim.key, store_url)
    async with open_stream(settings, store, TICKERS, sim.ws_url, sim.clock.now_ms) as stream, \
            running(stream):
        await until(lambda: stream.state.connected, "subscribed")
        await asyncio.sleep(0.1)
        sim.clock.advance(10 * MINUTE_MS)
        await until(lambda: stream.state.last_bar_end_ms == OPEN + 10 * MINUTE_MS, "ten minutes")
        sim.hub.drop_all()
        sim.clock.advance(5 * MINUTE_MS)  # emitted while the client is cut off: a gap
        feed = stream.state.feeds["stocks"]
        await until(lambda: feed.connects == 2, "the reconnect")
        await asyncio.sleep(0.1)
        sim.clock.advance(15 * MINUTE_MS)
        await until(lambda: stream.state.last_bar_end_ms == OPEN + 30 * MINUTE_MS, "thirty minutes")
        for ticker in TICKERS:  # streamed alone, nothing is covered
            assert not await store.coverage(ticker, Dataset.BARS, "1m")
        assert stream.reconciler is not None
        result = await stream.reconciler.pass_once()
    assert result is not None
    end = OPEN + 28 * MINUTE_MS  # 30 minutes on, less the 2 minutes' grace
    assert (result.start_ms, result.end_ms) == (OPEN, end)
    assert result.corrected >= 1 and result.filled >= 1
    assert result.confirmed + result.corrected + result.filled == 4 * 28
    for ticker in TICKERS:
        got = await store.bars(ticker, M1, OPEN, end)
        truth = sim.market.minute_bars(ticker, OPEN, end)
        assert got.equals(truth.with_source(got.source)), ticker
        covered = await store.coverage(ticker, Dataset.BARS, "1m")
        assert covered.covers(TimeRange(OPEN, end)), covered
    rec = stream.state.reconcile
    assert rec.through_ms == end and rec.passes == 1 and rec.bars_filled == result.filled
    assert stream.state.feeds["stocks"].disconnects == 1


async def test_reconcile_late_bar_after_the_pass_is_dropped_not_written(
        sim_factory: SimFactory, store: Store, store_url: str) -> None:
    """A bar arriving for a window already reconciled is stale: REST's value stays."""
    sim = await sim_factory(now_ms=OPEN, speed=0, stream=StreamConfig(late_rate=1.0, late_ms=10 * MINUTE_MS))
    settings = settings_for(sim.base_url, sim.key, store_url, stream_settle_s=0)
    async with open_stream(settings, store, ["AAPL"], sim.ws_url, sim.clock.now_ms) as stream:
        stream.sink.first_ms = OPEN  # nothing arrives before the pass: every bar is late
        stream.sink.tickers.add("AAPL")
        assert stream.reconciler is not None
        async with running(stream):
            await until(lambda: stream.state.connected, "subscribed")
            await asyncio.sleep(0.1)
            sim.clock.advance(3 * MINUTE_MS)
            result = await stream.reconciler.pass_once()
            assert result is not None and result.filled == 3
            sim.clock.advance(10 * MINUTE_MS)  # the three late bars arrive now
            await until(lambda: stream.state.bars_stale >= 3, "the late bars")
    got = await store.bars("AAPL", M1, OPEN, OPEN + 3 * MINUTE_MS)
    truth = sim.market.minute_bars("AAPL", OPEN, OPEN + 3 * MINUTE_MS)
    assert got.equals(truth.with_source(got.source)) and got.n.all()


def test_compare_counts_confirmed_corrected_filled() -> None:
    """Prices and volume decide; the trade count does not."""
    from mdw.domain import BarBatch
    from mdw.stream.reconcile import compare
    from mdw.stream.sink import MINUTE

    def batch(t: list[int], c: list[float], n: int) -> BarBatch:
        k = len(t)
        return BarBatch.from_columns("X", MINUTE, {"t": t, "o": c, "h": c, "l": c, "c": c, "v": [1.0] * k,
                                                   "vw": c, "n": np.full(k, n)})

    before = batch([0, 60_000], [1.0, 2.0], 0)
    after = batch([0, 60_000, 120_000], [1.0, 2.5, 3.0], 5)
    assert compare(before, after) == (1, 1, 1)
