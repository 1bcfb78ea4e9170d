"""The stream wired from settings: feeds, sink and the reconciler's REST client, for the CLI and serve."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, date, datetime

from mdw.backfill.fetch import VendorSource
from mdw.config import Settings
from mdw.errors import ConfigError
from mdw.store.base import Store
from mdw.stream.live import LiveBars
from mdw.stream.reconcile import Reconciler
from mdw.stream.runner import LiveStream
from mdw.stream.state import StreamState


@asynccontextmanager
async def open_stream(settings: Settings, store: Store, symbols: Sequence[str], url: str,
                      now_ms: Callable[[], int], *, reconcile: bool = True, live: LiveBars | None = None,
                      state: StreamState | None = None, client: VendorSource | None = None,
                      ) -> AsyncIterator[LiveStream]:
    """A :class:`LiveStream` over ``store``; with ``reconcile``, a REST client too (``client``, or one
    opened from the settings and closed on exit).

    Raises:
        ConfigError: no vendor API key.
    """
    key = settings.api_key
    if not key:
        raise ConfigError("the stream needs the vendor API key: set POLYGON_API_KEY")
    stream = LiveStream(store, url, key, symbols, now_ms, batch_ms=settings.stream_batch_ms, live=live,
                        state=state)
    async with AsyncExitStack() as stack:
        if reconcile:
            if client is None:
                from mdw.budget import shared_budget
                from mdw.polygon import PolygonClient

                limiter = await stack.enter_async_context(shared_budget(settings))
                client = await stack.enter_async_context(
                    PolygonClient.from_settings(settings, limiter=limiter, decode_off_loop=True))
            reconciler = Reconciler(store, client, stream.sink, stream.state, settings.limits, now_ms,
                                    settle_ms=settings.stream_settle_s * 1000,
                                    every_s=settings.stream_reconcile_s, tickers=symbols)
            stream.reconciler = reconciler
            stream.add_part("stream-reconcile", reconciler.run)
        yield stream


async def stream_symbols(settings: Settings, store: Store, today: date | None = None) -> list[str]:
    """What to stream: ``MDW_STREAM_SYMBOLS`` and the members of ``MDW_STREAM_UNIVERSE`` today (from the
    stored reference data); with neither, the active tracked symbols that hold 1m bars.

    Only stocks and crypto pairs stream (the vendor's ``AM`` and ``XA``); other members are left out.

    Raises:
        UsageError: an unknown universe, or no reference data stored.
    """
    out = [s.strip() for s in settings.stream_symbols.split(",") if s.strip()]
    if settings.stream_universe:
        from mdw.backfill import catalog

        day = today or datetime.now(UTC).date()
        view = await catalog.show(store, settings.stream_universe, day, day)
        out.extend(t for t in view.members if not t.startswith(("O:", "I:", "C:")))
    if out:
        return list(dict.fromkeys(out))
    return sorted(s.ticker for s in await store.symbols.all(active_only=True) if "1m" in s.timeframes)
