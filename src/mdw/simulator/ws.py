"""The WebSocket endpoints: ``/stocks``, ``/crypto`` and their delayed twins ``/delayed/...``.

The conversation follows the vendor's (the official client's ``websocket/__init__.py`` and its
mock server): on connect the server sends ``connected``; the client sends
``{"action":"auth","params":KEY}`` and gets ``auth_success`` or ``auth_failed`` (then the
connection is closed); ``subscribe``/``unsubscribe`` take comma-separated ``EV.SYMBOL`` params and
are acknowledged one ``success`` status per param. A connection that does not authenticate in
time gets ``auth_timeout`` and is closed. What the vendor answers to a subscribe before auth or to
an unknown action is not established; the simulator answers an ``error`` status and keeps the
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import WSMsgType, web

from mdw.logs import get_logger
from mdw.simulator.state import STATE
from mdw.simulator.stream import Feed
from mdw.simulator.stream_events import Event, encode_frame, status_frame, ticker_of_pair

log = get_logger(__name__)
AUTH_FAILED = "authentication failed"
AUTH_TIMEOUT = "No authentication request received."
_DROP = b""  # queued: cut the connection once the frames before it are written


class Connection:
    """One client: its subscriptions and an outgoing queue drained by its own writer task."""

    def __init__(self, feed: Feed, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.feed = feed
        self.ws = ws
        self.request = request
        self.authed = False
        self.subs: set[str] = set()
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False
        self.close_reason: tuple[int, str] | None = None  # what the writer closes with at the end

    def tickers(self, ev: str) -> list[str]:
        """The vendor tickers this connection subscribed to for ``ev`` (``*`` excluded)."""
        prefix = f"{ev}."
        out = []
        for sub in self.subs:
            if sub.startswith(prefix) and sub != f"{ev}.*":
                sym = sub[len(prefix):]
                out.append(ticker_of_pair(sym) if self.feed.asset.value == "crypto" else sym)
        return out

    def send_frame(self, frame: bytes) -> None:
        if self.closed:
            return
        cfg = self.feed.hub.config
        if self.queue.qsize() >= cfg.max_queue_frames:
            self.feed.hub.stats.counts["slow_consumer"] += 1
            self.finish(1008, "slow consumer")
            return
        self.queue.put_nowait(frame)

    def send_events(self, events: list[Event]) -> None:
        size = self.feed.hub.config.frame_events
        for i in range(0, len(events), size):
            self.send_frame(encode_frame(events[i:i + size]))
            self.feed.hub.stats.counts["frames"] += 1

    def finish(self, code: int, message: str) -> None:
        """Send what is queued, then close with ``code`` (the writer does both, in order)."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = (code, message)
        self.queue.put_nowait(None)

    def drop(self, *, now: bool = True) -> None:
        """Cut the TCP connection without a close frame (the client sees an abnormal closure).

        ``now=False`` lets the frames already queued reach the client first (a drop between
        minutes); ``now=True`` cuts at once, whatever is in flight.
        """
        if self.closed:
            return
        self.closed = True
        if now:
            self._abort()
        self.queue.put_nowait(_DROP)

    def _abort(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def _flushed(self) -> None:
        transport = self.request.transport
        for _ in range(1000):  # at most about a second: a stuck client is cut regardless
            if transport is None or transport.is_closing() or not transport.get_write_buffer_size():
                return
            await asyncio.sleep(0.001)

    async def close(self, code: int, message: str) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=message.encode())

    async def writer(self) -> None:
        while True:
            frame = await self.queue.get()
            if frame == _DROP:
                await self._flushed()
                self._abort()
                return
            if frame is None:
                if self.close_reason is not None:
                    await self.close(*self.close_reason)
                return
            try:
                await self.ws.send_frame(frame, WSMsgType.TEXT)
            except (ConnectionError, RuntimeError):
                return


def _action(data: str) -> tuple[str, str] | None:
    try:
        msg = json.loads(data)
    except ValueError:
        return None
    if not isinstance(msg, dict) or not isinstance(msg.get("action"), str):
        return None
    params = msg.get("params", "")
    return msg["action"], params if isinstance(params, str) else ""


async def _auth_deadline(conn: Connection, seconds: float) -> None:
    await asyncio.sleep(seconds)
    if not conn.authed and not conn.closed:
        conn.feed.hub.stats.counts["auth_timeout"] += 1
        conn.send_frame(status_frame("auth_timeout", AUTH_TIMEOUT))
        conn.finish(1008, "auth timeout")


def _handle(conn: Connection, action: str, params: str) -> bool:
    """Apply one client message; returns False when the connection must be closed."""
    hub = conn.feed.hub
    if action == "auth":
        st = conn.request.app[STATE]
        if hub.config.auth_fail or params not in st.config.keys:
            hub.stats.counts["auth_failed"] += 1
            conn.send_frame(status_frame("auth_failed", AUTH_FAILED))
            return False
        conn.authed = True
        hub.stats.counts["auth_success"] += 1
        conn.send_frame(status_frame("auth_success", "authenticated"))
        conn.feed.wake.set()
        return True
    if action not in ("subscribe", "unsubscribe"):
        conn.send_frame(status_frame("error", f"unknown action: {action}"))
        return True
    if not conn.authed:
        conn.send_frame(status_frame("error", "not authenticated"))
        return True
    for param in (p.strip() for p in params.split(",")):
        if not param:
            continue
        if action == "subscribe":
            conn.subs.add(param)
            hub.stats.counts["subscriptions"] += 1
            conn.send_frame(status_frame("success", f"subscribed to: {param}"))
        else:
            conn.subs.discard(param)
            conn.send_frame(status_frame("success", f"unsubscribed to: {param}"))
    conn.feed.wake.set()
    return True


async def stream_handler(request: web.Request) -> web.StreamResponse:
    """Serve one WebSocket client of the feed named by the path."""
    st = request.app[STATE]
    hub = st.hub
    market_name = request.match_info["market"]
    feed = hub.feed(market_name, request.path.startswith("/delayed/"))
    ws = web.WebSocketResponse(max_msg_size=4 * 1024 * 1024, autoping=True)
    await ws.prepare(request)
    conn = Connection(feed, ws, request)
    feed.connections.add(conn)
    hub.stats.counts["connections"] += 1
    writer = asyncio.create_task(conn.writer(), name="sim-stream-writer")
    deadline = asyncio.create_task(_auth_deadline(conn, hub.config.auth_timeout_s), name="sim-stream-auth")
    conn.send_frame(status_frame("connected", "Connected Successfully"))
    try:
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            parsed = _action(msg.data)
            if parsed is None:
                conn.send_frame(status_frame("error", "invalid message"))
                continue
            if not _handle(conn, *parsed):
                conn.finish(1008, AUTH_FAILED)
                await writer  # the auth_failed status goes out before the close
                break
    finally:
        feed.connections.discard(conn)
        conn.closed = True
        deadline.cancel()
        if not writer.done():
            conn.queue.put_nowait(None)
            writer.cancel()
        await asyncio.gather(writer, deadline, return_exceptions=True)
    return ws


def add_routes(app: web.Application) -> None:
    for prefix in ("", "/delayed"):
        app.router.add_get(prefix + "/{market:stocks|crypto}", stream_handler,
                           name="ws-delayed" if prefix else "ws-realtime")


def is_stream_path(path: str) -> bool:
    return path in ("/stocks", "/crypto", "/delayed/stocks", "/delayed/crypto")


def snapshot(request: web.Request) -> dict[str, object]:
    return request.app[STATE].hub.snapshot()
