"""The main job's commands: backfill, update, export, corporate-actions, status and demo.

Each command parses flags, loads settings and calls :func:`mdw.cli.app.run` once; the work lives
in :mod:`mdw.backfill`. Exit codes: 0 all ok, 1 some series failed, 2 usage or configuration
error (one line), 130 interrupted (SIGINT/SIGTERM: fetched data is committed, the partial report
is printed).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from mdw.cli.app import app, fail, run, settings_from, writable_store
from mdw.errors import UsageError
from mdw.ranges import from_ms, parse_when, to_ms

if TYPE_CHECKING:
    import asyncio

    from mdw.backfill.demo import DemoResult  # the demo imports the simulator: only inside `mdw demo`
    from mdw.backfill.plan import BackfillSpec, Plan
    from mdw.backfill.report import RunReport
    from mdw.config import RateLimit, Settings
    from mdw.store.base import Store

T = TypeVar("T")
Symbols = Annotated[
    str, typer.Option("--symbols", "-s", help="Comma-separated tickers: AAPL,X:BTCUSD,BTC-USD")
]
DbUrl = Annotated[str | None, typer.Option("--database-url", help="sqlite:///path.db or postgresql://...")]
Rate = Annotated[str | None, typer.Option("--rate-limit", help="Your plan's rate: 5/min, 100/s, unlimited")]
BaseUrl = Annotated[str | None, typer.Option("--base-url", help="Vendor base URL (the simulator's in tests)")]
Config = Annotated[str | None, typer.Option("--config", help="An mdw.toml file")]
ReportFile = Annotated[Path | None, typer.Option("--report", help="Also write the JSON run report here")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan and request nothing")]


def _settings(
    config: str | None, db: str | None, rate: str | None = None, base: str | None = None
) -> Settings:
    return settings_from(config, database_url=db, rate_limit=rate, polygon_base_url=base)


def _checked(build: Callable[[], T]) -> T:
    """Parse flags before anything is opened or created: a bad one exits 2 with one line."""
    try:
        return build()
    except UsageError as exc:
        fail(str(exc))


def _check_report(path: Path | None) -> None:
    """``--report`` must be writable before a run starts (it is written when the run ends)."""
    from mdw.backfill.report import cannot_write_in

    if path is None:
        return
    if path.is_dir():
        fail(f"--report {str(path)!r} is a directory; give a file name")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    why = "not a directory" if not parent.is_dir() else cannot_write_in(parent)
    if why:
        fail(f"--report {str(path)!r}: cannot create files in {str(parent)!r} ({why})")


def _check_spec(spec: BackfillSpec) -> BackfillSpec:
    """The spec's range must be well formed for every asset class it names."""
    for tk in spec.tickers:
        spec.wanted(tk.asset_class)
    return spec


def _day_or_ms(text: str) -> date | int:
    value = parse_when(text)
    if isinstance(value, datetime):
        return to_ms(value)
    return value


@asynccontextmanager
async def _store(settings: Settings, *, existing: bool = False, read_only: bool = False
                 ) -> AsyncIterator[Store]:
    """The store, closed on exit; ``existing``: refuse a database that is not there; ``read_only`` (the
    read commands): open it read-only, so reading works on a full disk."""
    from mdw.store import open_store, require_existing

    if existing:
        require_existing(settings.database_url)
    store = await open_store(settings.database_url, read_only=read_only)
    try:
        yield store
    finally:
        await store.close()


def _install_stop() -> asyncio.Event:
    """SIGINT/SIGTERM set the stop event once; a second signal interrupts at once."""
    import asyncio

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def handler(sig: signal.Signals) -> None:
        print(f"mdw: {sig.name}: stopping; committing what was fetched", file=sys.stderr)
        stop.set()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(s)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handler, sig)
    return stop


def _print_plan(plan: Plan, rate: RateLimit, report: Path | None) -> None:
    from rich.table import Table

    from mdw.backfill.progress import stdout_console
    from mdw.backfill.report import write_json_atomic

    console = stdout_console()
    table = Table(title="backfill plan (dry run: nothing was requested)")
    table.add_column("series")
    table.add_column("requests", justify="right")
    for label, count in plan.per_series().items():
        table.add_row(label, str(count))
    console.print(table)
    seconds = rate.seconds_for(plan.request_count)
    estimate = plan.estimate()
    console.print(f"total requests: {plan.request_count}")
    console.print(f"how sure: {estimate.describe()}")
    console.print(f"local derive tasks: {len(plan.derives)}")
    console.print(f"estimated time at {rate}: {seconds:.0f} s (plus network latency)")
    if plan.costs:
        costs = Table(title="flat files or REST, per dataset (days holding a gap; estimated seconds)")
        for col in ("dataset", "days", "from files", "file MB", "file s", "REST requests", "REST s"):
            costs.add_column(col, justify="left" if col == "dataset" else "right")
        for c in plan.costs:
            costs.add_row(c.dataset, str(c.days), str(c.chosen), f"{c.file_bytes / 1e6:,.1f}",
                          f"{c.file_s:,.1f}", f"{c.rest_requests:,.0f}", f"{c.rest_s:,.1f}")
        console.print(costs)
        console.print(f"flat files to download: {len(plan.files)} ({plan.file_bytes / 1e6:,.1f} MB)")
    for note in plan.notes:
        console.print(f"note: {note}")
    if report:
        write_json_atomic(
            report,
            {
                "dry_run": True,
                "requests": plan.request_count,
                "estimate": estimate.to_dict(),
                "per_series": plan.per_series(),
                "estimated_s": seconds,
                "rate_limit": str(rate),
                "plan": [r.to_dict() for r in plan.requests],
                "files": [f.to_dict() for f in plan.files],
                "costs": [c.to_dict() for c in plan.costs],
                "notes": list(plan.notes),
            },
        )


def _finish(report: RunReport, path: Path | None) -> int:
    """Print the report, then write its JSON; a file that cannot be written is one line and exit 1."""
    from mdw.backfill.progress import stdout_console
    from mdw.backfill.report import render, write_json_atomic

    render(report, stdout_console())
    if path:
        try:
            write_json_atomic(path, report.to_dict())
        except OSError as exc:  # the run's data is committed; only this copy of the report is lost
            fail(f"the run finished ({report.status}) but its report could not be written to "
                 f"{str(path)!r}: {exc.strerror or exc}", 1)
    return report.exit_code


async def _execute(
    settings: Settings, spec: BackfillSpec | list[BackfillSpec], dry_run: bool, report_path: Path | None,
    *, settle: bool = False,
) -> int:
    from mdw.backfill.fileplan import CostModel
    from mdw.backfill.plan import BackfillSpec
    from mdw.backfill.progress import make_progress
    from mdw.backfill.runner import plan_only, run_backfill
    from mdw.backfill.settle_window import SettleWindow
    from mdw.backfill.tickers import check_tickers
    from mdw.budget import shared_budget
    from mdw.flatfiles.s3 import source_from
    from mdw.polygon import PolygonClient

    files = source_from(settings)
    cost = CostModel(settings.rate_limit)
    if dry_run:
        from mdw.store import missing_database

        why = missing_database(settings.database_url)
        if why:  # plan against an empty warehouse without creating the file
            print(f"{why} yet: planned as an empty warehouse", file=sys.stderr)
            settings = settings.model_copy(update={"database_url": "sqlite://"})
    specs = [spec] if isinstance(spec, BackfillSpec) else spec
    tickers = [tk for one in specs for tk in one.tickers]
    async with _store(settings) as store:
        if dry_run:
            await check_tickers(tickers, store, None)
            plan = await plan_only(store, spec, files=files, cost=cost, limits=settings.limits)
            _print_plan(plan, settings.rate_limit, report_path)
            return 0
        stop = _install_stop()
        # One budget per key on the host: serve, its scheduler and other backfills share it.
        async with shared_budget(settings) as limiter, \
                PolygonClient.from_settings(settings, limiter=limiter) as client:
            await check_tickers(tickers, store, client)
            with make_progress() as progress:
                report = await run_backfill(
                    store, client, spec, progress=progress, stop=stop, rate_limit=str(settings.rate_limit),
                    files=files, cost=cost, settle=settle, limits=settings.limits,
                    settle_window=SettleWindow.parse(settings.settle_sessions, settings.settle_after),
                )
    return _finish(report, report_path)


def _require_key(settings: Settings, dry_run: bool) -> None:
    if not dry_run and not settings.api_key:
        fail("no vendor API key: set POLYGON_API_KEY (or polygon_api_key in mdw.toml)")


def _exit(code: int) -> None:
    if code:
        raise typer.Exit(code)


OptSymbols = Annotated[
    str | None, typer.Option("--symbols", "-s", help="Comma-separated tickers: AAPL,X:BTCUSD,BTC-USD")
]
UniverseName = Annotated[str | None, typer.Option(
    "--universe", "-u", help="A universe defined with `mdw universe define` instead of --symbols")]


def _universe_days(start: str, end: str) -> tuple[date, date]:
    """A universe is resolved per day: its range is whole days."""
    first, last = parse_when(start), parse_when(end)
    if isinstance(first, datetime) or isinstance(last, datetime):
        raise UsageError("--universe takes whole days: --start and --end as YYYY-MM-DD (or 'today')")
    return first, last


async def _universe_spec(
    settings: Settings, name: str, template: BackfillSpec, dry_run: bool, *, refresh_after_days: int = 0,
) -> BackfillSpec:
    """Resolve universe ``name`` over the template's days into the backfill of its members.

    The reference data is fetched first when the store holds none (or, for an update, when it
    is older than ``refresh_after_days``); the universe notes what was backfilled.
    """
    from dataclasses import replace

    from mdw.backfill.catalog import remember_backfill
    from mdw.backfill.members import universe_spec
    from mdw.budget import shared_budget
    from mdw.polygon import PolygonClient

    assert isinstance(template.start, date) and isinstance(template.end, date)
    today = datetime.now(UTC).date()
    if dry_run:
        from mdw.store import require_existing

        require_existing(settings.database_url)  # a dry run resolves against the stored universe
        if not settings.api_key:  # offline: the stored reference data must do
            async with _store(settings) as store:
                spec = await universe_spec(store, _Offline(), name, template.timeframes, template.start,
                                           template.end, today=today, kind=template.kind,
                                           grouped_daily=template.grouped_daily, derive=template.derive)
            return replace(spec, corporate_actions=template.corporate_actions, refetch=template.refetch,
                           source=template.source)
    async with _store(settings) as store, shared_budget(settings) as limiter, \
            PolygonClient.from_settings(settings, limiter=limiter) as client:
        if refresh_after_days and not dry_run:
            from mdw.backfill.catalog import refresh_if_stale

            await refresh_if_stale(store, client, today, refresh_after_days)
        spec = await universe_spec(store, client, name, template.timeframes, template.start, template.end,
                                   today=today, kind=template.kind, grouped_daily=template.grouped_daily,
                                   derive=template.derive)
        if not dry_run:
            await remember_backfill(store, name, [str(t) for t in template.timeframes], template.start)
    return replace(spec, corporate_actions=template.corporate_actions, refetch=template.refetch,
                   source=template.source)


class _Offline:
    """The vendor of a dry run without a key: resolving a universe that needs it is a usage error."""

    def __getattr__(self, name: str) -> Any:  # every vendor call, whatever its signature
        async def refuse(*args: object, **kwargs: object) -> object:
            raise UsageError("resolving this universe needs the vendor (no reference data stored, or an "
                             "options chain): set POLYGON_API_KEY, or run `mdw reference refresh` first")

        return refuse


@app.command()
def backfill(
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD, inclusive) or an ISO datetime")],
    timeframes: Annotated[
        str, typer.Option("--timeframes", "-t", help="Comma-separated: 1m,5m,1h,1d")
    ] = "1d",
    end: Annotated[str, typer.Option(help="Last day (inclusive), an ISO datetime, or 'today'")] = "today",
    asset: Annotated[str | None, typer.Option(help="Asset class for bare pairs: crypto, forex ...")] = None,
    dry_run: DryRun = False,
    derive: Annotated[bool, typer.Option("--derive", help="Build coarser intraday bars locally")] = False,
    actions: Annotated[
        bool, typer.Option("--corporate-actions", help="Also fetch dividends and splits")
    ] = False,
    grouped: Annotated[bool, typer.Option(" /--no-grouped", help="Never use grouped-daily requests")] = True,
    distributed: Annotated[
        bool, typer.Option("--distributed", help="Run as jobs on `mdw worker` processes (PostgreSQL)")
    ] = False,
    refetch: Annotated[
        bool, typer.Option("--refetch", help="Fetch the whole range again, even what the ledger holds")
    ] = False,
    source: Annotated[str, typer.Option(
        "--source", help="rest, flatfiles (the vendor's whole-market daily files) or auto (the cheaper "
        "per dataset and day)")] = "auto",
    settle: Annotated[bool, typer.Option(
        "--settle", help="First pick up the vendor's revisions: re-fetch once the last MDW_SETTLE_SESSIONS "
        "sessions held (after MDW_SETTLE_AFTER ET the next day) and, with flat-file keys, ingest again "
        "the flat-file days replaced since",
    )] = False,
    symbols: OptSymbols = None,
    universe: UniverseName = None,
    report: ReportFile = None,
    database_url: DbUrl = None,
    rate_limit: Rate = None,
    base_url: BaseUrl = None,
    config: Config = None,
) -> None:
    """Fill every gap of SYMBOLS (or a UNIVERSE's members) x TIMEFRAMES between START and END.

    A universe is resolved as of each day: every member is asked for on the days it was listed.
    """
    from mdw.backfill.plan import BackfillSpec
    from mdw.domain import parse_tickers, parse_timeframes

    settings = _settings(config, database_url, rate_limit, base_url)
    if (symbols is None) == (universe is None):
        fail("give --symbols or --universe (one of them)")
    if universe is not None:
        from mdw.backfill.universe import check_name

        _checked(lambda: check_name(universe))
    if source not in ("rest", "flatfiles", "auto"):
        fail(f"invalid --source {source!r}; expected rest, flatfiles or auto")
    if source == "flatfiles" and settings.flatfiles_credentials is None:
        fail("--source flatfiles needs MDW_FLATFILES_KEY_ID and MDW_FLATFILES_SECRET (the vendor's S3 key "
             "pair, not the API key)")
    spec = _checked(lambda: _check_spec(BackfillSpec(
        tuple(parse_tickers(symbols, asset)) if symbols is not None else (),
        tuple(parse_timeframes(timeframes)),
        *(_universe_days(start, end) if universe is not None else (_day_or_ms(start), _day_or_ms(end))),
        derive=derive,
        grouped_daily=grouped,
        corporate_actions=actions,
        refetch=refetch,
        source=source,  # type: ignore[arg-type]
    )))
    _check_report(report)
    if distributed and not dry_run:
        if refetch or settle:
            fail(f"{'--refetch' if refetch else '--settle'} runs locally only; drop --distributed")
        from mdw.cli.worker import require_postgres

        require_postgres(settings, "mdw backfill --distributed")
    _require_key(settings, dry_run)
    if not dry_run:
        writable_store(settings, "mdw backfill")

    async def main() -> int:
        run_spec = spec if universe is None else await _universe_spec(settings, universe, spec, dry_run)
        if universe is not None:
            print(f"universe {universe}: {len(run_spec.tickers):,} tickers listed between "
                  f"{run_spec.start} and {run_spec.end}", file=sys.stderr)
        if distributed and not dry_run:
            from mdw.cli.worker import distributed_backfill

            return await distributed_backfill(settings, run_spec, report)
        return await _execute(settings, run_spec, dry_run, report, settle=settle)

    _exit(run(main()))


@app.command()
def update(
    dry_run: DryRun = False,
    days: Annotated[
        int, typer.Option(min=1, help="History for symbols tracked without a start date")
    ] = 365,
    universe: Annotated[str | None, typer.Option(
        "--universe", "-u", help="Only this universe: its members as of each day, up to today")] = None,
    report: ReportFile = None,
    database_url: DbUrl = None,
    rate_limit: Rate = None,
    base_url: BaseUrl = None,
    config: Config = None,
) -> None:
    """Bring every tracked symbol (or a universe's members) up to now.

    With --universe, the reference data is refreshed first when older than a day, so names
    listed since join and names delisted since stop at their last session.
    """
    settings = _settings(config, database_url, rate_limit, base_url)
    _check_report(report)
    _require_key(settings, dry_run)
    if not dry_run:
        writable_store(settings, "mdw update")
    if universe is not None:
        from mdw.backfill.universe import check_name

        _checked(lambda: check_name(universe))

    async def main() -> int:
        from mdw.backfill.update import update_specs

        if universe is not None:
            from mdw.backfill.catalog import update_template

            async with _store(settings, existing=True) as store:
                template = await update_template(store, universe, datetime.now(UTC).date(), days)
            spec = await _universe_spec(settings, universe, template, dry_run, refresh_after_days=1)
            print(f"universe {universe}: {len(spec.tickers):,} tickers listed between "
                  f"{spec.start} and {spec.end}", file=sys.stderr)
            return await _execute(settings, spec, dry_run, report)

        async with _store(settings) as store:
            specs = await update_specs(store, default_days=days)
        if not specs:
            print("mdw: no tracked symbols; run `mdw backfill` first", file=sys.stderr)
            return 0
        return await _execute(settings, specs, dry_run, report)

    _exit(run(main()))


@app.command(name="corporate-actions")
def corporate_actions(
    symbols: Symbols,
    kind: Annotated[str, typer.Option(help="splits, dividends or all")] = "all",
    start: Annotated[str, typer.Option(help="First day to hold actions from")] = "2000-01-01",
    dry_run: DryRun = False,
    report: ReportFile = None,
    database_url: DbUrl = None,
    rate_limit: Rate = None,
    base_url: BaseUrl = None,
    config: Config = None,
) -> None:
    """Fetch and store the splits and dividends of SYMBOLS (only the days not yet held)."""
    from mdw.backfill.plan import ACTION_KINDS_ALL, BackfillSpec
    from mdw.domain import parse_tickers
    from mdw.store.base import RunKind

    if kind not in ACTION_KINDS_ALL:
        fail(f"invalid --kind {kind!r}; expected splits, dividends or all")
    settings = _settings(config, database_url, rate_limit, base_url)
    kinds = ("dividends", "splits") if kind == "all" else (kind,)
    spec = _checked(lambda: _check_spec(BackfillSpec(
        tuple(parse_tickers(symbols)),
        (),
        _day_or_ms(start),
        datetime.now(UTC).date() + timedelta(days=1),
        corporate_actions=True,
        action_kinds=kinds,
        kind=RunKind.CORPORATE_ACTIONS,
    )))
    _check_report(report)
    _require_key(settings, dry_run)
    if not dry_run:
        writable_store(settings, "mdw corporate-actions")

    async def main() -> int:
        code = await _execute(settings, spec, dry_run, report)
        if not dry_run:
            async with _store(settings) as store:
                await _print_actions(store, [t.symbol for t in spec.tickers], kinds)
        return code

    _exit(run(main()))


async def _print_actions(store: Store, tickers: list[str], kinds: tuple[str, ...]) -> None:
    from rich.table import Table

    from mdw.backfill.progress import stdout_console

    table = Table(title="stored corporate actions")
    for col in ("ticker", "kind", "date", "value"):
        table.add_column(col)
    for ticker in tickers:
        if "splits" in kinds:
            for s in await store.actions.splits(ticker):
                table.add_row(
                    ticker, "split", s.execution_date.isoformat(), f"{s.split_to:g}-for-{s.split_from:g}"
                )
        if "dividends" in kinds:
            for d in await store.actions.dividends(ticker):
                table.add_row(
                    ticker, "dividend", d.ex_dividend_date.isoformat(), f"{d.cash_amount:g} {d.currency}"
                )
    stdout_console().print(table)


@app.command()
def export(
    symbols: Symbols,
    start: Annotated[str, typer.Option(help="First day (inclusive; the market's own day: ET for US stocks,"
                                            " UTC for crypto and forex) or an ISO datetime")],
    timeframe: Annotated[str, typer.Option("--timeframe", "-t", help="One timeframe: 1m, 1h, 1d ...")] = "1d",
    end: Annotated[
        str | None, typer.Option(help="Last day (inclusive, the market's own day) or an ISO datetime;"
                                      " default now")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, jsonl or parquet")] = "csv",
    adjust: Annotated[str, typer.Option(help="none, splits or all (splits and dividends)")] = "none",
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="File to write (stdout if omitted)")
    ] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Fail (exit 1) when the range is held only in part, instead of exporting it"
    )] = False,
    names: Annotated[str, typer.Option(
        "--names", help="Column names: long (timestamp, open, high ...) or vendor (t, o, h ...)"
    )] = "long",
    stitch: Annotated[bool, typer.Option(
        "--stitch", help="Read each ticker (today's) across its ticker changes; the changes go to stderr"
    )] = False,
    database_url: DbUrl = None,
    config: Config = None,
) -> None:
    """Read stored bars back out as CSV, JSON lines or Parquet, optionally adjusted.

    Columns: ticker, timeframe, timestamp (UTC), date (the session's, daily and longer bars only),
    open, high, low, close, volume, vwap, trades; adjusted values are rounded to the instrument's
    precision, and Parquet's metadata names the tickers, timeframe, adjustment, as-of and coverage.

    Days are the market's own days, as in the Python API and HTTP. An unknown ticker or a
    timeframe never stored exits 2; a range held only in part is exported with a coverage line
    per ticker on stderr (``--strict``: exit 1 instead).
    """
    from mdw.adjust import ADJUST_MODES
    from mdw.api import window
    from mdw.backfill.export import FORMATS, export_bars, safe_output_path
    from mdw.domain import Timeframe, parse_tickers

    settings = _settings(config, database_url)
    if fmt not in FORMATS:
        fail(f"invalid --format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if adjust not in ADJUST_MODES:
        fail(f"invalid --adjust {adjust!r}; expected one of {', '.join(ADJUST_MODES)}")
    if fmt == "parquet" and not output:
        fail("parquet needs an output file: add -o FILE")
    if names not in ("long", "vendor"):
        fail(f"invalid --names {names!r}; expected long or vendor")
    if stitch and adjust != "none":
        fail("stitched reads are unadjusted: drop --adjust or --stitch")
    if stitch:
        from mdw.backfill.stitch import ident

        tickers = _checked(lambda: [ident(s) for s in symbols.split(",") if s.strip()])
    else:
        tickers = _checked(lambda: parse_tickers(symbols))
    tf = _checked(lambda: Timeframe.parse(timeframe))
    reads = _checked(lambda: [(tk, window(tk, start, end or "now")) for tk in tickers])
    for tk, rng in reads:
        if rng.end_ms <= rng.start_ms:
            fail(f"--end {end} is before --start {start} for {tk.symbol}")
    path = _checked(lambda: safe_output_path(output) if output else None)

    async def main() -> int:
        import json

        from mdw.api import AsyncWarehouse

        # Read-only unless an adjusted export may fetch (and store) the corporate actions it lacks.
        fetches = adjust != "none" and settings.polygon_api_key is not None
        async with _store(settings, existing=True, read_only=not fetches) as store:
            wh = AsyncWarehouse(store, settings)
            if stitch:
                plans = {tk.symbol: await wh.check_stitched(tk, tf, rng, strict) for tk, rng in reads}
                notes = [cov for cov, _ in plans.values()]
                stitched = {k: plan for k, (_, plan) in plans.items()}
            else:
                notes = [await wh.check_read(tk, tf, rng, adjust, strict) for tk, rng in reads]
                stitched = {}
            meta = {"mdw.coverage": json.dumps([cov.to_dict() for cov in notes])}
            if stitched:
                meta["mdw.stitch"] = json.dumps([plan.to_dict() for plan in stitched.values()])
            try:
                rows = await export_bars(store, reads, tf, fmt=fmt, adjust=adjust, output=path, names=names,
                                         extra=meta, stitched=stitched)
            except OSError as exc:  # a full disk or a closed pipe mid-export: nothing is left half-written
                fail(f"export failed writing {str(path) if path else 'stdout'!r}: {exc.strerror or exc}", 1)
        for plan in stitched.values():
            changes = plan.header() or "none"
            print(f"mdw: stitched {plan.ident}: {' + '.join(p.ticker for p in plan.parts) or plan.ticker};"
                  f" changes: {changes}", file=sys.stderr)
        for cov in notes:
            if not cov.complete:
                print(f"mdw: partial: {cov.describe()}", file=sys.stderr)
        if path:
            print(f"wrote {rows} rows to {path}", file=sys.stderr)
        return 0

    _exit(run(main()))


@app.command()
def status(
    symbols: Annotated[str | None, typer.Option("--symbols", "-s", help="Only these tickers")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    queue: Annotated[bool, typer.Option("--queue", help="Show the distributed job queue and workers")] = (
        False
    ),
    runs: Annotated[bool, typer.Option("--runs", help="Show the recent runs and their outcome")] = False,
    database_url: DbUrl = None,
    config: Config = None,
) -> None:
    """Coverage per series: first and last bar, bars, gaps, last fetched."""
    from mdw.backfill.progress import stdout_console
    from mdw.domain import parse_tickers

    settings = _settings(config, database_url)
    wanted = _checked(lambda: {t.symbol for t in parse_tickers(symbols)} if symbols else None)
    if queue and runs:
        fail("--queue and --runs are separate views; give one")
    if queue:
        from mdw.cli.worker import require_postgres

        require_postgres(settings, "mdw status --queue")

    async def main() -> int:
        import json

        if queue:
            from mdw.cli.worker import queue_status_command

            return await queue_status_command(settings, as_json)
        if runs:
            return await _runs_status(settings, as_json)

        from mdw.backfill.boundary import plan_reach
        from mdw.backfill.status import series_status, with_plan
        from mdw.clock import now_ms

        async with _store(settings, existing=True, read_only=True) as store:
            reach = await plan_reach(store, settings.limits, now_ms())
            rows = await with_plan(store, await series_status(store, wanted), reach)
        if as_json:
            print(json.dumps([{**r.to_dict(), "plan_history": reach.to_dict()} for r in rows], indent=2))
            return 0
        from rich.table import Table

        table = Table(title=f"mdw status: {len(rows)} series")
        for col in ("ticker", "tf", "bars", "first bar", "last bar", "gaps", "last fetched"):
            table.add_column(col, justify="right" if col in ("bars", "gaps") else "left")
        def show(ms: int | None) -> str:
            return (
                    "-" if ms is None else from_ms(ms).strftime("%Y-%m-%d %H:%M")
                )
        for r in rows:
            table.add_row(
                r.ticker,
                r.timeframe,
                f"{r.bars:,}",
                show(r.first_t),
                show(r.last_t),
                str(r.gaps),
                show(r.last_fetched_ms),
            )
        stdout_console().print(table)
        if reach.first_day is None:
            print(f"plan {reach.plan}: no history boundary known")
        else:
            print(f"plan {reach.plan}: history from {reach.first_day.isoformat()} ({reach.source})")
        for r in rows:
            if r.outside_plan:
                print(f"  {r.ticker} {r.timeframe}: {r.outside_plan} outside_plan"
                      " (not sold to this key; not missing)")
        return 0

    _exit(run(main()))


async def _runs_status(settings: Settings, as_json: bool) -> int:
    """``mdw status --runs``: the recent runs; one whose process died shows interrupted.

    Read-only (it works on a full disk): the next command that writes records such a run.
    """
    import json

    from rich.table import Table

    from mdw.backfill.liveness import recent_runs
    from mdw.backfill.progress import stdout_console

    async with _store(settings, existing=True, read_only=True) as store:
        records = await recent_runs(store, 20, persist=False)
    if as_json:
        print(json.dumps([{"id": r.id, "kind": r.kind, "status": r.status, "started_at_ms": r.started_at_ms,
                           "finished_at_ms": r.finished_at_ms} for r in records], indent=2))
        return 0
    table = Table(title=f"mdw runs: {len(records)} most recent")
    for col in ("id", "kind", "status", "started", "finished", "requests", "bars"):
        table.add_column(col, justify="right" if col in ("requests", "bars") else "left")
    for r in records:
        table.add_row(r.id, r.kind, r.status, from_ms(r.started_at_ms).strftime("%Y-%m-%d %H:%M:%S"),
                      from_ms(r.finished_at_ms).strftime("%Y-%m-%d %H:%M:%S") if r.finished_at_ms else "-",
                      str(r.report.get("requests", "-")), str(r.report.get("bars_fetched", "-")))
    stdout_console().print(table)
    return 0


@app.command()
def demo(
    serve: Annotated[
        bool, typer.Option("--serve", help="Then serve the demo data over HTTP (mdw serve)")
    ] = False,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start from an empty demo database")] = False,
    seconds: Annotated[float, typer.Option(help="About how long the backfill should take")] = 60.0,
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo database goes")] = Path("mdw-demo"),
    report: ReportFile = None,
) -> None:
    """No key, no network: the built-in simulator, the standard workload, a SQLite file, a report."""
    from mdw.backfill.progress import make_progress, stdout_console

    settings_from(None)
    if seconds <= 0:
        fail("--seconds must be positive")

    async def main() -> tuple[int, DemoResult]:
        from mdw.backfill.demo import run_demo

        stop = _install_stop()
        with make_progress() as progress:
            result = await run_demo(
                directory / "demo.db", target_s=seconds, fresh=fresh, progress=progress, stop=stop
            )
        return _finish(result.report, report), result

    code, result = run(main())
    from mdw.backfill.demo import how_to_query

    stdout_console().print(f"rate limit chosen for ~{seconds:.0f} s: {result.rate_limit}")
    print(how_to_query(result))
    if serve and code in (0, 1):
        _serve(result.database_url)
    _exit(code)


def _serve(database_url: str) -> None:
    """Replace this process with ``mdw serve`` on the demo database (the scheduler stays off)."""
    from mdw.backfill.progress import stderr_console

    exe = shutil.which("mdw") or sys.argv[0]
    env = {**os.environ, "MDW_DATABASE_URL": database_url, "MDW_SCHEDULER": "false"}
    print(f"serving {database_url}: {exe} serve", file=sys.stderr)
    served = settings_from(None)
    host = "127.0.0.1" if served.host in ("0.0.0.0", "::") else served.host
    print(f"dashboard: http://{host}:{served.port}/  (API docs: /docs)")
    sys.stdout.flush()
    try:
        os.execve(exe, [exe, "serve"], env)  # noqa: S606 - a fixed argv, no shell
    except OSError as exc:
        stderr_console().print(f"mdw: cannot start `mdw serve`: {exc.strerror}")
        raise typer.Exit(1) from None
