"""The Polygon-compatible HTTP server: middleware (faults, auth, rate limit, stats) and lifecycle.

Order per request, outermost first: latency; outage; the seeded request fault (5xx, reset, hang,
status-ERROR; truncation is applied to the finished response); auth; the per-key rate limit; a
seeded stall of the whole event loop (``stall_rate``); the endpoint. ``/_sim/*`` skips all of it
and needs no key, and so do the WebSocket endpoints (``/stocks``, ``/crypto``, ``/delayed/...``:
they authenticate in the conversation, see ``ws.py``), which share the port and the data clock
with REST.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date

from aiohttp import web

from mdw.errors import ConfigError
from mdw.simulator import encode as enc
from mdw.simulator import routes_s3, ws
from mdw.simulator.clock import SimClock
from mdw.simulator.config import FaultConfig, SimConfig, StreamConfig
from mdw.simulator.faults import FaultInjector
from mdw.simulator.flatfiles import FlatFiles
from mdw.simulator.limiter import RateLimiter, Stats
from mdw.simulator.market import Market
from mdw.simulator.responses import (
    ENTITLEMENT_TEXT,
    RATE_LIMIT_TEXT,
    error,
    json_response,
    not_authorized,
    proxy_error,
)
from mdw.simulator.state import PLAN, STATE, PageCache, SimState
from mdw.simulator.stream import StreamHub
from mdw.simulator.wire_faults import wire_fault

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _api_key(request: web.Request) -> str | None:
    key = request.query.get("apiKey")
    if key:
        return key
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


@web.middleware
async def _vendor_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/_sim/") or ws.is_stream_path(request.path):
        return await handler(request)
    st = request.app[STATE]
    route = request.match_info.route
    st.stats.request(route.name or "unknown")
    st.stats.in_flight += 1
    st.stats.max_in_flight = max(st.stats.max_in_flight, st.stats.in_flight)
    try:
        if routes_s3.is_s3_path(request.path):
            blocked = await routes_s3.s3_guard(request, st)
            response = blocked if blocked is not None else await handler(request)
        else:
            response = await _guarded(request, handler, st)
    finally:
        st.stats.in_flight -= 1
    st.stats.by_status[str(response.status)] += 1
    return response


async def _guarded(request: web.Request, handler: Handler, st: SimState) -> web.StreamResponse:
    blocked, fault = await wire_fault(request, st, lambda: proxy_error(st.faults.error_status()))
    if blocked is not None:
        return blocked
    if fault == "status_error":
        st.stats.faults["status_error"] += 1
        return json_response({"status": "ERROR", "request_id": enc.request_id(),
                              "error": "Internal server error, please try again"})
    if request.match_info.http_exception is not None:
        return await handler(request)  # 404/405 for unknown paths, like the vendor's router
    key = _api_key(request)
    if key is None:
        return error(st.config.missing_key_status, "API Key was not provided")
    plan = st.config.keys.get(key)
    if plan is None:
        return error(401, "Unknown API Key")
    rate = st.config.plan_rate(plan)
    st.stats.keyed(key, None if rate.unlimited else rate.period)
    wait = st.limiter.acquire(key, rate)
    if wait is not None:
        st.stats.rate_limited += 1
        headers = {"Retry-After": str(max(1, int(wait + 0.999)))} if st.config.retry_after else None
        return error(429, RATE_LIMIT_TEXT, headers)
    st.stats.served(key)
    if st.faults.stall():
        st.stats.faults["stall"] += 1
    request[PLAN] = plan
    route = request.match_info.route.name
    if route is not None and route in st.config.not_entitled:
        return not_authorized(ENTITLEMENT_TEXT)
    response = await handler(request)
    if fault == "truncate" and isinstance(response, web.Response) and response.body:
        st.stats.faults["truncate"] += 1
        body = bytes(response.body)  # type: ignore[arg-type]
        response.body = body[: max(1, len(body) // 2)]
    return response


async def _sim_stats(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    return json_response({**st.stats.snapshot(), "stream": st.hub.snapshot()})


async def _json_object(request: web.Request) -> dict[str, object]:
    data = await request.json()
    if not isinstance(data, dict):
        raise ConfigError("expected a JSON object")
    return data


def _number(data: dict[str, object], name: str) -> float | None:
    """``data[name]`` as a number (None when absent).

    Raises:
        ConfigError: it is there but not a number.
    """
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number")
    return value


async def _sim_clock_get(request: web.Request) -> web.StreamResponse:
    return json_response(request.app[STATE].clock.to_dict())


async def _sim_clock_post(request: web.Request) -> web.StreamResponse:
    """``{"now_ms": ..., "speed": ...}`` sets the clock; ``{"advance_ms": ...}`` moves it on."""
    clock = request.app[STATE].clock
    try:
        data = await _json_object(request)
        unknown = sorted(set(data) - {"now_ms", "speed", "advance_ms"})
        if unknown:
            raise ConfigError(f"unknown clock field(s): {', '.join(unknown)}")
        advance, now, speed = _number(data, "advance_ms"), _number(data, "now_ms"), _number(data, "speed")
        if advance is not None and now is not None:
            raise ConfigError("give now_ms or advance_ms, not both")
        if advance is not None:
            now = clock.now_ms() + int(advance)
        clock.set(None if now is None else int(now), None if speed is None else float(speed))
    except (ValueError, TypeError, ConfigError) as exc:
        return error(400, f"bad clock setting: {exc}")
    return json_response(clock.to_dict())


async def _sim_stream_get(request: web.Request) -> web.StreamResponse:
    return json_response(request.app[STATE].hub.config.to_dict())


async def _sim_stream_post(request: web.Request) -> web.StreamResponse:
    hub = request.app[STATE].hub
    try:
        hub.set_config(StreamConfig.from_dict(await _json_object(request), hub.config))
    except (ValueError, TypeError, ConfigError) as exc:
        return error(400, f"bad stream config: {exc}")
    return json_response(hub.config.to_dict())


async def _sim_stream_drop(request: web.Request) -> web.StreamResponse:
    return json_response({"dropped": request.app[STATE].hub.drop_all()})


async def _close_streams(app: web.Application) -> None:
    await app[STATE].hub.close()


async def _sim_faults_get(request: web.Request) -> web.StreamResponse:
    return json_response(request.app[STATE].faults.config.to_dict())


async def _sim_faults_post(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    try:
        data = await request.json()
        if not isinstance(data, dict):
            raise ConfigError("expected a JSON object of fault fields")
        st.faults.set(FaultConfig.from_dict(data, st.faults.config))
    except (ValueError, TypeError, ConfigError) as exc:
        return error(400, f"bad fault config: {exc}")
    return json_response(st.faults.config.to_dict())


async def _sim_reset(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    st.stats.reset()
    st.limiter.reset()
    return json_response({"status": "OK"})


async def _sim_flatfiles(request: web.Request) -> web.StreamResponse:
    """GET: the flat-file switches. POST ``{"replace": [days], "deny": [markets], "warm": [keys]}``
    publishes new revisions, sets the refused markets, or generates files ahead (their sizes)."""
    files = request.app[STATE].flatfiles
    sizes: dict[str, int] = {}
    if request.method == "POST":
        try:
            data = await request.json()
            if not isinstance(data, dict) or set(data) - {"replace", "deny", "warm"}:
                raise ConfigError("expected a JSON object with 'replace' (ISO days), 'deny' (markets) "
                                  "and/or 'warm' (keys)")
            days = [date.fromisoformat(str(d)) for d in data.get("replace", [])]
            deny = [str(m) for m in data["deny"]] if "deny" in data else None
            warm = [files.lookup(str(k)) for k in data.get("warm", [])]
            if any(w is None for w in warm):
                raise ConfigError("'warm' names a key that is not published")
        except (ValueError, TypeError, ConfigError) as exc:
            return error(400, f"bad flat-file switch: {exc}")
        files.replace(days)
        if deny is not None:
            files.deny(deny)
        for found in warm:
            assert found is not None
            sizes[found[0].key(found[1])] = len(await files.body(*found))
    return json_response({"revisions": {d.isoformat(): r for d, (r, _) in sorted(files.revisions.items())},
                          "denied": sorted(files.denied), "generated": files.generated, "sizes": sizes})


def make_app(config: SimConfig, market: Market | None = None) -> web.Application:
    """The aiohttp application of one simulator."""
    from mdw.simulator import routes_aggs, routes_ref, routes_universe

    if market is None:
        clock = SimClock(config.now_ms, config.speed)
        market = Market(config.seed, now_ms=config.now_ms, n_stocks=config.n_stocks,
                        n_crypto=config.n_crypto, n_fx=config.n_fx, clock=clock)
    else:
        clock = market.clock or SimClock(market.fixed_now_ms)
    state = SimState(
        config=config,
        market=market,
        flatfiles=FlatFiles(market, dashed_pairs=config.flatfile_dashed_pairs,
                            cache_bytes=config.flatfile_cache_mb * 2**20,
                            list_sizes=config.flatfile_list_sizes),
        limiter=RateLimiter(config.window),
        stats=Stats(),
        faults=FaultInjector(config.seed, config.faults),
        clock=clock,
        hub=StreamHub(market, clock, config.stream, config.seed),
        public_base=config.public_base,
        pages=PageCache(config.page_cache_mb * 2**20),
    )
    state.flatfiles.deny(sorted(config.flatfile_denied))
    state.market.listings()  # the roster is built here, so the first request does not wait for it
    app = web.Application(middlewares=[_vendor_middleware], handler_args={"max_field_size": 65536})
    app[STATE] = state
    app.add_routes(routes_aggs.routes)
    app.add_routes(routes_ref.routes)
    ws.add_routes(app)
    app.add_routes(routes_s3.routes)
    app.on_shutdown.append(_close_streams)
    app.add_routes(routes_universe.routes)
    app.router.add_get("/_sim/stats", _sim_stats)
    app.router.add_get("/_sim/clock", _sim_clock_get)
    app.router.add_post("/_sim/clock", _sim_clock_post)
    app.router.add_get("/_sim/stream", _sim_stream_get)
    app.router.add_post("/_sim/stream", _sim_stream_post)
    app.router.add_post("/_sim/stream/drop", _sim_stream_drop)
    app.router.add_get("/_sim/faults", _sim_faults_get)
    app.router.add_post("/_sim/faults", _sim_faults_post)
    app.router.add_post("/_sim/reset", _sim_reset)
    app.router.add_get("/_sim/flatfiles", _sim_flatfiles)
    app.router.add_post("/_sim/flatfiles", _sim_flatfiles)
    return app


class SimServer:
    """A running simulator (in-process aiohttp server)."""

    def __init__(self, config: SimConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.host, self.port = host, port
        self.app = make_app(config)
        self._runner: web.AppRunner | None = None

    @property
    def state(self) -> SimState:
        return self.app[STATE]

    @property
    def market(self) -> Market:
        return self.state.market

    @property
    def key(self) -> str:
        """A valid key: the first configured one."""
        return next(iter(self.config.keys))

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> SimServer:
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        if runner.addresses:  # port 0 asks the OS for a free port: read back the one it gave
            self.port = int(runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @property
    def clock(self) -> SimClock:
        """The data clock REST and the stream share (``set``/``advance`` it in tests)."""
        return self.state.clock

    @property
    def hub(self) -> StreamHub:
        return self.state.hub

    @property
    def ws_url(self) -> str:
        """The stream's base URL: append ``/stocks`` or ``/crypto`` (``/delayed/...`` for delayed)."""
        return f"ws://{self.host}:{self.port}"

    def stats(self) -> dict[str, object]:
        """Same content as ``GET /_sim/stats``."""
        return {**self.state.stats.snapshot(), "stream": self.state.hub.snapshot()}

    def reset_stats(self) -> None:
        """Forget the counters and every key's rate-limit window."""
        self.state.stats.reset()
        self.state.limiter.reset()

    @property
    def flatfiles(self) -> FlatFiles:
        """The flat files (catalog, ground truth, ``replace`` and ``deny`` switches)."""
        return self.state.flatfiles

    @property
    def flatfile_key(self) -> tuple[str, str]:
        """A valid flat-file key pair (access key id, secret): the first configured one."""
        return next(iter(self.config.flatfile_keys.items()))

    def set_faults(self, faults: FaultConfig) -> None:
        self.state.faults.set(faults)

    def set_stream(self, stream: StreamConfig) -> None:
        """Replace the stream's timing and fault settings (applies from the next minute on)."""
        self.state.hub.set_config(stream)

    @property
    def faults(self) -> FaultConfig:
        return self.state.faults.config


@asynccontextmanager
async def start_simulator(config: SimConfig | None = None, host: str = "127.0.0.1",
                          port: int = 0) -> AsyncIterator[SimServer]:
    """Run a simulator for the duration of the block (port 0 = a free port)."""
    server = SimServer(config or SimConfig(), host, port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
