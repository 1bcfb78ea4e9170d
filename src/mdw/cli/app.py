"""The typer application every command module registers on, and the shared error handling.

Exit codes: 0 all done; 1 some series failed; 2 bad usage or configuration (one line on stderr,
never a traceback); 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, NoReturn, TypeVar, Unpack

import typer

from mdw.errors import MdwError, UsageError

if TYPE_CHECKING:  # pydantic and structlog load when a command runs, not for ``mdw --help``
    from mdw.config import Settings, SettingsValues

T = TypeVar("T")

app = typer.Typer(
    name="mdw",
    help="Market data warehouse: backfill, store, keep current and serve Polygon/Massive data.",
    # Without arguments, the root callback prints the help (typer's own no_args_is_help signals it
    # with an exception class it keeps in a private module, which mdw does not import).
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rich's help renderer alone costs more than the rest of --help
    context_settings={"help_option_names": ["-h", "--help"]},
)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line on stderr and exit."""
    from mdw.logs import redact

    print(f"mdw: error: {redact(message)}", file=sys.stderr)
    raise SystemExit(code)


def settings_from(config: str | None = None, **overrides: Unpack[SettingsValues]) -> Settings:
    """Load settings (env < mdw.toml < flags) and configure logging; exit 2 on a bad value."""
    from mdw.config import load_settings
    from mdw.logs import configure

    try:
        settings = load_settings(config, **overrides)
    except MdwError as exc:
        fail(str(exc))
    configure(settings.log_level, settings.log_format, secrets=settings.secrets)
    return settings


def writable_store(settings: Settings, command: str) -> None:
    """A command that writes refuses an in-memory database (``sqlite://``): exit 2, one line."""
    from mdw.store import refuse_memory

    try:
        refuse_memory(settings.database_url, command)
    except MdwError as exc:
        fail(str(exc))


def run(coro: Coroutine[object, None, T]) -> T:
    """Run a command's coroutine: the one ``asyncio.run`` of the command.

    Usage errors exit 2 with one line; other mdw errors exit 1 with one line.
    """
    import asyncio  # loaded when a command runs, not for ``mdw --help``

    try:
        return asyncio.run(coro)
    except UsageError as exc:
        fail(str(exc), 2)
    except MdwError as exc:
        fail(str(exc), 1)
    except KeyboardInterrupt:
        print("mdw: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def help_without_command(ctx: typer.Context) -> None:
    """Print the group's help and exit 0 when no command was given (``mdw``, ``mdw keys``)."""
    if ctx.invoked_subcommand is None:
        text = ctx.get_help()  # rich help prints itself and returns ""; plain help is returned
        if text:
            typer.echo(text)
        raise typer.Exit(0)


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Market data warehouse: backfill, store, keep current and serve Polygon/Massive data."""
    help_without_command(ctx)


@app.command()
def version() -> None:
    """Print mdw's version."""
    from mdw import __version__

    print(__version__)
