"""``mdw copy --from URL --to URL``: move a warehouse to another store without fetching anything again."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from mdw.cli.app import app, fail, run, settings_from

if TYPE_CHECKING:
    from mdw.backfill.copy import CopyReport


@app.command("copy")
def copy(
    source: Annotated[str, typer.Option("--from", help="The warehouse to read: sqlite:///path.db, postgresql://...")],
    target: Annotated[str, typer.Option("--to", help="The store to fill (created when missing): postgresql://...,"
                                                     " iceberg+sqlite:///path.db ...")],
    chunk: Annotated[int, typer.Option("--chunk", help="Bars per write (one transaction each)")] = 50_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Copy bars and their ledger, corporate actions, symbols, API keys, universes, reference data
    and whole-market days from one store to another, exactly and resumably.

    A killed copy is resumed by running the same command again: what the target already holds is
    not read again. The copy ends by comparing source and target (bars, coverage, actions per
    series) and exits 1 when they differ.
    """
    if chunk < 1:
        fail("--chunk must be at least 1")
    if source.strip() == target.strip():
        fail("--from and --to are the same store")
    settings_from(None)  # logging as configured; the URLs come from the flags only

    async def go() -> CopyReport:
        from mdw.backfill.copy import copy_store
        from mdw.store import open_store, require_existing

        require_existing(source)  # never create the source
        async with await open_store(source) as src, await open_store(target) as dst:
            return await copy_store(src, dst, chunk=chunk, progress=_say)

    r = run(go())
    if as_json:
        print(json.dumps(r.to_dict(), indent=2))
    else:
        print(f"copied {r.series} series ({r.bars_read:,} bars read, {r.bars_written:,} written),"
              f" {r.actions} corporate actions, {r.symbols} symbols, {r.keys} API keys, {r.universes}"
              f" universes, {r.listings} listings, {r.contracts} option contracts,"
              f" {r.market_days} market days")
    if not r.exact:
        fail("target differs from source: " + "; ".join(r.differences)[:500], 1)
    if not as_json:
        print("target matches source: every series' bars and coverage, and every ticker's actions")


def _say(line: str) -> None:
    print(f"mdw: copy: {line}", file=sys.stderr, flush=True)
