"""The FastAPI application of ``mdw serve``: routes, JSON errors, metrics and a supervised lifespan.

The lifespan opens the store and the vendor client (unless they are given), starts the side
tasks (scheduler, alert delivery, the vendor-history sampler) under one stop event, and on
shutdown asks running backfills to stop at a safe point before closing everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mdw import __version__, calendar_cache
from mdw.backfill import run_backfill
from mdw.backfill.fileplan import CostModel
from mdw.backfill.liveness import reap_abandoned
from mdw.backfill.plan import BackfillSpec
from mdw.backfill.report import RunReport
from mdw.backfill.settle_window import SettleWindow
from mdw.budget import shared_budget
from mdw.clock import SYSTEM_CLOCK, Clock, sleep_until
from mdw.config import Settings
from mdw.dashboard import mount_dashboard
from mdw.domain import MINUTE_MS
from mdw.errors import UsageError, VendorAuthError
from mdw.logs import get_logger
from mdw.polygon import BreakerState, BreakerTransitionEvent, PolygonClient, VendorEvent
from mdw.service.alerts import Alerter
from mdw.service.docs_pages import mount_docs
from mdw.service.errors import install_error_handlers
from mdw.service.leader import LeaderLock, lock_for
from mdw.service.metrics import ServiceMetrics, StreamCollector
from mdw.service.openapi import install_openapi
from mdw.service.routes_bars import router as bars_router
from mdw.service.routes_data import router as data_router
from mdw.service.routes_ops import router as ops_router
from mdw.service.routes_runs import router as runs_router
from mdw.service.routes_stream import router as stream_router
from mdw.service.routes_universes import router as universes_router
from mdw.service.runs import DistributedLauncher, LiveProgress, RunManager, Runner
from mdw.service.scheduler import Scheduler
from mdw.service.state import ServiceState, VendorHistory
from mdw.store import open_store
from mdw.store.base import RunKind, Store
from mdw.stream.runner import LiveStream, stream_url
from mdw.stream.service import open_stream, stream_symbols

log = get_logger(__name__)
_RESTART_MS = 5_000


class TimingMiddleware:
    """Observes every request's latency under its route template (never the raw path)."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], ServiceMetrics | None]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            metrics = self.metrics()
            if metrics is not None:
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"
                metrics.http_latency.labels(scope["method"], path, str(status)).observe(
                    time.perf_counter() - started)


def make_runner(store: Store, client: PolygonClient | None, settings: Settings, clock: Clock) -> Runner:
    """How the service runs a spec: the backfill engine, recording under the id it handed out."""

    from mdw.flatfiles.s3 import source_from

    files = source_from(settings)

    async def run(spec: BackfillSpec, run_id: str, progress: LiveProgress, stop: asyncio.Event) -> RunReport:
        if client is None:
            raise UsageError("no vendor API key is configured (POLYGON_API_KEY)")
        return await run_backfill(store, client, spec, progress=progress, stop=stop, run_id=run_id,
                                  now=clock.now_ms(), track=spec.kind is not RunKind.SCHEDULED,
                                  rate_limit=str(settings.rate_limit), files=files,
                                  cost=CostModel(settings.rate_limit), limits=settings.limits,
                                  settle_window=settle_window(settings))

    return run


def settle_window(settings: Settings) -> SettleWindow:
    """The settle pass's window from the settings (MDW_SETTLE_SESSIONS, MDW_SETTLE_AFTER)."""
    return SettleWindow.parse(settings.settle_sessions, settings.settle_after)


def _on_vendor_event(alerts: Alerter) -> Callable[[VendorEvent], None]:
    def handle(event: VendorEvent) -> None:
        if not isinstance(event, BreakerTransitionEvent):
            return
        if event.to_state is BreakerState.OPEN and event.from_state is BreakerState.CLOSED:
            alerts.raise_alert("breaker_open", "critical",
                               f"vendor circuit breaker opened; reads are served stale, scheduled runs skip "
                               f"(next probe in {event.cooldown_s:.0f}s)",
                               from_state=str(event.from_state), to_state=str(event.to_state),
                               cooldown_s=event.cooldown_s)
        elif event.to_state is BreakerState.CLOSED:
            alerts.raise_alert("breaker_closed", "info",
                               "vendor circuit breaker closed; the vendor answers again",
                               from_state=str(event.from_state), to_state=str(event.to_state))

    return handle


async def _supervise(
    name: str, body: Callable[[], Awaitable[None]], stop: asyncio.Event, clock: Clock
) -> None:
    """Run a side task; if it fails, log it loudly and restart it (the service itself stays up)."""
    while not stop.is_set():
        try:
            await body()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("side task failed; restarting it", action="service.task_failed", task=name)
            await sleep_until(clock, clock.now_ms() + _RESTART_MS, stop)


async def _sample_vendor(state: ServiceState, stop: asyncio.Event) -> None:
    clock = state.clock
    while not stop.is_set():
        stats = state.stats()
        if stats is not None:
            state.history.record(stats, clock.now_ms())
        now = clock.now_ms()
        await sleep_until(clock, now - now % MINUTE_MS + MINUTE_MS, stop)


async def _open_stream(stack: contextlib.AsyncExitStack, settings: Settings, state: ServiceState,
                       now_ms: Callable[[], int]) -> LiveStream | None:
    """The stream inside the service (``MDW_STREAM``), reconciled through the service's client."""
    if state.client is None:
        log.warning("stream off: no vendor API key configured", action="stream.off")
        return None
    symbols = await stream_symbols(settings, state.store)
    if not symbols:
        log.warning("stream off: no tracked symbol holds 1m bars and MDW_STREAM_SYMBOLS is empty",
                    action="stream.off")
        return None
    live_stream = await stack.enter_async_context(open_stream(
        settings, state.store, symbols, stream_url(settings), now_ms, live=state.live, client=state.client))
    state.stream = live_stream
    state.metrics.registry.register(StreamCollector(lambda: live_stream.state))
    return live_stream


async def _run_stream(live_stream: LiveStream, alerts: Alerter, stop: asyncio.Event) -> None:
    """The stream until ``stop``; a key the vendor refuses ends it with an alert, not a restart
    every few seconds (other failures are the supervisor's: logged and restarted)."""
    try:
        await live_stream.run(stop)
    except VendorAuthError as exc:
        log.error("stream stopped: the vendor refused the key", action="stream.auth_failed", error=str(exc))
        alerts.raise_alert("stream_auth_failed", "critical",
                           "the vendor refused the API key on the stream; it is stopped until restart",
                           error=str(exc))


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    client: PolygonClient | None = None,
    clock: Clock | None = None,
    scheduler: bool | None = None,
    lock: LeaderLock | None = None,
    distributed: DistributedLauncher | None = None,
    tick_ms: int = MINUTE_MS,
    stream_clock: Callable[[], int] | None = None,
) -> FastAPI:
    """Build the app; the store and client are opened by the lifespan unless given (then not closed).

    The calendar reads its NYSE sessions through the disk cache from here on.

    Args:
        settings: service settings (auth mode, webhook, schedule, thresholds ...).
        store: an open store to use instead of opening ``settings.database_url``.
        client: a vendor client to use instead of one built from the settings.
        clock: the scheduler's clock (tests pass a :class:`~mdw.clock.ManualClock`).
        scheduler: run the scheduler (default: ``settings.scheduler``; needs a vendor client).
        lock: the leader lock (default: by database URL: PostgreSQL advisory lock or a file lock).
        distributed: the launcher for ``distributed: true`` backfills (501 without one).
        tick_ms: how often the scheduler looks for due jobs.
        stream_clock: the stream's clock (stamps and reconciliation; default: ``clock``), with
            ``settings.stream``.
    """
    calendar_cache.install()
    holder: dict[str, ServiceState] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            db = store
            if db is None:
                db = await open_store(settings.database_url)
                stack.push_async_callback(db.close)
            # Runs whose process died (kill -9, reboot) say `running` until someone looks: look now.
            await reap_abandoned(db)
            vendor = client
            if vendor is None and settings.api_key:
                # The key's one budget on the host, shared with CLI backfills and other processes.
                limiter = await stack.enter_async_context(shared_budget(settings))
                vendor = await stack.enter_async_context(
                    PolygonClient.from_settings(settings, limiter=limiter, decode_off_loop=True))
            clk = clock or SYSTEM_CLOCK
            metrics = ServiceMetrics(lambda: vendor.stats() if vendor is not None else None)
            alerts = Alerter(settings.webhook_url, metrics, clk)
            runs = RunManager(make_runner(db, vendor, settings, clk), clk, metrics, alerts)
            state = ServiceState(settings, db, vendor, clk, metrics, alerts, runs, VendorHistory(),
                                 clk.now_ms(), distributed=distributed)
            if vendor is not None:
                stack.callback(vendor.subscribe(_on_vendor_event(alerts)))
            stop = asyncio.Event()
            bodies: dict[str, Callable[[], Awaitable[None]]] = {
                "alerts": lambda: alerts.run(stop), "vendor-sampler": lambda: _sample_vendor(state, stop)}
            wanted = settings.scheduler if scheduler is None else scheduler
            if wanted and vendor is not None:
                sched = Scheduler(
                    store=db, runs=runs, clock=clk, lock=lock or lock_for(settings.database_url),
                    metrics=metrics, alerts=alerts, breaker=state.breaker,
                    interval_min=settings.schedule_interval_min, delay_min=settings.daily_delay_min,
                    stale_after_s=settings.stale_after_s, tick_ms=tick_ms,
                    reference=_reference_refresh(db, vendor), settle=settle_window(settings))
                state.scheduler = sched
                bodies["scheduler"] = lambda: sched.run(stop)
            elif wanted:
                log.warning("scheduler off: no vendor API key configured", action="scheduler.off")
            if settings.stream:
                live_stream = await _open_stream(stack, settings, state, stream_clock or clk.now_ms)
                if live_stream is not None:
                    bodies["stream"] = lambda: _run_stream(live_stream, alerts, stop)
            holder["state"] = app.state.mdw = state
            tasks = [asyncio.create_task(_supervise(n, b, stop, clk), name=f"mdw-{n}")
                     for n, b in bodies.items()]
            try:
                yield
            finally:
                stop.set()
                await runs.shutdown()
                _, pending = await asyncio.wait(tasks, timeout=10) if tasks else (set(), set())
                for task in pending:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                holder.pop("state", None)

    app = FastAPI(
        title="mdw", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
        description="Market data warehouse: bars adjusted on read, corporate actions, coverage, "
                    "backfill runs, and the operations endpoints. "
                    "Errors are JSON `{\"error\": {\"code\", \"message\"}}`.",
    )
    install_error_handlers(app)
    install_openapi(app, auth=settings.auth)
    for router in (bars_router, data_router, runs_router, ops_router, universes_router, stream_router):
        app.include_router(router)
    mount_dashboard(app)
    mount_docs(app)  # /docs and /redoc from local assets (no CDN)
    metrics_of: Callable[[], ServiceMetrics | None] = lambda: (  # noqa: E731 - read at request time
        holder["state"].metrics if "state" in holder else None)
    app.add_middleware(TimingMiddleware, metrics=metrics_of)
    return app


__all__ = ["TimingMiddleware", "create_app", "make_runner"]


def _reference_refresh(store: Store, client: PolygonClient) -> Callable[[date], Awaitable[object]]:
    """The scheduler's daily reference refresh (tickers, renames, options universes' chains)."""
    async def refresh(day: date) -> object:
        from mdw.backfill.catalog import refresh_reference

        return await refresh_reference(store, client, day)

    return refresh
