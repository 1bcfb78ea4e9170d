"""``mdw simulate``: run the Polygon-compatible simulator until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer

from mdw.cli.app import app, fail
from mdw.errors import MdwError, UsageError
from mdw.ranges import to_ms


def _parse_keys(values: list[str]) -> dict[str, str]:
    """``KEY`` or ``KEY:PLAN``; the simulator's settings check the plan (as ``MDW_PLAN`` reads)."""
    keys: dict[str, str] = {}
    for item in values:
        key, _, plan = item.partition(":")
        plan = plan or "unlimited"
        if not key:
            raise UsageError(f"invalid --key {item!r}; expected KEY or KEY:PLAN (free, starter, developer, "
                             "advanced, unlimited or history=5y,delay=15m,rate=unlimited)")
        keys[key] = plan
    return keys


def _parse_pairs(values: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        key_id, _, secret = item.partition(":")
        if not key_id or not secret:
            raise UsageError("invalid --flatfile-key; expected ID:SECRET")
        pairs[key_id] = secret
    return pairs


@app.command()
def simulate(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 = any free port).")] = 8765,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market and of the faults.")] = 42,
    key: Annotated[list[str] | None, typer.Option(
        help="API key as KEY[:free|unlimited]; repeatable. Default: test-key:unlimited.")] = None,
    rate_limit: Annotated[str | None, typer.Option(
        help="Request rate for every key, overriding the plans: 5/min, 100/s or unlimited.")] = None,
    window: Annotated[str, typer.Option(help="Rate-limit window: sliding (60 s) or fixed.")] = "sliding",
    retry_after: Annotated[bool, typer.Option(
        "--retry-after/--no-retry-after", help="Send Retry-After with 429s.")] = False,
    latency_ms: Annotated[float, typer.Option(min=0, help="Latency added to every request.")] = 0.0,
    jitter_ms: Annotated[float, typer.Option(min=0, help="Random extra latency, 0..N ms.")] = 0.0,
    fault_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of requests answered 5xx.")] = 0.0,
    reset_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of connections reset.")] = 0.0,
    hang_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of requests held --hang-s.")] = 0.0,
    hang_s: Annotated[float, typer.Option(min=0, help="How long a hung request is held.")] = 30.0,
    truncate_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of 200s cut short.")] = 0.0,
    status_error_rate: Annotated[float, typer.Option(
        min=0, max=1, help='Share of HTTP 200s with {"status": "ERROR"}.')] = 0.0,
    invalid_bar_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of bars with h < l.")] = 0.0,
    bad_value: Annotated[str, typer.Option(
        help="Malformed value for --bad-value-rate: null_price, nan_price, inf_price, string_price, "
             "null_volume, float_t, missing_t, huge_n, zero_price, negative_price, vw_outside, missing_n, "
             "duplicate_t, outside_range.")] = "null_price",
    bad_value_rate: Annotated[float, typer.Option(
        min=0, max=1, help="Share of aggregate bars served with the --bad-value malformed value.")] = 0.0,
    stall_rate: Annotated[float, typer.Option(
        min=0, max=1, help="Share of requests after which the whole server stalls --stall-ms "
        "(a blocking sleep, as a CPU-bound answer): requests sent meanwhile are counted late.")] = 0.0,
    stall_ms: Annotated[float, typer.Option(min=0, help="How long a stall blocks the server.")] = 0.0,
    now: Annotated[str | None, typer.Option(
        help="Data clock (YYYY-MM-DD or ISO time, UTC): no bars after it. Default: wall clock.")] = None,
    status: Annotated[str, typer.Option(help="Aggregates status: OK or DELAYED.")] = "OK",
    missing_key_status: Annotated[int, typer.Option(help="Status for a request without a key.")] = 401,
    cursor_adjusted: Annotated[bool, typer.Option(
        "--cursor-adjusted/--no-cursor-adjusted",
        help="Carry adjusted=false in the aggregates cursor.")] = True,
    # 8000 and 12000 are mdw.simulator.roster's MARKET_STOCKS and MAX_STOCKS (the simulator is
    # imported only when the command runs)
    stocks: Annotated[int, typer.Option(
        min=1, max=12_000,
        help="Stock securities in the universe: 8000 (the default) lists about 5,800 today, with "
             "delistings, renames, ETFs, OTC names and preferreds; 300 is the legacy names only.")] = 8_000,
    speed: Annotated[float | None, typer.Option(
        min=0, max=100_000, help="Run the data clock this many times faster than real time, from --now "
        "(or the wall clock); 60 = an hour of market per minute. Default: frozen at --now, else real time.",
    )] = None,
    stream_drop_rate: Annotated[float, typer.Option(
        min=0, max=1, help="Stream: share of minutes after which a connection is cut.")] = 0.0,
    stream_late_rate: Annotated[float, typer.Option(
        min=0, max=1, help="Stream: share of minute bars sent --stream-late-ms late.")] = 0.0,
    stream_late_ms: Annotated[int, typer.Option(min=0, help="Stream: how late a late bar is.")] = 120_000,
    stream_resend_rate: Annotated[float, typer.Option(
        min=0, max=1, help="Stream: share of minute bars sent provisional, then re-sent corrected.")] = 0.0,
    stream_wrong_rate: Annotated[float, typer.Option(
        min=0, max=1, help="Stream: share of minute bars sent with values REST never serves.")] = 0.0,
    stream_auth_fail: Annotated[bool, typer.Option(
        "--stream-auth-fail", help="Stream: answer every auth with auth_failed.")] = False,
    stream_delay_ms: Annotated[int, typer.Option(
        min=0, help="Stream: how far the /delayed/... feeds run behind.")] = 15 * 60_000,
    flatfile_key: Annotated[list[str] | None, typer.Option(
        help="Flat-file (S3) key pair as ID:SECRET; repeatable. "
             "Default: sim-flatfiles-key:sim-flatfiles-secret.")] = None,
    flatfile_deny: Annotated[list[str] | None, typer.Option(
        help="A market whose flat files every key is refused (403), e.g. us_stocks_sip; repeatable.")] = None,
    flatfile_cache_mb: Annotated[int, typer.Option(min=0, help="Generated flat files kept in memory.")] = 512,
    page_cache_mb: Annotated[int, typer.Option(
        min=0, help="Encoded aggregates pages kept in memory (MB; benchmarks ask for two page sets).")] = 256,
    flatfile_list_sizes: Annotated[str, typer.Option(
        help="Listing sizes: exact (generates the files listed) or estimate.")] = "exact",
) -> None:
    """Run the Polygon/Massive-compatible simulator (prints its base URL and a test key)."""
    from mdw.simulator import FaultConfig, SimConfig
    from mdw.simulator.config import StreamConfig

    try:
        if window not in ("sliding", "fixed"):
            raise UsageError(f"invalid --window {window!r}; expected sliding or fixed")
        if status not in ("OK", "DELAYED"):
            raise UsageError(f"invalid --status {status!r}; expected OK or DELAYED")
        if flatfile_list_sizes not in ("exact", "estimate"):
            raise UsageError(f"invalid --flatfile-list-sizes {flatfile_list_sizes!r}; "
                             "expected exact or estimate")
        if missing_key_status not in (400, 401):
            raise UsageError("invalid --missing-key-status; expected 401 or 400")
        faults = FaultConfig(error_rate=fault_rate, reset_rate=reset_rate, hang_rate=hang_rate, hang_s=hang_s,
                             truncate_rate=truncate_rate, status_error_rate=status_error_rate,
                             invalid_bar_rate=invalid_bar_rate, bad_value=bad_value,
                             bad_value_rate=bad_value_rate, stall_rate=stall_rate, stall_ms=stall_ms)
        config = SimConfig(
            seed=seed, keys=_parse_keys(key or ["test-key:unlimited"]), window=window,  # type: ignore[arg-type]
            rate_limit=rate_limit, retry_after=retry_after, latency_ms=latency_ms, jitter_ms=jitter_ms,
            faults=faults, now_ms=to_ms(now) if now else None, status=status,  # type: ignore[arg-type]
            missing_key_status=missing_key_status,  # type: ignore[arg-type]
            cursor_adjusted=cursor_adjusted, n_stocks=stocks, speed=speed,
            stream=StreamConfig(drop_rate=stream_drop_rate, late_rate=stream_late_rate,
                                late_ms=stream_late_ms, resend_rate=stream_resend_rate,
                                wrong_rate=stream_wrong_rate, auth_fail=stream_auth_fail,
                                delay_ms=stream_delay_ms),
            flatfile_keys=_parse_pairs(flatfile_key or ["sim-flatfiles-key:sim-flatfiles-secret"]),
            flatfile_denied=frozenset(flatfile_deny or ()), flatfile_cache_mb=flatfile_cache_mb,
            page_cache_mb=page_cache_mb,
            flatfile_list_sizes=flatfile_list_sizes,  # type: ignore[arg-type]
        )
    except MdwError as exc:
        fail(str(exc))
    import asyncio

    asyncio.run(_serve(config, host, port))


async def _serve(config: object, host: str, port: int) -> None:
    import asyncio

    from mdw.simulator import SimConfig, SimServer

    assert isinstance(config, SimConfig)
    server = SimServer(config, host, port)
    try:
        await server.start()
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    plan = config.keys[server.key]
    rate = config.plan_rate(plan)
    print(f"mdw simulator listening on {server.base_url}", flush=True)
    print(f"test key: {server.key} (plan {plan}, {rate})", flush=True)
    print(f"export POLYGON_BASE_URL={server.base_url} POLYGON_API_KEY={server.key}", flush=True)
    print(f"stream: {server.ws_url}/stocks, {server.ws_url}/crypto (delayed: {server.ws_url}/delayed/...)",
          flush=True)
    key_id, secret = server.flatfile_key
    print(f"export MDW_FLATFILES_ENDPOINT={server.base_url} MDW_FLATFILES_KEY_ID={key_id} "
          f"MDW_FLATFILES_SECRET={secret}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
        print("mdw simulator stopped", file=sys.stderr, flush=True)
