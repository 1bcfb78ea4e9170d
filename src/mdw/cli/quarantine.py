"""``mdw quarantine``: the invalid vendor bars runs refused to store, so a user can see what and why."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from mdw.cli.app import app, fail, run, settings_from
from mdw.errors import UsageError
from mdw.ranges import from_ms

if TYPE_CHECKING:
    from mdw.store.base import QuarantinedBar

DbUrl = Annotated[str | None, typer.Option("--database-url", help="sqlite:///path.db or postgresql://...")]
Config = Annotated[str | None, typer.Option("--config", help="An mdw.toml file")]
MAX_LIMIT = 100_000


def entry_dict(entry: QuarantinedBar) -> dict[str, object]:
    """An entry as JSON-ready values: NaN prices and volumes become null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(entry).items()}


def _num(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.10g}"


def _when(ms: int) -> str:
    return from_ms(ms).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
def quarantine(
    symbols: Annotated[str | None, typer.Option("--symbols", "-s", help="Only these tickers")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=MAX_LIMIT,
                                       help="Most entries shown, newest first")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (with each request URL)")] = False,
    database_url: DbUrl = None,
    config: Config = None,
) -> None:
    """Invalid bars the vendor served that runs refused to store: each with its reason and run."""
    from mdw.domain import parse_tickers

    try:
        wanted = [t.symbol for t in parse_tickers(symbols)] if symbols else [None]
    except UsageError as exc:
        fail(str(exc))
    settings = settings_from(config, database_url=database_url)

    async def main() -> list[QuarantinedBar]:
        from mdw.store import open_store, require_existing

        require_existing(settings.database_url)  # a read: never creates a database
        async with await open_store(settings.database_url, read_only=True) as store:
            found = [e for ticker in dict.fromkeys(wanted)
                     for e in await store.quarantine.recent(ticker, limit)]
        found.sort(key=lambda e: (-e.quarantined_at_ms, e.ticker, e.timeframe, e.t))
        return found[:limit]

    entries = run(main())
    if as_json:
        print(json.dumps([entry_dict(e) for e in entries], indent=2))
        return
    if not entries:
        print("no quarantined bars")
        return
    from rich.table import Table

    from mdw.backfill.progress import stdout_console

    table = Table(title=f"mdw quarantine: {len(entries)} invalid bar(s), newest first")
    for col in ("quarantined (UTC)", "run", "ticker", "tf", "t (UTC)", "o", "h", "l", "c", "v", "reason"):
        table.add_column(col, justify="right" if col in ("o", "h", "l", "c", "v") else "left")
    for e in entries:
        table.add_row(_when(e.quarantined_at_ms), e.run_id or "-", e.ticker, e.timeframe, _when(e.t),
                      _num(e.o), _num(e.h), _num(e.l), _num(e.c), _num(e.v), e.reason)
    console = stdout_console()
    if not console.is_terminal:
        console.width = 200  # piped or captured: keep one line per bar instead of wrapping at 80
    console.print(table)
