"""``mdw universe define/list/show/rm`` and ``mdw reference refresh``.

A universe is a stored definition (markets, types, exchanges, tickers, an options chain), not a
list of tickers: ``mdw backfill --universe NAME`` resolves it as of each day of its range. The
work lives in :mod:`mdw.backfill.catalog`; these commands parse flags and print.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from typing import Annotated

import typer

from mdw.cli.app import app, fail, help_without_command, run
from mdw.cli.backfill import BaseUrl, Config, DbUrl, Rate, _checked, _settings, _store

universe_app = typer.Typer(help="Named universes: a market, as of any date, instead of a typed list.",
                           invoke_without_command=True, no_args_is_help=False)
reference_app = typer.Typer(help="The vendor's reference data (tickers over time, renames, option chains).",
                            invoke_without_command=True, no_args_is_help=False)
app.add_typer(universe_app, name="universe")
app.add_typer(reference_app, name="reference")

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


@universe_app.callback()
def _universe(ctx: typer.Context) -> None:
    """Named universes: a market, as of any date, instead of a typed list."""
    help_without_command(ctx)


@reference_app.callback()
def _reference(ctx: typer.Context) -> None:
    """The vendor's reference data (tickers over time, renames, option chains)."""
    help_without_command(ctx)


def _today() -> date:
    return datetime.now(UTC).date()


def _day(text: str | None, flag: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"invalid {flag} {text!r}: expected YYYY-MM-DD")


@universe_app.command("define")
def define(
    name: Annotated[str, typer.Argument(help="The universe's name (letters, digits, _ . -)")],
    market: Annotated[str, typer.Option(
        "--market", help="stocks, otc, crypto, fx (comma-separated)")] = "stocks",
    types: Annotated[str | None, typer.Option("--type", help="Ticker types: CS,ETF,ADRC,PFD ...")] = None,
    exchange: Annotated[str | None, typer.Option(
        "--exchange", help="Primary exchanges (MIC): XNAS,XNYS")] = None,
    active_on: Annotated[str | None, typer.Option(
        "--active-on", help="Only the securities listed on this day (YYYY-MM-DD)")] = None,
    tickers_file: Annotated[str | None, typer.Option(
        "--tickers-file", help="Only these tickers (one or more per line; # comments)")] = None,
    include_delisted: Annotated[bool, typer.Option(
        "--include-delisted/--listed-only",
        help="Keep the names delisted since, on the days they were listed (the default: no "
             "survivorship bias), or only those listed today")] = True,
    underlying: Annotated[str | None, typer.Option(
        "--underlying", help="Options: the underlying, e.g. SPY")] = None,
    expiry: Annotated[str | None, typer.Option("--expiry", help="Options: YYYY-MM or YYYY-MM-DD")] = None,
    strikes: Annotated[str | None, typer.Option(
        "--strikes", help="Options: ATM±N (or ATM+-N): N strikes each side of the money")] = None,
    database_url: DbUrl = None,
    config: Config = None,
) -> None:
    """Define (or redefine) universe NAME."""
    from mdw.backfill import catalog
    from mdw.backfill.universe import check_name

    settings = _settings(config, database_url)
    _checked(lambda: check_name(name))
    listed = _checked(lambda: catalog.read_tickers_file(tickers_file)) if tickers_file else ()
    spec = _checked(lambda: catalog.define_spec(
        market=market, types=types, exchanges=exchange, active_on=active_on, tickers=listed,
        include_delisted=include_delisted, underlying=underlying, expiry=expiry, strikes=strikes))

    async def main() -> int:
        async with _store(settings) as store:
            rec = await catalog.define(store, name, spec)
        print(json.dumps({"name": rec.name, "definition": rec.spec}))
        return 0

    run(main())


@universe_app.command("list")
def list_(as_json: AsJson = False, database_url: DbUrl = None, config: Config = None) -> None:
    """Every defined universe and its definition."""
    settings = _settings(config, database_url)

    async def main() -> int:
        async with _store(settings, existing=True) as store:
            records = await store.universes.all()
        if as_json:
            print(json.dumps([{"name": r.name, "definition": r.spec, "updated_at_ms": r.updated_at_ms}
                              for r in records], indent=2))
            return 0
        if not records:
            print("no universes; define one with `mdw universe define NAME --type CS,ETF`", file=sys.stderr)
        for r in records:
            print(f"{r.name}\t{_summary(r.spec)}")
        return 0

    run(main())


def _summary(spec: dict[str, object]) -> str:
    opts = spec.get("options")
    if isinstance(opts, dict):
        n = opts.get("strikes")
        return f"options {opts.get('underlying')} expiring {opts.get('expiry')}" + (f" ATM±{n}" if n else "")
    parts = [",".join(str(m) for m in spec.get("markets", []) or [])]  # type: ignore[attr-defined]
    for key, label in (("types", "type"), ("exchanges", "exchange")):
        values = spec.get(key) or []
        if values:
            parts.append(f"{label} {','.join(str(v) for v in values)}")  # type: ignore[attr-defined]
    tickers = spec.get("tickers") or []
    if tickers:
        parts.append(f"{len(tickers)} tickers")  # type: ignore[arg-type]
    if spec.get("active_on"):
        parts.append(f"active on {spec['active_on']}")
    if not spec.get("include_delisted", True):
        parts.append("listed only")
    return "; ".join(parts)


@universe_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The universe")],
    on: Annotated[str | None, typer.Option("--on", help="Its members on this day (default today)")] = None,
    as_json: AsJson = False,
    database_url: DbUrl = None,
    config: Config = None,
) -> None:
    """The definition and the members on a day, from the stored reference data (no vendor call)."""
    from mdw.backfill import catalog

    settings = _settings(config, database_url)
    day = _day(on, "--on") or _today()

    async def main() -> int:
        async with _store(settings, existing=True) as store:
            view = await catalog.show(store, name, day, _today())
        if as_json:
            print(json.dumps(view.to_dict(), indent=2))
            return 0
        print(f"{view.name}: {_summary(view.definition)}")
        print(f"members on {view.on}: {len(view.members):,}")
        shown = view.members[:50]
        if shown:
            print("  " + " ".join(shown) + (f" ... (+{len(view.members) - len(shown):,})"
                                            if len(view.members) > len(shown) else ""))
        return 0

    run(main())


@universe_app.command("rm")
def rm(
    name: Annotated[str, typer.Argument(help="The universe to forget (its bars stay)")],
    database_url: DbUrl = None,
    config: Config = None,
) -> None:
    """Forget universe NAME; the bars of its tickers stay in the warehouse."""
    from mdw.backfill import catalog

    settings = _settings(config, database_url)

    async def main() -> int:
        async with _store(settings, existing=True) as store:
            await catalog.remove(store, name)
        print(f"removed universe {name}", file=sys.stderr)
        return 0

    run(main())


@reference_app.command("refresh")
def refresh(
    database_url: DbUrl = None,
    rate_limit: Rate = None,
    base_url: BaseUrl = None,
    config: Config = None,
) -> None:
    """Fetch every listed and delisted ticker, the renames, and each options universe's chain."""
    settings = _settings(config, database_url, rate_limit, base_url)
    if not settings.api_key:
        fail("no vendor API key: set POLYGON_API_KEY (or polygon_api_key in mdw.toml)")

    async def main() -> int:
        from mdw.backfill.catalog import refresh_reference
        from mdw.budget import shared_budget
        from mdw.polygon import PolygonClient

        async with _store(settings) as store, shared_budget(settings) as limiter, \
                PolygonClient.from_settings(settings, limiter=limiter) as client:
            out = await refresh_reference(store, client, _today())
        for kind, result in out.items():
            if isinstance(result, int):
                print(f"{kind}: {result} contracts")
            else:
                print(f"{kind}: {result.listings:,} listings ({result.listed_today:,} listed today), "
                      f"{result.changes} ticker changes, {result.requests} requests")
        return 0

    run(main())
