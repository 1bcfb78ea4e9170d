"""Streamed bars are provisional until REST confirms them: the reconciliation pass.

The stream drops connections, sends bars late, re-sends corrected ones and may send values REST
never serves; it carries no trade count. So a streamed bar never marks its window covered. Once
a span has settled (its windows ended before the plan's delay, the delay margin and
``stream_settle_s`` of grace for late bars), one REST pass over every streamed ticker fetches the
span again (``refetch``: the ledger is not asked, the stream's rows are what is being checked)
and writes REST's bars over the stream's. That pass marks the windows covered, fills what a
disconnect or a drop left out, and corrects what the stream got wrong. Before it fetches, the
sink's watermark moves to the span's end, so a late bar for a window being confirmed is dropped,
never written over REST's value.

Counted per pass: bars REST served with the stream's prices and volume (confirmed), with others
(corrected), bars the stream never delivered (filled), and the store's own count of rewritten rows
(``bars_updated``: every confirmed row too, as REST adds the trade count and the source changes).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mdw.backfill.fetch import VendorSource
from mdw.backfill.plan import BackfillSpec
from mdw.backfill.runner import run_backfill
from mdw.domain import MINUTE_MS, BarBatch, Ticker, parse_ticker
from mdw.errors import MdwError
from mdw.logs import get_logger
from mdw.plans import Limits
from mdw.store.base import RunKind, RunStatus, Store
from mdw.stream.live import StoredBars
from mdw.stream.sink import MINUTE, BarSink
from mdw.stream.state import StreamState

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PassResult:
    """One reconciliation pass over ``[start_ms, end_ms)``."""

    start_ms: int
    end_ms: int
    tickers: int
    confirmed: int
    corrected: int
    filled: int
    updated: int
    status: RunStatus
    run_id: str


def _same(before: BarBatch, after: BarBatch) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``after``: held in ``before`` at all, and held with the same prices and volume."""
    if not len(before):
        none = np.zeros(len(after), dtype=bool)
        return none, none
    pos = np.minimum(np.searchsorted(before.t, after.t), len(before) - 1)
    held = before.t[pos] == after.t
    same = held.copy()
    for name in ("o", "h", "l", "c", "v", "vw"):
        old, new = getattr(before, name)[pos], getattr(after, name)
        same &= (old == new) | (np.isnan(old) & np.isnan(new))
    return held, same


def compare(before: BarBatch, after: BarBatch) -> tuple[int, int, int]:
    """(confirmed, corrected, filled): ``after``'s rows against ``before``'s, on prices and volume.

    The trade count is left out: the stream has none.
    """
    held, same = _same(before, after)
    return int(same.sum()), int((held & ~same).sum()), int((~held).sum())


def changed(before: BarBatch, after: BarBatch) -> BarBatch:
    """The rows of ``after`` that are new or carry other prices or volume than ``before``'s."""
    _, same = _same(before, after)
    return after.take(~same)


class Reconciler:
    """Runs a REST pass over each settled span of the streamed tickers.

    Args:
        store: the open store the sink writes to.
        client: the vendor's REST client.
        sink: the stream's sink (its watermark, first bar and tickers).
        state: counters to update.
        limits: the key's plan and delay margin (``Settings.limits``).
        now_ms: the run's clock.
        settle_ms: grace after the plan's delay and margin for late and re-sent bars.
        every_s: how often to look for a settled span.
        tickers: the subscribed tickers (``*`` subscriptions add every ticker the stream wrote).
    """

    def __init__(self, store: Store, client: VendorSource, sink: BarSink, state: StreamState, limits: Limits,
                 now_ms: Callable[[], int], *, settle_ms: int, every_s: float,
                 tickers: Sequence[str] = ()) -> None:
        self.store = store
        self.client = client
        self.sink = sink
        self.state = state.reconcile
        self.limits = limits
        self.now_ms = now_ms
        self.settle_ms = settle_ms
        self.every_s = every_s
        self.tickers = [t for t in tickers if t not in ("*",) and t.upper() != "X:*"]
        self._lock = asyncio.Lock()

    def settled_before(self, now_ms: int) -> int:
        """Windows ending before this are final on the vendor's REST side and past the grace."""
        return (self.limits.final_before_ms(now_ms) - self.settle_ms) // MINUTE_MS * MINUTE_MS

    async def run(self, stop: asyncio.Event) -> None:
        """A pass every ``every_s`` until ``stop``; a pass the vendor or store failed is tried again.

        Any other exception is a bug: it stops the stream loudly.
        """
        while not stop.is_set():
            try:
                await self.pass_once()
            except MdwError as exc:  # the vendor or the store failed: counted, tried again next time
                self.state.failures += 1
                self.state.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("stream reconciliation failed", action="stream.reconcile_failed",
                            error=self.state.last_error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every_s)

    async def pass_once(self, until_ms: int | None = None) -> PassResult | None:
        """Reconcile from where the last pass ended (or the first streamed bar) to the settled end.

        Args:
            until_ms: end the span here instead (never past the settled end).

        Returns:
            The pass, or None when nothing has settled since the last one.
        """
        async with self._lock:
            now = self.now_ms()
            end = self.settled_before(now)
            if until_ms is not None:
                end = min(end, until_ms // MINUTE_MS * MINUTE_MS)
            start = self.state.through_ms if self.state.through_ms is not None else self.sink.first_ms
            if start is None or end <= start:
                return None
            async with self.sink.lock:  # no flush in flight: from here on, bars before `end` are stale
                self.sink.watermark_ms = end
            names = sorted(set(self.tickers) | self.sink.tickers)
            if not names:
                self.state.through_ms = end
                return None
            tickers = [parse_ticker(n) for n in names]
            before = {t.symbol: await self.store.bars(t.symbol, MINUTE, start, end) for t in tickers}
            report = await run_backfill(
                self.store, self.client, self._spec(tickers, start, end), now=now, track=False,
                limits=self.limits)
            confirmed = corrected = filled = 0
            pushed: list[StoredBars] = []
            stamp = self.now_ms()
            for t in tickers:
                after = await self.store.bars(t.symbol, MINUTE, start, end)
                c, x, f = compare(before[t.symbol], after)
                confirmed, corrected, filled = confirmed + c, corrected + x, filled + f
                if x or f:  # live listeners get REST's values for what the stream got wrong or missed
                    pushed.append(StoredBars(changed(before[t.symbol], after).with_source("rest"), stamp))
            self.sink.live.publish(pushed)
            st = self.state
            st.passes += 1
            st.bars_confirmed += confirmed
            st.bars_corrected += corrected
            st.bars_filled += filled
            st.bars_updated += report.bars_updated
            st.last_run_id = report.run_id
            if report.status is RunStatus.OK:
                st.through_ms = end  # a failed series is asked again by the next pass
            else:
                st.failures += 1
                st.last_error = "; ".join(report.errors[:3])[:300] or str(report.status)
            result = PassResult(start, end, len(tickers), confirmed, corrected, filled, report.bars_updated,
                                report.status, report.run_id)
            log.info("stream reconciled", action="stream.reconciled", start_ms=start, end_ms=end,
                     tickers=len(tickers), confirmed=confirmed, corrected=corrected, filled=filled,
                     status=str(report.status))
            return result

    @staticmethod
    def _spec(tickers: list[Ticker], start: int, end: int) -> BackfillSpec:
        return BackfillSpec(tuple(tickers), (MINUTE,), start, end, grouped_daily=False, refetch=True,
                            source="rest", kind=RunKind.RECONCILE)
