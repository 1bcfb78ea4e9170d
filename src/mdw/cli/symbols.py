"""``mdw symbols add|list|rm`` and ``mdw actions list``: the tracked symbols and the stored actions.

Tracking a symbol only records it: ``mdw update`` (and the scheduler of ``mdw serve``) keep its
timeframes current from its start day. Listing corporate actions reads what is stored and never
asks the vendor, so it works offline and shows what an adjusted read would use; a ticker whose
actions were never fetched says so on stderr rather than printing an empty table as if it had none.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from mdw.cli.app import app, fail, help_without_command, run, settings_from
from mdw.errors import UsageError
from mdw.ranges import from_ms, parse_when

if TYPE_CHECKING:
    from mdw.config import Settings
    from mdw.store.base import Store, SymbolInfo

symbols_app = typer.Typer(help="Track, list and untrack symbols (no fetch: `mdw update` fetches).",
                          invoke_without_command=True)
app.add_typer(symbols_app, name="symbols")
symbols_app.callback()(help_without_command)
actions_app = typer.Typer(help="Stored splits and dividends (`mdw corporate-actions` fetches them).",
                          invoke_without_command=True)
app.add_typer(actions_app, name="actions")
actions_app.callback()(help_without_command)

DbUrl = Annotated[str | None, typer.Option("--database-url", help="sqlite:///path.db or postgresql://...")]
Config = Annotated[str | None, typer.Option("--config", help="An mdw.toml file")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


@asynccontextmanager
async def _store(settings: Settings, *, existing: bool) -> AsyncIterator[Store]:
    from mdw.store import open_store, require_existing

    if existing:  # a read never creates a database
        require_existing(settings.database_url)
    store = await open_store(settings.database_url)
    try:
        yield store
    finally:
        await store.close()


def _start_day(text: str | None) -> date:
    if text is None:
        return datetime.now(UTC).date() - timedelta(days=365)
    value = parse_when(text)
    day = value.date() if isinstance(value, datetime) else value
    return day


@symbols_app.command("add")
def add(
    tickers: Annotated[str, typer.Argument(help="Comma-separated tickers: AAPL,X:BTCUSD")],
    timeframes: Annotated[str, typer.Option("--timeframes", "-t", help="Timeframes to keep: 1d,1h")] = "1d",
    start: Annotated[str | None, typer.Option(help="First day to hold (default: one year ago)")] = None,
    name: Annotated[str, typer.Option(help="A label (kept when omitted on a re-add)")] = "",
    database_url: DbUrl = None,
    config: Config = None,
) -> None:
    """Track TICKERS: `mdw update` and `mdw serve` keep them current; nothing is fetched now.

    Adding a tracked ticker again replaces its timeframes and start day and makes it active.
    """
    from mdw.domain import parse_tickers, parse_timeframes
    from mdw.store.base import SymbolInfo

    try:
        tks = parse_tickers(tickers)
        tfs = tuple(str(t) for t in parse_timeframes(timeframes))
        day = _start_day(start)
    except UsageError as exc:
        fail(str(exc))
    settings = settings_from(config, database_url=database_url)

    async def go() -> list[SymbolInfo]:
        out = []
        async with _store(settings, existing=False) as store:
            for tk in tks:
                old = await store.symbols.get(tk.symbol)
                label = name or (old.name if old else "")
                info = SymbolInfo(tk.symbol, tk.asset_class.value, label, True, tfs, day.isoformat())
                await store.symbols.upsert(info)
                detail = {"ticker": tk.symbol, "timeframes": list(tfs), "start": day.isoformat()}
                await store.audit.append("cli", "symbols.create", detail)
                out.append(info)
        return out

    for info in run(go()):
        print(f"tracking {info.ticker} {','.join(info.timeframes)} from {info.start_date}")
    typer.echo("Nothing fetched yet: run `mdw update` (or let `mdw serve` do it).", err=True)


@symbols_app.command("list")
def list_symbols(
    active_only: Annotated[bool, typer.Option("--active", help="Only symbols still tracked")] = False,
    as_json: AsJson = False,
    database_url: DbUrl = None,
    config: Config = None,
) -> None:
    """List tracked (and untracked) symbols: ticker, asset class, active, timeframes, start, name."""
    settings = settings_from(config, database_url=database_url)

    async def go() -> list[SymbolInfo]:
        async with _store(settings, existing=True) as store:
            return await store.symbols.all(active_only=active_only)

    infos = run(go())
    if as_json:
        print(json.dumps([{"ticker": i.ticker, "asset_class": i.asset_class, "active": i.active,
                           "timeframes": list(i.timeframes), "start_date": i.start_date, "name": i.name}
                          for i in infos], indent=2))
        return
    print(f"{'ticker':<14}{'asset':<9}{'active':<8}{'timeframes':<22}{'start':<12}name")
    for i in infos:
        print(f"{i.ticker:<14}{i.asset_class:<9}{'yes' if i.active else 'no':<8}{','.join(i.timeframes):<22}"
              f"{i.start_date or '-':<12}{i.name}")
    if not infos:
        typer.echo("No symbols: `mdw symbols add AAPL` or `mdw backfill` tracks some.", err=True)


@symbols_app.command("rm")
def remove(
    tickers: Annotated[str, typer.Argument(help="Comma-separated tickers")],
    purge: Annotated[bool, typer.Option("--purge", help="Also delete their bars, actions, coverage")] = False,
    database_url: DbUrl = None,
    config: Config = None,
) -> None:
    """Stop tracking TICKERS (their data stays unless --purge). An unknown ticker exits 2."""
    from mdw.domain import parse_tickers

    try:
        tks = parse_tickers(tickers)
    except UsageError as exc:
        fail(str(exc))
    settings = settings_from(config, database_url=database_url)

    async def go() -> str | None:
        from mdw.backfill.answer import did_you_mean

        async with _store(settings, existing=True) as store:
            known = [i.ticker for i in await store.symbols.all()]
            missing = [tk.symbol for tk in tks if tk.symbol not in known]
            if missing:  # nothing is removed when one name is wrong
                return f"not a tracked symbol: {missing[0]}.{did_you_mean(missing[0], known)}"
            for tk in tks:
                await store.symbols.delete(tk.symbol, purge=purge)
                await store.audit.append("cli", "symbols.delete", {"ticker": tk.symbol, "purge": purge})
        return None

    error = run(go())
    if error:
        fail(error)
    for tk in tks:
        print(f"untracked {tk.symbol}{' and purged its data' if purge else ''}")


@actions_app.command("list")
def list_actions(
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="Comma-separated tickers")],
    kind: Annotated[str, typer.Option(help="splits, dividends or all")] = "all",
    as_json: AsJson = False,
    database_url: DbUrl = None,
    config: Config = None,
) -> None:
    """Stored splits and dividends of SYMBOLS, with the days they were fetched for; never fetches.

    A ticker whose actions were never fetched is named on stderr (exit 0 when some ticker had
    any coverage, else 1), so an empty list is never mistaken for "no splits".
    """
    from mdw.domain import parse_tickers
    from mdw.store.base import Dataset

    if kind not in ("splits", "dividends", "all"):
        fail(f"invalid --kind {kind!r}; expected splits, dividends or all")
    try:
        tks = parse_tickers(symbols)
    except UsageError as exc:
        fail(str(exc))
    kinds = ("splits", "dividends") if kind == "all" else (kind,)
    settings = settings_from(config, database_url=database_url)

    async def go() -> tuple[list[dict[str, object]], list[str]]:
        rows: list[dict[str, object]] = []
        notes: list[str] = []
        async with _store(settings, existing=True) as store:
            for tk in tks:
                ledger = await store.catalog.ledger(tk.symbol)
                for k in kinds:
                    held = [e for e in ledger if e.dataset == Dataset(k)]
                    if not held:
                        notes.append(f"{tk.symbol}: {k} never fetched; `mdw corporate-actions -s {tk.symbol}`"
                                     " fetches them")
                        continue
                    span = ", ".join(f"{from_ms(e.start_ms).date()}..{from_ms(e.end_ms - 1).date()}"
                                     for e in held)
                    if k == "splits":
                        for s in await store.actions.splits(tk.symbol):
                            rows.append({"ticker": tk.symbol, "kind": "split",
                                         "date": s.execution_date.isoformat(),
                                         "split_from": s.split_from, "split_to": s.split_to,
                                         "value": f"{s.split_to:g}-for-{s.split_from:g}",
                                         "fetched_for": span})
                    else:
                        for d in await store.actions.dividends(tk.symbol):
                            rows.append({"ticker": tk.symbol, "kind": "dividend",
                                         "date": d.ex_dividend_date.isoformat(), "cash_amount": d.cash_amount,
                                         "currency": d.currency, "value": f"{d.cash_amount:g} {d.currency}",
                                         "fetched_for": span})
        return rows, notes

    rows, notes = run(go())
    for note in notes:
        print(f"mdw: {note}", file=sys.stderr)
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'ticker':<14}{'kind':<10}{'date':<12}{'value':<18}fetched for")
        for r in rows:
            print(f"{r['ticker']!s:<14}{r['kind']!s:<10}{r['date']!s:<12}{r['value']!s:<18}{r['fetched_for']}")
    if len(notes) == len(tks) * len(kinds):
        raise SystemExit(1)
