"""The stream as one unit: feeds, sink and reconciler, for ``mdw stream`` and ``mdw serve``.

:func:`subscriptions` turns what the user asked for (tickers, ``*``) into per-market params;
:class:`LiveStream` runs one :class:`~mdw.stream.client.FeedClient` per market, the
:class:`~mdw.stream.sink.BarSink` and, when given, the reconciler, until its stop event is set.
A failing part (a refused key) stops the whole stream and its error is raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from mdw.config import Settings
from mdw.errors import MdwError, UsageError
from mdw.logs import get_logger
from mdw.store.base import Store
from mdw.stream.client import FeedClient
from mdw.stream.decode import symbol_of
from mdw.stream.live import LiveBars
from mdw.stream.sink import BarSink
from mdw.stream.state import StreamState

if TYPE_CHECKING:
    from mdw.stream.reconcile import Reconciler

log = get_logger(__name__)
REALTIME_URL = "wss://socket.massive.com"
DELAYED_URL = "wss://delayed.massive.com"


def stream_url(settings: Settings) -> str:
    """``MDW_STREAM_URL``, else the vendor's real-time or delayed host as the key's plan says."""
    if settings.stream_url:
        return settings.stream_url.rstrip("/")
    delay = settings.key_plan.delay
    return DELAYED_URL if delay.ms or delay.end_of_day else REALTIME_URL


def subscriptions(symbols: Sequence[str]) -> dict[str, list[str]]:
    """Per market path, the params to subscribe: ``*`` is ``AM.*``, ``X:*`` is ``XA.*``.

    Raises:
        UsageError: no symbol at all.
    """
    out: dict[str, list[str]] = {}
    for raw in symbols:
        sym = raw.strip()
        if not sym:
            continue
        if sym == "*":
            out["stocks"] = ["AM.*"]
        elif sym.upper() == "X:*":
            out["crypto"] = ["XA.*"]
        else:
            market, param = symbol_of(sym)
            if out.get(market) != [f"{param.split('.')[0]}.*"]:
                out.setdefault(market, []).append(param)
    if not out:
        raise UsageError("nothing to stream: give tickers, '*' (every stock) or 'X:*' (every crypto pair)")
    return {m: sorted(dict.fromkeys(p)) for m, p in out.items()}


Part = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class LiveStream:
    """Feeds, sink and (optionally) reconciler of one process, sharing one state.

    Args:
        store: an open store.
        url: the feed host, e.g. ``wss://socket.massive.com`` (the market path is appended).
        key: the vendor API key.
        symbols: tickers, ``*`` or ``X:*``.
        now_ms: the run's clock (the system clock; a simulator's data clock in tests).
    """

    def __init__(self, store: Store, url: str, key: str, symbols: Sequence[str],
                 now_ms: Callable[[], int], *, batch_ms: int = 250, max_bars: int = 5000,
                 live: LiveBars | None = None, state: StreamState | None = None,
                 rng: random.Random | None = None) -> None:
        self.state = state or StreamState()
        self.live = live or LiveBars()
        self.now_ms = now_ms
        self.sink = BarSink(store, self.state, self.live, now_ms, batch_ms=batch_ms, max_bars=max_bars)
        self.subs = subscriptions(symbols)
        self.clients = [FeedClient(market, f"{url.rstrip('/')}/{market}", key, params, self.sink, self.state,
                                   now_ms, rng=rng) for market, params in sorted(self.subs.items())]
        self.extra: list[tuple[str, Part]] = []
        self.reconciler: Reconciler | None = None

    def add_part(self, name: str, part: Part) -> None:
        """Run ``part(stop)`` beside the feeds (the reconciler)."""
        self.extra.append((name, part))

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: every feed, the sink, the extra parts. The sink writes what is left last.

        Raises:
            MdwError: a part failed for good (e.g. the vendor refused the key); the others are
                stopped first.
        """
        inner = asyncio.Event()
        parts: list[tuple[str, Part]] = [(f"stream-feed-{c.name}", c.run) for c in self.clients]
        parts.extend(self.extra)
        tasks = [asyncio.create_task(part(inner), name=name) for name, part in parts]
        writer = asyncio.create_task(self.sink.run(inner), name="stream-sink")
        stopper = asyncio.create_task(stop.wait(), name="stream-stop")
        try:
            await asyncio.wait([*tasks, writer, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            inner.set()
            stopper.cancel()
            results = await asyncio.gather(*tasks, writer, return_exceptions=True)
            with contextlib.suppress(asyncio.CancelledError):
                await stopper
        for result in results:
            if isinstance(result, MdwError):
                raise result
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result
