"""The stream's feeds: which events go to whom, at which moment of the simulator's clock.

One :class:`Feed` per market (``stocks``, ``crypto``) and timing (real time, or delayed by
``StreamConfig.delay_ms``). When the clock passes a minute's end (plus the delay), the feed
emits that minute's ``AM``/``XA`` bars of every subscribed ticker, read from the same market
that answers REST, so a minute streamed without faults equals the REST bar exactly. Second bars
(``A``/``XAS``) of the minute that just began are scheduled at their seconds' ends. Late and
re-sent bars wait in a heap until their due time; drops cut connections after a minute's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from mdw.domain import MINUTE_MS, AssetClass
from mdw.logs import get_logger
from mdw.simulator.clock import SimClock
from mdw.simulator.config import StreamConfig
from mdw.simulator.market import Market
from mdw.simulator.stream_events import (
    DayTable,
    Event,
    agg_event,
    fault_draw,
    minute_bar,
    pair_of,
    perturbed,
    second_events,
)
from mdw.simulator.windows import local_day

if TYPE_CHECKING:
    from mdw.simulator.ws import Connection

log = get_logger(__name__)
MARKETS = {"stocks": (AssetClass.STOCKS, "AM", "A"), "crypto": (AssetClass.CRYPTO, "XA", "XAS")}


@dataclass(slots=True)
class StreamStats:
    """What the stream did, for ``/_sim/stats`` (``stream`` key)."""

    counts: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)

    def snapshot(self, open_connections: int) -> dict[str, object]:
        return {**dict(self.counts), "open_connections": open_connections, "events": dict(self.events)}


@dataclass(order=True, slots=True)
class _Held:
    due_ms: int
    seq: int
    ev: str = field(compare=False)
    ticker: str = field(compare=False)
    event: Event = field(compare=False)


class Feed:
    """One market's stream at one delay; its loop runs for the life of the server."""

    def __init__(self, hub: StreamHub, market_name: str, delayed: bool) -> None:
        self.hub = hub
        self.name = f"{'delayed/' if delayed else ''}{market_name}"
        self.asset, self.minute_ev, self.second_ev = MARKETS[market_name]
        self.delayed = delayed
        self.connections: set[Connection] = set()
        self.wake = asyncio.Event()
        self._next_end: int | None = None
        self._held: list[_Held] = []
        self._seq = itertools.count()
        self._tables: dict[str, DayTable] = {}
        self._drop_rng = random.Random(hub.seed * 7919 + (3 if delayed else 1) + len(market_name))
        self.task: asyncio.Task[None] | None = None

    @property
    def offset_ms(self) -> int:
        cfg = self.hub.config
        return cfg.emit_lag_ms + (cfg.delay_ms if self.delayed else 0)

    def symbol(self, ticker: str) -> str:
        """The ticker as the stream spells it."""
        return pair_of(ticker) if self.asset is AssetClass.CRYPTO else ticker

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name=f"sim-stream-{self.name}")

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        clock = self.hub.clock
        while True:
            now = clock.now_ms()
            if self._next_end is None or self._next_end - MINUTE_MS > now - self.offset_ms + MINUTE_MS:
                # first run, or the clock was set back: start again from the minute now running
                self._next_end = (now - self.offset_ms) // MINUTE_MS * MINUTE_MS + MINUTE_MS
                self._held.clear()
            due = self._next_end + self.offset_ms
            if self._held and self._held[0].due_ms <= min(due, now):
                self._release(heapq.heappop(self._held))
                continue
            if due <= now:
                await self._emit_minute(self._next_end - MINUTE_MS)
                self._next_end += MINUTE_MS
                await asyncio.sleep(0)  # let writers drain between minutes when catching up
                continue
            nxt = min(due, self._held[0].due_ms) if self._held else due
            self.wake.clear()
            await clock.wait_until(nxt, self.wake)

    def _wanted(self, ev: str) -> list[str] | None:
        """Tickers some authenticated connection wants ``ev`` for (None: the whole universe)."""
        tickers: set[str] = set()
        for conn in self.connections:
            if not conn.authed:
                continue
            if f"{ev}.*" in conn.subs:
                return None
            tickers.update(conn.tickers(ev))
        return sorted(tickers)

    async def _tables_for(self, tickers: list[str], day: date) -> list[DayTable]:
        missing = [t for t in tickers if (tab := self._tables.get(t)) is None or tab.day != day]
        if missing:
            market = self.hub.market
            built = await asyncio.to_thread(
                lambda: {t: DayTable.build(day, market.day_minutes(t, day)) for t in missing})
            self._tables.update(built)
        return [self._tables[t] for t in tickers]

    async def _emit_minute(self, start_ms: int) -> None:
        """The minute bars of ``[start_ms, start_ms + 1 min)``, then the next minute's second bars."""
        cfg, stats = self.hub.config, self.hub.stats
        due = start_ms + MINUTE_MS + self.offset_ms
        wanted = self._wanted(self.minute_ev)
        tickers = self.hub.market.universe(self.asset) if wanted is None else wanted
        out: list[tuple[str, Event]] = []
        if tickers:
            day = local_day(self.asset, start_ms)
            for ticker, table in zip(tickers, await self._tables_for(tickers, day), strict=True):
                i = table.index(start_ms)
                if i is None:
                    continue
                bar = minute_bar(table, i)
                event = agg_event(self.minute_ev, ticker, self.asset, bar, table, i)
                u = fault_draw(self.hub.seed, ticker, start_ms)
                if u < cfg.late_rate:
                    self._hold(due + cfg.late_ms, self.minute_ev, ticker, event)
                    stats.counts["late"] += 1
                    continue
                if u < cfg.late_rate + cfg.resend_rate:
                    self._hold(due + cfg.resend_ms, self.minute_ev, ticker, event)
                    stats.counts["resent"] += 1
                    event = agg_event(self.minute_ev, ticker, self.asset,
                                      perturbed(bar, self.asset), table, i)
                elif u < cfg.late_rate + cfg.resend_rate + cfg.wrong_rate:
                    stats.counts["wrong"] += 1
                    event = agg_event(self.minute_ev, ticker, self.asset,
                                      perturbed(bar, self.asset), table, i)
                out.append((ticker, event))
        self._deliver(self.minute_ev, out)
        await self._schedule_seconds(start_ms + MINUTE_MS)
        for conn in list(self.connections):
            if conn.authed and cfg.drop_rate > 0 and self._drop_rng.random() < cfg.drop_rate:
                stats.counts["dropped"] += 1
                conn.drop(now=False)

    async def _schedule_seconds(self, start_ms: int) -> None:
        wanted = self._wanted(self.second_ev)
        if wanted == []:
            return
        tickers = self.hub.market.universe(self.asset) if wanted is None else wanted
        day = local_day(self.asset, start_ms)
        for ticker, table in zip(tickers, await self._tables_for(tickers, day), strict=True):
            i = table.index(start_ms)
            if i is None:
                continue
            for end, event in second_events(self.second_ev, ticker, self.asset, table, i,
                                            self.hub.seed):
                self._hold(end + self.offset_ms, self.second_ev, ticker, event)

    def _hold(self, due_ms: int, ev: str, ticker: str, event: Event) -> None:
        heapq.heappush(self._held, _Held(due_ms, next(self._seq), ev, ticker, event))

    def _release(self, held: _Held) -> None:
        self._deliver(held.ev, [(held.ticker, held.event)])

    def _deliver(self, ev: str, events: list[tuple[str, Event]]) -> None:
        if not events:
            return
        for conn in list(self.connections):
            if not conn.authed:
                continue
            if f"{ev}.*" in conn.subs:
                mine = [e for _, e in events]
            else:
                mine = [e for t, e in events if f"{ev}.{self.symbol(t)}" in conn.subs]
            if mine:
                conn.send_events(mine)
                self.hub.stats.events[ev] += len(mine)


class StreamHub:
    """Every feed of one simulator, sharing its clock, market, stream settings and stats."""

    def __init__(self, market: Market, clock: SimClock, config: StreamConfig, seed: int) -> None:
        self.market = market
        self.clock = clock
        self.config = config
        self.seed = seed
        self.stats = StreamStats()
        self.feeds: dict[str, Feed] = {}

    def feed(self, market_name: str, delayed: bool) -> Feed:
        key = f"{'delayed/' if delayed else ''}{market_name}"
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = Feed(self, market_name, delayed)
        feed.start()
        return feed

    def set_config(self, config: StreamConfig) -> None:
        self.config = config
        for feed in self.feeds.values():
            feed.wake.set()

    def drop_all(self) -> int:
        """Cut every open connection (no close frame), as a network failure would."""
        dropped = 0
        for feed in self.feeds.values():
            for conn in list(feed.connections):
                conn.drop()
                dropped += 1
        self.stats.counts["dropped"] += dropped
        return dropped

    def open_connections(self) -> int:
        return sum(len(f.connections) for f in self.feeds.values())

    def snapshot(self) -> dict[str, object]:
        return self.stats.snapshot(self.open_connections())

    async def close(self) -> None:
        """Stop the feeds and close every connection with 1001 (going away)."""
        for feed in self.feeds.values():
            if feed.task is not None:
                feed.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feed.task
            for conn in list(feed.connections):
                await conn.close(1001, "server shutting down")
