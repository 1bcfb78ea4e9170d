"""The ``mdw`` console script.

Each command lives in a module of this package that registers itself on :data:`mdw.cli.app.app`.
"""

from __future__ import annotations

import importlib
import sys

import typer
from typer.exceptions import TyperException

from mdw.cli.app import app, fail

# Command modules, imported for their registrations. A module that is missing is skipped, so a
# partial install still offers the commands it has.
_COMMAND_MODULES = ("backfill", "simulate", "serve", "keys", "worker", "quarantine", "plan", "symbols",
                    "universe", "stream", "copy")


def _load_commands() -> None:
    for name in _COMMAND_MODULES:
        try:
            importlib.import_module(f"mdw.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mdw.cli.{name}":
                raise


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage errors print one line and exit 2, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    if args and not {"-h", "--help"} & set(args):
        # Every command reads the NYSE sessions from the disk cache; help needs none of it (the
        # calendar loads numpy), so ``mdw --help`` stays fast.
        from mdw import calendar_cache

        calendar_cache.install()
    _load_commands()
    try:
        result = app(args=argv, standalone_mode=False)
    except typer.Abort:
        print("mdw: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except TyperException as exc:  # typer's usage errors: an unknown option or command, a bad value
        message = exc.format_message().strip().splitlines()
        fail(message[-1] if message else "invalid usage")
    if isinstance(result, int) and result:
        raise SystemExit(result)


__all__ = ["app", "main"]
