"""Streamed minute bars into the store, in small batches, with ``source = 'stream'`` and no coverage.

The client hands over decoded bars as frames arrive; one writer task commits what has gathered
every ``batch_ms`` (sooner when ``max_bars`` are waiting), so a burst of thousands of bars at a
minute's end becomes a few transactions, not thousands. A streamed bar never marks its window
covered: only reconciliation's REST pass does (see :mod:`mdw.stream.reconcile`).

A later event for a bar already streamed (the vendor's late and re-sent corrections) replaces it:
the store's merge rule rewrites a row whose values differ. Bars for windows already reconciled
(before :attr:`BarSink.watermark_ms`) are stale and dropped, so a provisional value never
overwrites a confirmed one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import numpy as np

from mdw.domain import BarBatch, RangeSet, Timeframe
from mdw.logs import get_logger
from mdw.store.base import BarWrite, Store
from mdw.stream.decode import CryptoMinute, StockMinute, ticker_of
from mdw.stream.live import LiveBars, StoredBars
from mdw.stream.state import StreamState

log = get_logger(__name__)
MINUTE = Timeframe.parse("1m")
Minute = StockMinute | CryptoMinute


class BarSink:
    """Gathers streamed bars per ticker and writes them in batches.

    Args:
        store: an open store.
        state: counters to update.
        live: told about every committed batch (the SSE route listens there).
        now_ms: the clock that stamps storage (lag is measured on it).
        batch_ms: the longest a bar waits before it is written.
        max_bars: write at once when this many bars are waiting.
    """

    def __init__(self, store: Store, state: StreamState, live: LiveBars, now_ms: Callable[[], int],
                 *, batch_ms: int = 250, max_bars: int = 5000) -> None:
        self.store = store
        self.state = state
        self.live = live
        self.now_ms = now_ms
        self.batch_s = batch_ms / 1000
        self.max_bars = max_bars
        self.watermark_ms: int | None = None
        self.first_ms: int | None = None  # the earliest bar start ever written
        self.tickers: set[str] = set()  # every ticker ever written
        self.lock = asyncio.Lock()  # held by a flush; the reconciler takes it to move the watermark
        self._pending: dict[str, dict[int, Minute]] = {}
        self._count = 0
        self._wake = asyncio.Event()
        self._flushed = asyncio.Event()

    def add(self, bars: list[Minute]) -> None:
        """Queue bars (a later event for the same ticker and minute replaces an earlier one)."""
        for bar in bars:
            self._pending.setdefault(ticker_of(bar), {})[bar.s] = bar
        self._count += len(bars)
        self.state.bars_received += len(bars)
        if self._count >= self.max_bars:
            self._wake.set()

    async def room(self) -> None:
        """Wait while too much is waiting (the writer is behind): backpressure onto the socket."""
        while self._count >= 20 * self.max_bars:
            self._flushed.clear()
            self._wake.set()
            await self._flushed.wait()

    async def run(self, stop: asyncio.Event) -> None:
        """Write every ``batch_ms`` until ``stop``; then write what is left."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.batch_s)
            self._wake.clear()
            await self.flush()
        await self.flush()

    async def flush(self) -> int:
        """Write what is waiting now; returns the rows written."""
        async with self.lock:
            pending, self._pending, self._count = self._pending, {}, 0
            self._flushed.set()
            if not pending:
                return 0
            writes = self._batches(pending)
            if not writes:
                return 0
            result = await self.store.write_bars(writes)
            stored_at = self.now_ms()
        newest = max(int(w.batch.t[-1]) for w in writes) + 60_000
        st = self.state
        st.batches += 1
        st.bars_stored += result.written
        st.bars_replaced += result.updated
        st.last_bar_end_ms = max(st.last_bar_end_ms or newest, newest)
        st.lag_ms = stored_at - newest
        st.max_lag_ms = max(st.max_lag_ms, st.lag_ms)
        for w in writes:
            self.tickers.add(w.batch.ticker)
            first = int(w.batch.t[0])
            self.first_ms = first if self.first_ms is None else min(self.first_ms, first)
        self.live.publish([StoredBars(w.batch, stored_at) for w in writes])
        return result.written

    def _batches(self, pending: dict[str, dict[int, Minute]]) -> list[BarWrite]:
        writes: list[BarWrite] = []
        mark = self.watermark_ms
        for ticker in sorted(pending):
            rows = pending[ticker]
            starts = sorted(s for s in rows if mark is None or s >= mark)
            self.state.bars_stale += len(rows) - len(starts)
            if not starts:
                continue
            bars = [rows[s] for s in starts]
            batch = BarBatch.from_columns(ticker, MINUTE, {
                "t": starts, "o": [b.o for b in bars], "h": [b.h for b in bars], "l": [b.l for b in bars],
                "c": [b.c for b in bars], "v": [b.v for b in bars], "vw": [b.vw for b in bars],
                "n": np.zeros(len(bars), dtype=np.int64)}, source="stream")
            problems = batch.problems()
            if problems:
                bad = {p.row for p in problems}
                self.state.bars_invalid += len(bad)
                log.warning("stream bars refused", action="stream.invalid", ticker=ticker, bars=len(bad),
                            reason=problems[0].reason)
                keep = np.array([i not in bad for i in range(len(batch))], dtype=bool)
                batch = batch.take(keep)
                if not len(batch):
                    continue
            writes.append(BarWrite(batch, RangeSet()))
        return writes
