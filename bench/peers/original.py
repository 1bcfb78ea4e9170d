"""The original system's backfill algorithm, re-implemented from its description, its choices kept.

Source: ``/work/shared/reference/original-system.md`` (sections 1-3) and the Phase 3 report of
Slopez2023/Market-Data-Warehouse-API (feature branch). What is kept as it was:

- symbols in groups of three, started 0, 5 and 10 s apart, ``asyncio.gather`` per group, and a
  10 s pause between groups (``_backfill_symbols_parallel``); a symbol's timeframes run one after
  another;
- one ``fetch_range`` per (symbol, timeframe) with ``sort=asc&limit=50000&adjusted=false``, the key
  as the ``apiKey`` query parameter, a new ``aiohttp.ClientSession`` per request and stdlib JSON;
- the module-global 0.4 s spacing between ``fetch_range`` requests (an ``asyncio.Lock``);
- tenacity ``stop_after_attempt(5)``, ``wait_exponential(multiplier=1, min=1, max=300)`` (waits of
  1, 2, 4 and 8 s) retrying every exception, a 429 raised as ``ValueError``, no Retry-After;
- the scheduler's own loop around each pair: 3 attempts with 2 s and 4 s sleeps;
- one ``INSERT ... ON CONFLICT DO NOTHING`` per row, synchronous (it blocks the event loop as the
  original's synchronous SQLAlchemy calls did), one commit per pair.

Changed so that its data is complete and comparable (each in the original's favour): ``next_url``
is followed (every page gets the same spacing and retries); crypto tickers are sent with their
``X:`` prefix; the per-bar validation that dropped bars next to real gaps is left out; rows go to
mdw's ``bars`` table through a plain driver instead of SQLAlchemy text statements.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from tenacity import retry, stop_after_attempt, wait_exponential

from peers.store import RowWriter

TIMEFRAME_MAP = {
    "1m": (1, "minute"),
    "5m": (5, "minute"),
    "15m": (15, "minute"),
    "30m": (30, "minute"),
    "1h": (1, "hour"),
    "4h": (4, "hour"),
    "1d": (1, "day"),
    "1w": (1, "week"),
}
SPACING_S = 0.4  # "Polygon free tier = 150 req/min = 2.5 req/sec"
GROUP = 3
STAGGER_S = 5.0
GROUP_PAUSE_S = 10.0
PAIR_ATTEMPTS = 3
PAIR_SLEEPS_S = (2.0, 4.0)


@dataclass
class Outcome:
    """What the run did, counted by the client (the simulator counts too)."""

    total_requests: int = 0
    rate_limited_count: int = 0
    rows_inserted: int = 0
    failed_pairs: list[str] = field(default_factory=list)
    api_s: float = 0.0
    db_s: float = 0.0


class OriginalClient:
    """``src/clients/polygon_client.py``: fetch_range with the global spacing and tenacity."""

    def __init__(self, api_key: str, base_url: str, outcome: Outcome, spacing_s: float = SPACING_S) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.outcome = outcome
        self.spacing_s = spacing_s
        self._lock = asyncio.Lock()
        self._last = 0.0

    async def _rate_limit_wait(self) -> None:
        async with self._lock:
            wait = self._last + self.spacing_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last = time.monotonic()

    @retry(stop=stop_after_attempt(5), wait=wait_exponential(multiplier=1, min=1, max=300))
    async def _get(self, url: str, params: dict[str, str]) -> dict[str, Any]:
        await self._rate_limit_wait()
        self.outcome.total_requests += 1
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
                session.get(url, params={**params, "apiKey": self.api_key}) as resp,
            ):
                if resp.status == 429:
                    self.outcome.rate_limited_count += 1
                    raise ValueError("Rate limited by Polygon API")
                if resp.status != 200:
                    raise ValueError(f"Polygon API error: {resp.status}")
                data: dict[str, Any] = await resp.json()
                return data
        except aiohttp.ClientError as exc:
            raise ValueError(f"Network error: {exc}") from exc

    async def fetch_range(self, symbol: str, timeframe: str, start: str, end: str) -> list[dict[str, Any]]:
        """All bars of the days ``start``..``end`` (the original's one request, plus next_url pages)."""
        mult, span = TIMEFRAME_MAP[timeframe]
        url = f"{self.base_url}/v2/aggs/ticker/{symbol}/range/{mult}/{span}/{start}/{end}"
        params = {"adjusted": "false", "sort": "asc", "limit": "50000"}
        out: list[dict[str, Any]] = []
        while True:
            data = await self._get(url, params)
            if data.get("status") == "ERROR":
                return out
            out.extend(data.get("results") or [])
            nxt = data.get("next_url")
            if not nxt:
                return out
            url, params = nxt, {}


class OriginalScheduler:
    """``src/scheduler.py``: groups of three staggered symbols, timeframes in turn, per-row inserts."""

    def __init__(self, client: OriginalClient, writer: RowWriter, start: str, end: str) -> None:
        self.client, self.writer = client, writer
        self.start, self.end = start, end
        self.outcome = client.outcome

    def _insert_ohlcv_batch(self, symbol: str, timeframe: str, candles: list[dict[str, Any]]) -> int:
        began = time.perf_counter()
        try:
            for c in candles:
                self.writer.insert_row(
                    (
                        symbol,
                        timeframe,
                        int(c["t"]),
                        c["o"],
                        c["h"],
                        c["l"],
                        c["c"],
                        c.get("v"),
                        c.get("vw"),
                        int(c.get("n") or 0),
                    )
                )
            self.writer.commit()
        except Exception:
            self.writer.rollback()
            raise
        finally:
            self.outcome.db_s += time.perf_counter() - began
        return len(candles)

    async def _fetch_and_insert(self, symbol: str, timeframe: str) -> int:
        began = time.perf_counter()
        try:
            candles = await self.client.fetch_range(symbol, timeframe, self.start, self.end)
        finally:
            self.outcome.api_s += time.perf_counter() - began
        return self._insert_ohlcv_batch(symbol, timeframe, candles)

    async def _fetch_and_insert_with_retry(self, symbol: str, timeframe: str) -> None:
        for attempt in range(PAIR_ATTEMPTS):
            try:
                self.outcome.rows_inserted += await self._fetch_and_insert(symbol, timeframe)
                return
            except Exception:
                if attempt + 1 == PAIR_ATTEMPTS:
                    self.outcome.failed_pairs.append(f"{symbol} {timeframe}")
                    return
                await asyncio.sleep(PAIR_SLEEPS_S[attempt])

    async def _backfill_symbol(self, symbol: str, timeframes: list[str]) -> None:
        for tf in timeframes:
            await self._fetch_and_insert_with_retry(symbol, tf)

    async def backfill_symbols_parallel(self, symbols: list[str], timeframes: list[str]) -> None:
        groups = [symbols[i : i + GROUP] for i in range(0, len(symbols), GROUP)]
        for g, group in enumerate(groups):
            if g:
                await asyncio.sleep(GROUP_PAUSE_S)

            async def staggered(j: int, symbol: str) -> None:
                await asyncio.sleep(j * STAGGER_S)
                await self._backfill_symbol(symbol, timeframes)

            await asyncio.gather(*(staggered(j, s) for j, s in enumerate(group)), return_exceptions=True)


async def run(
    base_url: str, key: str, db_url: str, symbols: list[str], timeframes: list[str], start: str, end: str
) -> Outcome:
    """Backfill ``symbols`` x ``timeframes`` over the days ``start``..``end`` the original way."""
    outcome = Outcome()
    writer = RowWriter(db_url)
    try:
        scheduler = OriginalScheduler(OriginalClient(key, base_url, outcome), writer, start, end)
        await scheduler.backfill_symbols_parallel(symbols, timeframes)
    finally:
        writer.close()
    return outcome
