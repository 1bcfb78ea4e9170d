"""Who hears about stored bars: a fan-out of each write to the live listeners (the SSE route).

A listener is a bounded queue. A listener that falls behind loses its oldest updates and is told
so (``dropped``), rather than slowing the sink: the stream's writes never wait for a client.
:meth:`LiveBars.stop` ends every listener (a ``None`` in its queue), so a stopping service does not
wait on its open event streams.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from mdw.domain import BarBatch


@dataclass(frozen=True, slots=True)
class StoredBars:
    """One series' bars as one write stored them, and when (epoch ms, the run's clock)."""

    batch: BarBatch
    stored_at_ms: int


@dataclass(slots=True, eq=False)  # compared and hashed by identity: one per client
class Listener:
    """One client's queue, filtered to its tickers (empty: every ticker)."""

    tickers: frozenset[str]
    queue: asyncio.Queue[StoredBars | None] = field(default_factory=lambda: asyncio.Queue(maxsize=1024))
    dropped: int = 0

    def offer(self, item: StoredBars | None) -> None:
        """Queue ``item`` (``None``: the end), dropping the oldest when full."""
        if item is not None and self.tickers and item.batch.ticker not in self.tickers:
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(item)


class LiveBars:
    """The fan-out; ``publish`` is called by the writer after each commit."""

    def __init__(self) -> None:
        self._listeners: set[Listener] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def listen(self, tickers: frozenset[str]) -> Listener:
        """A new listener (call it on the loop that publishes)."""
        self._loop = asyncio.get_running_loop()
        listener = Listener(tickers)
        self._listeners.add(listener)
        return listener

    def stop(self) -> None:
        """End every listener's stream."""
        for listener in list(self._listeners):
            listener.offer(None)

    def stop_threadsafe(self) -> None:
        """:meth:`stop` from a signal handler or another thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.stop)

    def close(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def publish(self, items: list[StoredBars]) -> None:
        for listener in list(self._listeners):
            for item in items:
                listener.offer(item)
