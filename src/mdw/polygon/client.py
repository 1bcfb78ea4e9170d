"""The async Polygon/Massive REST client: every request paced, retried, guarded and accounted.

Request path of one HTTP call, in order (the order matters):

1. breaker admits it (or raises ``VendorUnavailable`` at once);
2. the in-flight semaphore bounds concurrency (independent of the rate);
3. the rate limiter grants a start, *after* the semaphore, so a grant is the real start time;
4. the transport sends it (aiohttp's keep-alive pool by default), the key only in the Authorization
   header;
5. status and body map to data or to a ``VendorError``; transient ones back off (outside the
   semaphore) and retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date
from types import TracebackType
from typing import TypeVar
from urllib.parse import quote

import numpy as np
import stamina
from yarl import URL

from mdw.clock import SYSTEM_CLOCK, Clock
from mdw.config import Settings
from mdw.domain import AssetClass, BarBatch, Dividend, Split, Timeframe, local_midnight_ms
from mdw.errors import (
    ConfigError,
    UsageError,
    ValidationError,
    VendorError,
    VendorNotFound,
    VendorPlanError,
    VendorRateLimited,
    VendorRequestError,
    VendorTimeout,
    VendorTransientError,
    VendorUnavailable,
)
from mdw.logs import redact, register_secret
from mdw.polygon import actions as acts
from mdw.polygon import decode as dec
from mdw.polygon import reference as ref
from mdw.polygon.breaker import CircuitBreaker
from mdw.polygon.events import (
    BreakerState,
    BreakerTransitionEvent,
    EventHub,
    RateLimitedEvent,
    RetryEvent,
    Subscriber,
)
from mdw.polygon.http import status_error
from mdw.polygon.limiter import Answered, ArrivalTracking, LimiterBackend, not_tracked, shared_limiter
from mdw.polygon.options import PAGE_LIMIT, BreakerPolicy, Pacing, RetryPolicy, options_from_settings
from mdw.polygon.paging import PageGuard, PageLink, aggs_path, clip, follow, join
from mdw.polygon.retry import Tries, parse_retry_after
from mdw.polygon.screen import page_notes
from mdw.polygon.stats import ClientStats, StatsRecorder
from mdw.polygon.transport import AiohttpTransport, Request, Timeouts, Transport

log = logging.getLogger(__name__)
T = TypeVar("T")
_GROUPED_MARKETS = {
    AssetClass.STOCKS: "us/market/stocks",
    AssetClass.CRYPTO: "global/market/crypto",
    AssetClass.FOREX: "global/market/fx",
}


def _answered(body: bytes, url: str) -> bool:
    """A decoder for requests whose answer matters only by being a success."""
    return True


def _bool(value: bool) -> str:
    return "true" if value else "false"


DECODE_IN_THREAD_BYTES = 256 * 1024
"""With ``decode_off_loop``, bodies at least this big are decoded on the client's worker thread."""


class PolygonClient:
    """Async client for the vendor's REST API; use ``async with`` (or ``await aclose()``).

    Args:
        api_key: the vendor key; it is sent only as ``Authorization: Bearer`` and registered for
            redaction, so no URL, log line or error message ever holds it.
        base_url: vendor base URL (the simulator's URL in tests).
        pacing: rate limit, in-flight bound and page size (:class:`~mdw.polygon.options.Pacing`).
        retry: attempts and backoff (:class:`~mdw.polygon.options.RetryPolicy`).
        breaker: the circuit breaker (:class:`~mdw.polygon.options.BreakerPolicy`).
        timeouts: connect and total limits of the default transport.
        transport: how a request is sent (default: an :class:`AiohttpTransport` owned and closed by
            the client); tests pass their own implementation of the one-method protocol.
        limiter: a shared limiter backend; by default one per (base URL, key, plan) in the process.
        clock: the time source of the breaker (the limiter brings its own).
        decode_off_loop: decode pages of ``DECODE_IN_THREAD_BYTES`` or more on one worker thread of
            the client's own, so the event loop is not held for a whole page's decode (a 50,000-bar
            page takes ~30 ms) while it answers other work: ``mdw serve``'s reads and the stream
            ask for it. Off by default: a backfill gains no wall time from it and pays CPU (a raw
            fetch ~7 %, a SQLite backfill ~3 %, a PostgreSQL one ~3 %; docs/benchmarks.md).
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://api.massive.com",
        *,
        pacing: Pacing = Pacing(),
        retry: RetryPolicy = RetryPolicy(),
        breaker: BreakerPolicy = BreakerPolicy(),
        timeouts: Timeouts = Timeouts(),
        transport: Transport | None = None,
        limiter: LimiterBackend | None = None,
        clock: Clock = SYSTEM_CLOCK,
        decode_off_loop: bool = False,
    ) -> None:
        if not api_key:
            raise ConfigError("no vendor API key: set POLYGON_API_KEY")
        register_secret(api_key)
        self.base_url = URL(base_url.rstrip("/"))
        if not self.base_url.is_absolute():
            raise ConfigError(f"invalid vendor base URL {base_url!r}; expected e.g. https://api.massive.com")
        self.rate_limit = pacing.rate
        self.limiter: LimiterBackend = limiter or shared_limiter(str(self.base_url), api_key, self.rate_limit)
        self.max_in_flight = max(1, pacing.max_in_flight)
        self.page_limit = min(PAGE_LIMIT, max(1, pacing.page_limit))
        self._retry = retry
        self._events = EventHub()
        self.clock = clock
        self.breaker = CircuitBreaker(breaker, clock=clock, on_transition=self._on_breaker)
        self._own_transport = transport is None
        self.transport: Transport = transport or AiohttpTransport(timeouts, self.max_in_flight)
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json",
                         "User-Agent": "mdw-vendor-client/0.1"}
        self._stats = StatsRecorder()
        self._slots = asyncio.Semaphore(self.max_in_flight)
        self._closed = False
        self._known: dict[str, bool] = {}  # ticker_known's answers: one request per ticker
        # One thread: pages are decoded one after another (asyncio's default pool decoded several
        # at once, holding their objects together and taking turns at the GIL: 10-15 % more CPU).
        self._decoder = (ThreadPoolExecutor(1, thread_name_prefix="mdw-vendor-decode")
                         if decode_off_loop else None)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, limiter: LimiterBackend | None = None, transport: Transport | None = None,
        clock: Clock = SYSTEM_CLOCK, page_limit: int = PAGE_LIMIT, decode_off_loop: bool = False,
    ) -> PolygonClient:
        """A client configured from :class:`~mdw.config.Settings` (env and ``mdw.toml``).

        Raises:
            ConfigError: no API key is configured.
        """
        if not settings.api_key:
            raise ConfigError("no vendor API key: set POLYGON_API_KEY (or polygon_api_key in mdw.toml)")
        pacing, retry, breaker, timeouts = options_from_settings(settings)
        return cls(settings.api_key, settings.polygon_base_url, pacing=replace(pacing, page_limit=page_limit),
                   retry=retry, breaker=breaker, timeouts=timeouts, transport=transport, limiter=limiter,
                   clock=clock, decode_off_loop=decode_off_loop)

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> PolygonClient:
        if self._closed:
            raise UsageError("the vendor client is closed")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the default transport and its connection pool; the client cannot be used afterwards.

        A transport passed in is the caller's to close.
        """
        self._closed = True
        if self._decoder is not None:
            self._decoder.shutdown(wait=False)
        if self._own_transport and isinstance(self.transport, AiohttpTransport):
            await self.transport.aclose()

    # ---------------------------------------------------------------- observation

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Receive frozen retry / rate-limited / breaker-transition events; returns an unsubscribe."""
        return self._events.subscribe(callback)

    def stats(self) -> ClientStats:
        """A frozen snapshot of this client's accounting."""
        rate = self.limiter.current_rate
        return self._stats.snapshot(self.breaker.state, self.breaker.transitions, rate.requests, rate.period,
                                    self.breaker.transition_count)

    def _on_breaker(self, event: BreakerTransitionEvent) -> None:
        log.warning("vendor circuit breaker %s -> %s (cool-down %.1fs)", event.from_state.value,
                    event.to_state.value, event.cooldown_s, extra={"action": "vendor.breaker"})
        self._events.emit(event)

    # ---------------------------------------------------------------- request core

    async def _request(self, url: URL, decoder: Callable[[bytes, str], T]) -> T:
        """One logical request: retried on stamina, each attempt guarded by the breaker, decoded.

        The first attempt runs before stamina's retry context is entered: most requests succeed at
        once, and the context (a tenacity ``AsyncRetrying`` built per call and stepped through its
        actions) cost about 100 us of a request's ~350 us CPU. A first attempt that fails is handed
        to stamina as its own first attempt (raised again inside it), so stamina decides, counts,
        instruments and waits every retry exactly as if it had run that attempt itself.
        """
        shown = redact(str(url))
        try:
            return await self._guarded(url, shown, decoder)
        except Exception as exc:
            first: Exception | None = exc

        def on_retry(attempt: int, wait: float, error: VendorError) -> None:
            self._stats.retries += 1
            self._events.emit(RetryEvent(attempt, wait, type(error).__name__, error.status, shown))

        tries = Tries(self._retry, on_retry)
        try:
            # stamina waits between attempts (outside the semaphore: a waiting retry holds no slot)
            async for attempt in stamina.retry_context(on=tries, attempts=tries.most, timeout=None):
                with attempt:
                    if first is not None:
                        failed, first = first, None
                        raise failed  # the attempt made above, judged by stamina
                    return await self._guarded(url, shown, decoder)
        except dec.InvalidBarsError as error:
            raise ValidationError(f"{error} on all {tries.failed} attempts [GET {shown}]",
                                  rows=error.rows, bars=error.bars, reasons=error.reasons,
                                  url=shown) from error
        except VendorTransientError as error:
            error.add_note(f"gave up after {tries.failed} attempts")
            if self.breaker.state is BreakerState.OPEN:
                # The last failure tripped the breaker: the vendor is down, not this request bad,
                # so callers (the engine's outage wait) see the same class as a fast fail.
                raise VendorUnavailable(
                    f"vendor unavailable (circuit opened by this request's last failure: {error})",
                    url=shown, retry_after=self.breaker.retry_in(),
                ) from error
            raise
        raise AssertionError("stamina ended without an outcome")  # pragma: no cover

    async def _guarded(self, url: URL, shown: str, decoder: Callable[[bytes, str], T]) -> T:
        """One attempt through the breaker, which learns from how it ended."""
        try:
            probe = self.breaker.before_call(shown)
        except VendorUnavailable as exc:
            self._stats.failure(exc)
            raise
        try:
            result = await self._attempt(url, shown, decoder)
        except VendorRateLimited as exc:
            self.breaker.record_neutral(probe)  # "slower" is the limiter's business
            self._stats.failure(exc)
            raise
        except dec.InvalidBarsError as exc:
            self.breaker.record_success(probe)  # the vendor answered; the data was bad
            self._stats.failure(exc)
            raise
        except VendorTransientError as exc:
            self.breaker.record_failure(probe)
            self._stats.failure(exc)
            if self.breaker.state is not BreakerState.CLOSED:
                # A failed probe, or the failure that opened the circuit: the breaker, not the
                # retry backoff, says when to try again (callers wait on the clock for it).
                wait = self.breaker.retry_in()
                circuit = "open" if self.breaker.state is BreakerState.OPEN else "half-open"
                unavailable = VendorUnavailable(f"vendor unavailable (circuit {circuit}, next probe in "
                                                f"{wait:.1f}s; this request failed: {exc})", url=shown,
                                                retry_after=wait)
                self._stats.failure(unavailable)
                raise unavailable from exc
            raise
        except VendorRequestError as exc:
            self.breaker.record_success(probe)  # the vendor is up; it just said no
            self._stats.failure(exc)
            raise
        except BaseException:
            self.breaker.record_neutral(probe)  # cancellation or a bug: no health signal
            raise
        self.breaker.record_success(probe)
        return result

    async def _attempt(self, url: URL, shown: str, decoder: Callable[[bytes, str], T]) -> T:
        if self._closed:
            raise UsageError("the vendor client is closed")
        async with self._slots:
            answered: Answered
            if isinstance(self.limiter, ArrivalTracking):
                answered = await self.limiter.start()
            else:
                await self.limiter.acquire()
                answered = not_tracked
            self._stats.total_requests += 1
            started = time.perf_counter()
            try:
                # headers_received: the vendor has counted this request by now
                resp = await self.transport.send(Request(url, self._headers, shown, answered))
            except VendorTimeout as exc:
                # Sent, then given up on: the vendor may still read and count it for late_s more.
                answered(exc.late_s)
                raise
            finally:
                answered()  # any other failure: the request can no longer reach the vendor
            self._stats.observe_latency(time.perf_counter() - started)
        self._stats.bytes_received += len(resp.body)
        retry_after = parse_retry_after(resp.header("Retry-After"))
        if resp.status == 429:
            self._stats.rate_limited_count += 1
            await self.limiter.on_rate_limited(retry_after)
            rate = self.limiter.current_rate
            self._events.emit(RateLimitedEvent(retry_after, rate.requests, rate.period, shown))
            raise status_error(resp.status, resp.body, shown, retry_after, resp.header("X-Request-Id"))
        await self.limiter.on_success()
        if resp.status != 200:
            raise status_error(resp.status, resp.body, shown, retry_after, resp.header("X-Request-Id"))
        if self._decoder is not None and len(resp.body) >= DECODE_IN_THREAD_BYTES:
            # A full page (50,000 bars, about 5 MB) takes tens of ms to decode and check; on a worker
            # thread the event loop keeps answering meanwhile (mdw serve's reads during a backfill).
            return await asyncio.get_running_loop().run_in_executor(self._decoder, decoder, resp.body, shown)
        return decoder(resp.body, shown)

    async def _paged(self, url: URL, decoder: Callable[[bytes, str], tuple[list[T], str | None]]) -> list[T]:
        """Every row of a cursor-paginated endpoint, following ``next_url`` to the end."""
        out: list[T] = []
        guard = PageGuard()
        next_url: URL | None = url
        while next_url is not None:
            guard.check(next_url)
            rows, link = await self._request(next_url, decoder)
            self._stats.pages += 1
            out.extend(rows)
            next_url = follow(self.base_url, link) if link else None
        return out

    # ---------------------------------------------------------------- aggregates

    async def aggregate_pages(
        self, ticker: str, timeframe: Timeframe | str, start_ms: int, end_ms: int, adjusted: bool = False,
        page_link: PageLink | None = None,
    ) -> AsyncIterator[BarBatch]:
        """Bars of ``[start_ms, end_ms)`` one non-empty page at a time, in time order (flat memory).

        Every ``next_url`` is followed (the next page is asked for only when the caller takes it);
        bars outside the range or repeated across pages are dropped. ``page_link``, when given, says
        whether the page just yielded came with a ``next_url``.

        Raises:
            VendorError: after retries are exhausted, on a 4xx, or while the breaker is open.
        """
        tf = Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe
        symbol = str(ticker)
        if end_ms <= start_ms:
            return
        adj = {"adjusted": _bool(adjusted)}
        url: URL | None = join(self.base_url, aggs_path(symbol, tf, start_ms, end_ms),
                               {**adj, "sort": "asc", "limit": str(self.page_limit)})
        guard = PageGuard()
        last_t = start_ms - 1

        def decode(body: bytes, shown: str) -> tuple[BarBatch, str | None]:
            batch, link = dec.decode_aggs(body, symbol, tf, shown)
            return dec.check_bars(batch, shown), link

        while url is not None:
            guard.check(url)
            raw, link = await self._request(url, decode)
            self._stats.pages += 1
            self._stats.bars_decoded += len(raw)
            self._stats.note(page_notes(raw, start_ms, end_ms))
            batch = clip(raw, last_t, end_ms)
            url = follow(self.base_url, link, adj) if link else None
            if len(batch):
                last_t = int(batch.t[-1])
                if page_link is not None:
                    page_link.more = url is not None
                yield batch

    async def aggregates(
        self, ticker: str, timeframe: Timeframe | str, start_ms: int, end_ms: int, adjusted: bool = False
    ) -> BarBatch:
        """All bars of ``[start_ms, end_ms)`` as one batch, every page joined (empty if none)."""
        tf = Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe
        pages = [p async for p in self.aggregate_pages(ticker, tf, start_ms, end_ms, adjusted)]
        return BarBatch.concat(pages) if pages else BarBatch.empty(str(ticker), tf)

    async def grouped_daily(
        self, day: date, market: AssetClass | str, adjusted: bool = False
    ) -> dict[str, BarBatch]:
        """One day's daily bar of every ticker in ``market``, keyed by ticker.

        ``t`` is the daily window start (00:00 ET for stocks, 00:00 UTC for crypto/fx) whatever
        stamp the vendor puts on the row (it documents the window end, 16:00 ET, for stocks).

        Raises:
            UsageError: the market has no grouped-daily endpoint.
        """
        asset = AssetClass(market)
        if asset not in _GROUPED_MARKETS:
            raise UsageError(f"no grouped daily bars for {asset.value}; use stocks, crypto or forex")
        params = {"adjusted": _bool(adjusted)}
        if asset is AssetClass.STOCKS:
            params["include_otc"] = "true"  # the vendor leaves OTC names out unless asked
        url = join(self.base_url, f"/v2/aggs/grouped/locale/{_GROUPED_MARKETS[asset]}/{day.isoformat()}",
                   params)
        rows = await self._request(url, dec.decode_grouped)
        self._stats.pages += 1
        self._stats.bars_decoded += len(rows)
        if not rows:
            return {}
        m = dec.bars_to_columns(rows)
        m[6] = local_midnight_ms(day, asset.tz)
        tf = Timeframe(1, "d")
        out: dict[str, BarBatch] = {}
        for i, row in enumerate(rows):
            if row.T not in out:  # one bar per ticker and day; a repeated row is ignored
                out[row.T] = dec.batch_from_matrix(row.T, tf, np.ascontiguousarray(m[:, i : i + 1]))
        return out

    # ---------------------------------------------------------------- reference data

    async def dividends(
        self, ticker: str, start: date | None = None, end: date | None = None
    ) -> list[Dividend]:
        """Cash dividends of ``ticker`` with ex-date in ``[start, end]`` (inclusive), oldest first."""
        params = {"ticker": str(ticker), "limit": "1000", "order": "asc", "sort": "ex_dividend_date"}
        if start:
            params["ex_dividend_date.gte"] = start.isoformat()
        if end:
            params["ex_dividend_date.lte"] = end.isoformat()
        return await self._paged(join(self.base_url, "/v3/reference/dividends", params), dec.decode_dividends)

    async def splits(self, ticker: str, start: date | None = None, end: date | None = None) -> list[Split]:
        """Splits of ``ticker`` executed in ``[start, end]`` (inclusive), oldest first."""
        params = {"ticker": str(ticker), "limit": "1000", "order": "asc", "sort": "execution_date"}
        if start:
            params["execution_date.gte"] = start.isoformat()
        if end:
            params["execution_date.lte"] = end.isoformat()
        return await self._paged(join(self.base_url, "/v3/reference/splits", params), dec.decode_splits)

    async def actions_listing(
        self, kind: acts.ActionKind, first: date, last: date, tickers: tuple[str, ...] = (), *,
        v1: bool = True,
    ) -> list[acts.Listed]:
        """Dividends or splits of ``tickers`` (every ticker when empty) dated ``first``..``last``,
        every page; ``v1``: ``/stocks/v1/...``, else the deprecated ``/v3/reference/...``."""
        url = join(self.base_url, acts.path(kind, v1), acts.params(kind, first, last, tickers, v1))
        decoder = acts.decode_dividends if kind == "dividends" else acts.decode_splits
        return await self._paged(url, decoder)

    async def tickers(
        self, market: str | None = None, search: str | None = None, active: bool = True, limit: int = 1000
    ) -> list[dict[str, object]]:
        """Reference rows of every matching ticker (``limit`` is the page size; all pages are read)."""
        params = {"active": _bool(active), "limit": str(min(1000, max(1, limit))), "order": "asc",
                  "sort": "ticker"}
        if market:
            params["market"] = market
        if search:
            params["search"] = search
        return await self._paged(join(self.base_url, "/v3/reference/tickers", params), dec.decode_dicts)

    async def ticker_listings(
        self, *, active: bool, as_of: date | None = None, market: str | None = None
    ) -> list[ref.TickerRow]:
        """Every ticker listed on ``as_of`` (``active``) or delisted before it, 1,000 a page."""
        params = {"active": _bool(active), "limit": "1000", "order": "asc", "sort": "ticker"}
        if as_of is not None:
            params["date"] = as_of.isoformat()
        if market:
            params["market"] = market
        return await self._paged(join(self.base_url, "/v3/reference/tickers", params), ref.decode_tickers)

    async def ticker_known(self, ticker: str) -> bool:
        """Whether the vendor's reference data knows ``ticker``, exactly as spelt (one request, cached).

        Ticker details answer for delisted tickers too; a plan refusal of the reference endpoint
        cannot tell, and counts as known (the aggregates answer stands then).
        """
        known = self._known.get(ticker)
        if known is None:
            url = join(self.base_url, f"/v3/reference/tickers/{quote(ticker, safe='')}", {})
            try:
                known = await self._request(url, _answered)
            except VendorNotFound:
                known = False
            except VendorPlanError:
                known = True
            self._known[ticker] = known
        return known

    async def ticker_search(self, text: str) -> list[str]:
        """The tickers the vendor's search finds for ``text`` (case-insensitive, one page of 100)."""
        params = {"search": text, "limit": "100", "order": "asc", "sort": "ticker"}
        url = join(self.base_url, "/v3/reference/tickers", params)
        rows, _ = await self._request(url, dec.decode_dicts)
        return [str(r["ticker"]) for r in rows if "ticker" in r]

    async def ticker_events(self, ident: str) -> ref.TickerEvents | None:
        """The ticker changes of the security a current ticker or composite FIGI names (None: 404)."""
        url = join(self.base_url, f"/vX/reference/tickers/{quote(ident, safe='')}/events",
                   {"types": "ticker_change"})
        try:
            return await self._request(url, ref.decode_events)
        except VendorNotFound:
            return None

    async def options_contracts(
        self, underlying: str, *, first: date | None = None, last: date | None = None,
        expired: bool = False, as_of: date | None = None,
    ) -> list[ref.ContractRow]:
        """Contracts of ``underlying`` expiring in ``[first, last]``, 1,000 a page.

        ``expired`` asks for those that expired before ``as_of`` (the vendor lists either the
        live ones or the expired ones, never both in one query).
        """
        params = {"underlying_ticker": underlying, "expired": _bool(expired), "limit": "1000",
                  "order": "asc", "sort": "ticker"}
        if first is not None:
            params["expiration_date.gte"] = first.isoformat()
        if last is not None:
            params["expiration_date.lte"] = last.isoformat()
        if as_of is not None:
            params["as_of"] = as_of.isoformat()
        return await self._paged(join(self.base_url, "/v3/reference/options/contracts", params),
                                 ref.decode_contracts)

    async def market_status_upcoming(self) -> list[dict[str, object]]:
        """Upcoming market holidays and early closes (the vendor's bare array)."""
        return await self._request(join(self.base_url, "/v1/marketstatus/upcoming"), dec.decode_list)
