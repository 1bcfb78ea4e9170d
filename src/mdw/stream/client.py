"""One WebSocket connection to the vendor's aggregates feed, kept open forever.

The conversation is the vendor's: on connect it sends ``connected``; mdw sends
``{"action":"auth","params":KEY}`` and waits for ``auth_success``, then subscribes
(``AM.AAPL,AM.MSFT`` or ``AM.*``, a few hundred params per message) and reads frames until the
connection ends. Any end but a stop (a reset, a 1006 drop, a close from the server, a failed
connect) is followed by a reconnect after an exponential backoff with full jitter, and the same
subscriptions are sent again. ``auth_failed`` is not retried: a wrong key stays wrong, and
hammering the vendor with it helps nobody (:class:`~mdw.errors.VendorAuthError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable, Sequence

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from mdw.errors import VendorAuthError, VendorTransientError
from mdw.logs import get_logger
from mdw.stream.decode import Frame, FrameError, decode_frame
from mdw.stream.sink import BarSink
from mdw.stream.state import FeedState, StreamState

log = get_logger(__name__)
PARAMS_PER_MESSAGE = 500
AUTH_TIMEOUT_S = 15.0


def backoff_s(attempt: int, rng: random.Random, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)) (attempt 0 is the first retry)."""
    return rng.uniform(0.0, min(cap_s, base_s * (2 ** min(attempt, 30))))


class FeedClient:
    """One market path (``stocks``, ``crypto``) of one feed URL, its params, feeding one sink.

    Args:
        url: the whole WebSocket URL, e.g. ``wss://socket.massive.com/stocks``.
        key: the vendor API key (never logged).
        params: subscription params (``AM.AAPL``, ``AM.*``, ``XA.BTC-USD``).
        sink: where decoded minute bars go.
        state: the process's stream state; this feed's entry is ``state.feeds[name]``.
        now_ms: the run's clock (stamps ``last_message_ms``).
        rng: the jitter's random source (tests seed it).
    """

    def __init__(self, name: str, url: str, key: str, params: Sequence[str], sink: BarSink,
                 state: StreamState, now_ms: Callable[[], int], *, rng: random.Random | None = None,
                 base_s: float = 0.5, cap_s: float = 30.0) -> None:
        self.name = name
        self.url = url
        self._key = key
        self.params = list(params)
        self.sink = sink
        self.state = state
        self.feed = state.feeds.setdefault(name, FeedState(url))
        self.feed.params = len(self.params)
        self.now_ms = now_ms
        self.rng = rng or random.Random()
        self.base_s, self.cap_s = base_s, cap_s

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, read, reconnect, until ``stop`` is set.

        Raises:
            VendorAuthError: the vendor answered ``auth_failed``.
        """
        attempt = 0
        while not stop.is_set():
            try:
                async with connect(self.url, max_size=None, compression=None, open_timeout=20,
                                   ping_interval=20, ping_timeout=20, close_timeout=2) as ws:
                    if await self._session(ws, stop):
                        attempt = 0  # a session that got going resets the backoff
            except VendorAuthError:
                self.feed.auth_failures += 1
                self.feed.last_error = "auth_failed"
                raise
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, VendorTransientError) as exc:
                self.feed.last_error = f"{type(exc).__name__}: {exc}"[:200]
            except InvalidURI as exc:
                raise VendorTransientError(f"bad stream URL: {exc}") from None
            finally:
                if self.feed.connected and not stop.is_set():  # a stop is not a disconnect
                    self.feed.disconnects += 1
                self.feed.connected = False
                self.feed.connected_since_ms = None
            if stop.is_set():
                break
            delay = backoff_s(attempt, self.rng, self.base_s, self.cap_s)
            attempt += 1
            log.warning("stream disconnected; reconnecting", action="stream.reconnect", feed=self.name,
                        delay_s=round(delay, 2), error=self.feed.last_error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _session(self, ws: ClientConnection, stop: asyncio.Event) -> bool:
        """Authenticate, subscribe, read until the connection ends; True once subscribed."""
        closer = asyncio.create_task(self._close_on(stop, ws), name=f"stream-stop-{self.name}")
        try:
            await ws.send(json.dumps({"action": "auth", "params": self._key}))
            await asyncio.wait_for(self._authenticated(ws), AUTH_TIMEOUT_S)
            for i in range(0, len(self.params), PARAMS_PER_MESSAGE):
                chunk = ",".join(self.params[i:i + PARAMS_PER_MESSAGE])
                await ws.send(json.dumps({"action": "subscribe", "params": chunk}))
            self.feed.connected = True
            self.feed.connects += 1
            self.feed.connected_since_ms = self.now_ms()
            self.feed.last_error = ""
            log.info("stream subscribed", action="stream.subscribed", feed=self.name, params=len(self.params))
            try:
                await self._read(ws)
            except ConnectionClosed as exc:
                if not stop.is_set():
                    raise ConnectionError(f"connection closed: {exc}") from None
            return True
        finally:
            closer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closer

    async def _close_on(self, stop: asyncio.Event, ws: ClientConnection) -> None:
        await stop.wait()
        await ws.close()

    async def _authenticated(self, ws: ClientConnection) -> None:
        while True:
            frame = self._decode(await ws.recv(decode=False))
            for status in frame.statuses if frame is not None else ():
                if status.status == "auth_success":
                    return
                if status.status in ("auth_failed", "auth_timeout"):
                    raise VendorAuthError(f"stream {self.name}: {status.status} ({status.message})",
                                          vendor_message=status.message)

    async def _read(self, ws: ClientConnection) -> None:
        sink, state = self.sink, self.state
        while True:
            data = await ws.recv(decode=False)
            frame = self._decode(data)
            if frame is None:
                continue
            state.on_frame(len(frame.bars) + len(frame.statuses) + frame.skipped, time.monotonic(),
                           self.now_ms())
            state.skipped += frame.skipped
            for status in frame.statuses:
                if status.status not in ("success", "connected"):
                    log.warning("stream status", action="stream.status", feed=self.name,
                                status=status.status, message=status.message)
            if frame.bars:
                sink.add(frame.bars)
                await sink.room()

    def _decode(self, data: bytes | str) -> Frame | None:
        try:
            return decode_frame(data)
        except FrameError as exc:
            self.state.bad_frames += 1
            log.warning("bad stream frame", action="stream.bad_frame", feed=self.name, error=str(exc))
            return None
