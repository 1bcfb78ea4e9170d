"""The floor for an unthrottled backfill: a raw concurrent fetch of the same pages, decoded, nothing stored.

It takes mdw's own plan (the same requests, so the same pages), fetches them with one keep-alive
``aiohttp`` session at the same concurrency as mdw's default, follows ``next_url``, and decodes each
body with ``msgspec`` into typed bars. No validation, no columns, no store: what is left is the
network, the simulator and the JSON decode.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import msgspec

from mdw.backfill.plan import PlannedRequest
from mdw.polygon.paging import aggs_path


class Bar(msgspec.Struct):
    t: int
    o: float
    h: float
    l: float  # noqa: E741 - the vendor's field name
    c: float
    v: float | None = None
    vw: float | None = None
    n: int = 0


class AggsPage(msgspec.Struct):
    results: list[Bar] = []
    next_url: str | None = None


@dataclass
class Outcome:
    requests: int = 0
    bars: int = 0
    seconds: float = 0.0
    pages: list[tuple[str, str, list[Bar]]] | None = None

    def rows(self) -> list[tuple[object, ...]]:
        """The kept pages as ``bars`` rows (built after the clock stopped)."""
        return [
            (ticker, tf, b.t, b.o, b.h, b.l, b.c, b.v, b.vw, b.n)
            for ticker, tf, bars in self.pages or []
            for b in bars
        ]


async def fetch(
    base_url: str, key: str, requests: list[PlannedRequest], concurrency: int = 16, keep: bool = False
) -> Outcome:
    """Fetch every planned request (and its next pages) with ``concurrency`` requests in flight;
    ``keep`` also keeps the decoded pages for a raw insert afterwards."""
    decoder = msgspec.json.Decoder(AggsPage)
    out = Outcome(pages=[] if keep else None)
    queue: asyncio.Queue[PlannedRequest] = asyncio.Queue()
    for req in requests:
        queue.put_nowait(req)
    headers = {"Authorization": f"Bearer {key}"}
    base = base_url.rstrip("/")

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            req = queue.get_nowait()
            url = base + aggs_path(req.ticker, req.timeframe, req.fetch.start_ms, req.fetch.end_ms)
            params: dict[str, str] | None = {"adjusted": "false", "sort": "asc", "limit": "50000"}
            while url:
                async with session.get(url, params=params, headers=headers) as resp:
                    resp.raise_for_status()
                    page = decoder.decode(await resp.read())
                out.requests += 1
                out.bars += len(page.results)
                if out.pages is not None:
                    out.pages.append((req.ticker, str(req.timeframe), page.results))
                if not page.next_url:
                    break
                nxt = urlsplit(page.next_url)
                url, params = f"{base}{nxt.path}?{nxt.query}", None

    began = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    out.seconds = time.perf_counter() - began
    return out
