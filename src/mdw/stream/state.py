"""What the stream is doing, for ``/readyz``, ``/metrics``, the dashboard and ``mdw stream``'s log.

Plain counters and a few instants, updated by the client, the sink and the reconciler of one
process. Times are epoch ms on the run's clock (the system clock, or a simulator's data clock in
tests); ``lag_ms`` is how long after a bar's window ended it was stored, on that clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class FeedState:
    """One WebSocket connection's state (one per market path: ``stocks``, ``crypto``)."""

    url: str
    params: int = 0  # subscription params sent (AM.AAPL, AM.* ...)
    connected: bool = False
    connects: int = 0
    disconnects: int = 0
    auth_failures: int = 0
    last_error: str = ""
    connected_since_ms: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {"url": self.url, "params": self.params, "connected": self.connected,
                "connects": self.connects, "disconnects": self.disconnects,
                "auth_failures": self.auth_failures, "last_error": self.last_error,
                "connected_since_ms": self.connected_since_ms}


@dataclass(slots=True)
class ReconcileState:
    """The REST passes that confirm or correct streamed spans."""

    passes: int = 0
    through_ms: int | None = None  # everything before this was reconciled (None: nothing yet)
    bars_confirmed: int = 0  # streamed bars REST served with the same prices and volume
    bars_corrected: int = 0  # streamed bars REST served with other values
    bars_filled: int = 0  # bars the stream never delivered (disconnects, drops)
    bars_updated: int = 0  # the store's count: rows rewritten (source, trade count or values)
    failures: int = 0
    last_error: str = ""
    last_run_id: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"passes": self.passes, "through_ms": self.through_ms,
                "bars_confirmed": self.bars_confirmed, "bars_corrected": self.bars_corrected,
                "bars_filled": self.bars_filled, "bars_updated": self.bars_updated,
                "failures": self.failures, "last_error": self.last_error, "last_run_id": self.last_run_id}


@dataclass(slots=True)
class StreamState:
    """The whole stream of one process."""

    feeds: dict[str, FeedState] = field(default_factory=dict)
    frames: int = 0
    messages: int = 0  # events received, of every kind
    bad_frames: int = 0
    skipped: int = 0  # events that are not minute bars (second bars, odd windows)
    bars_received: int = 0
    bars_stored: int = 0  # rows written (new or replacing a streamed row)
    bars_replaced: int = 0  # of them, late or re-sent bars that replaced a streamed row
    bars_stale: int = 0  # arrived for a window already reconciled: not written
    bars_invalid: int = 0  # broke a bar invariant (high below low ...): not written
    batches: int = 0
    last_message_ms: int | None = None
    last_bar_end_ms: int | None = None
    lag_ms: int | None = None  # the last batch: storage instant minus its newest bar's end
    max_lag_ms: int = 0
    reconcile: ReconcileState = field(default_factory=ReconcileState)
    _window: deque[tuple[float, int]] = field(default_factory=deque)

    @property
    def connected(self) -> bool:
        return bool(self.feeds) and all(f.connected for f in self.feeds.values())

    def on_frame(self, events: int, mono_s: float, now_ms: int) -> None:
        self.frames += 1
        self.messages += events
        self.last_message_ms = now_ms
        self._window.append((mono_s, events))
        while self._window and self._window[0][0] < mono_s - 10.0:
            self._window.popleft()

    def messages_per_s(self, mono_s: float) -> float:
        """Events received per second over the last ten seconds."""
        recent = sum(n for at, n in self._window if at >= mono_s - 10.0)
        return recent / 10.0

    def to_dict(self, mono_s: float) -> dict[str, object]:
        return {
            "connected": self.connected,
            "feeds": {name: f.to_dict() for name, f in sorted(self.feeds.items())},
            "frames": self.frames, "messages": self.messages,
            "messages_per_s": round(self.messages_per_s(mono_s), 1),
            "bad_frames": self.bad_frames, "skipped": self.skipped,
            "bars_received": self.bars_received, "bars_stored": self.bars_stored,
            "bars_replaced": self.bars_replaced, "bars_stale": self.bars_stale,
            "bars_invalid": self.bars_invalid, "batches": self.batches,
            "last_message_ms": self.last_message_ms, "last_bar_end_ms": self.last_bar_end_ms,
            "lag_ms": self.lag_ms, "max_lag_ms": self.max_lag_ms,
            "reconcile": self.reconcile.to_dict(),
        }
