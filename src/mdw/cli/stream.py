"""``mdw stream``: the vendor's WebSocket minute bars into the warehouse, reconciled over REST.

Runs until SIGINT/SIGTERM (or ``--for`` seconds), then writes what it holds and prints its state
as JSON. Exit 1 when the vendor refuses the key, 2 on bad input.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated

import typer

from mdw.cli.app import app, fail, run, settings_from

if TYPE_CHECKING:
    from mdw.config import Settings


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _stream(settings: Settings, url: str, seconds: float | None, reconcile: bool) -> int:
    from mdw.cli.backfill import _install_stop, _store
    from mdw.errors import UsageError
    from mdw.stream.service import open_stream, stream_symbols

    async with _store(settings) as store:
        symbols = await stream_symbols(settings, store)
        if not symbols:
            raise UsageError("nothing to stream: no tracked symbol holds 1m bars; pass --symbols "
                             "(tickers, '*' or 'X:*') or --universe")
        stop = _install_stop()
        async with open_stream(settings, store, symbols, url, _now_ms, reconcile=reconcile) as live:
            if seconds is not None:
                import asyncio

                asyncio.get_running_loop().call_later(seconds, stop.set)
            try:
                await live.run(stop)
            finally:
                print(json.dumps(live.state.to_dict(time.monotonic()), indent=2))
    return 0


@app.command()
def stream(
    symbols: Annotated[str | None, typer.Option(
        "--symbols", "-s", help="Comma-separated tickers, '*' (every stock) or 'X:*' (every crypto pair); "
        "default MDW_STREAM_SYMBOLS, else the tracked symbols holding 1m bars")] = None,
    universe: Annotated[str | None, typer.Option(
        "--universe", "-u", help="Also the members of this universe today (`mdw universe define`)")] = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="Feed host (default MDW_STREAM_URL, else the vendor's own for the plan)")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url",
                                                     help="sqlite:///path.db or postgresql://...")] = None,
    config: Annotated[str | None, typer.Option("--config", help="An mdw.toml file")] = None,
    reconcile: Annotated[bool, typer.Option(
        " /--no-reconcile", help="Do not confirm streamed bars over REST (they stay provisional)")] = True,
    seconds: Annotated[float | None, typer.Option("--for", min=0.1,
                                                  help="Stop after this many seconds")] = None,
) -> None:
    """Store the vendor's streamed minute bars as they arrive; confirm them over REST once settled."""
    from mdw.stream.runner import stream_url

    settings = settings_from(config, database_url=database_url, stream_url=url, stream_symbols=symbols,
                             stream_universe=universe)
    if not settings.api_key:
        fail("no vendor API key: set POLYGON_API_KEY (or polygon_api_key in mdw.toml)")
    code = run(_stream(settings, stream_url(settings), seconds, reconcile))
    if code:
        raise typer.Exit(code)
