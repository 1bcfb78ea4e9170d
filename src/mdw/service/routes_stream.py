"""``GET /v1/stream/bars``: bars pushed to HTTP clients as the stream stores them (Server-Sent Events).

Server-Sent Events rather than a WebSocket (ADR 0016): the feed goes one way, from mdw to the
client; SSE is plain HTTP, so API keys, proxies, the OpenAPI document and ``curl -N`` work
unchanged, and browsers reconnect by themselves (``EventSource``).

Each stored batch of a series becomes one ``bar`` event per bar: the bar as stored (raw, not
adjusted), its ``source`` (``stream``, or ``rest`` when reconciliation corrected or filled it) and
``stored_at_ms``. A client that falls behind loses its oldest events and gets a ``dropped`` event
saying how many; a comment line every 15 s keeps idle connections open.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from mdw.service.auth import Reader
from mdw.service.encode import encode_json
from mdw.service.errors import ApiError
from mdw.service.state import get_state
from mdw.stream.live import Listener, LiveBars, StoredBars

router = APIRouter(tags=["bars"])
KEEPALIVE_S = 15.0


def bar_events(item: StoredBars) -> bytes:
    """One ``bar`` event per bar of the batch."""
    b = item.batch
    out = []
    for i in range(len(b)):
        v, vw = float(b.v[i]), float(b.vw[i])
        data = {"ticker": b.ticker, "timeframe": str(b.timeframe), "t": int(b.t[i]), "o": float(b.o[i]),
                "h": float(b.h[i]), "l": float(b.l[i]), "c": float(b.c[i]), "v": None if v != v else v,
                "vw": None if vw != vw else vw, "n": int(b.n[i]) if b.n[i] >= 0 else None, "source": b.source,
                "stored_at_ms": item.stored_at_ms}
        out.append(b"event: bar\ndata: " + encode_json(data) + b"\n\n")
    return b"".join(out)


async def _events(request: Request, live: LiveBars, listener: Listener) -> AsyncIterator[bytes]:
    try:
        yield b"retry: 3000\nevent: ready\ndata: {}\n\n"
        reported = 0
        while True:
            try:
                item = await asyncio.wait_for(listener.queue.get(), KEEPALIVE_S)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield b": keepalive\n\n"
                continue
            if item is None:  # the service is stopping
                return
            if listener.dropped != reported:
                lost = encode_json({"dropped": listener.dropped - reported})
                yield b"event: dropped\ndata: " + lost + b"\n\n"
                reported = listener.dropped
            yield bar_events(item)
    finally:
        live.close(listener)


@router.get(
    "/v1/stream/bars",
    summary="Minute bars as the stream stores them (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}},
               409: {"description": "the stream is not running in this process (MDW_STREAM)"}},
)
async def stream_bars(
    request: Request, _: Reader,
    tickers: Annotated[str | None, Query(description="Comma-separated tickers; all streamed ones if omitted",
                                         max_length=20_000)] = None,
) -> StreamingResponse:
    st = get_state(request)
    if st.stream is None:
        raise ApiError(409, "stream_off", "the stream is not running in this process: set MDW_STREAM=true "
                       "(and a vendor key) for mdw serve")
    wanted = frozenset(t.strip() for t in (tickers or "").split(",") if t.strip())
    listener = st.live.listen(wanted)  # from now on, every stored bar of these tickers is queued
    return StreamingResponse(_events(request, st.live, listener), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
