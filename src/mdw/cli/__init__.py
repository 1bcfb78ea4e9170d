"""The ``mdw`` console script.

Each command lives in a module of this package that registers itself on :data:`mdw.cli.app.app`.
"""

from __future__ import annotations

import importlib
import sys

import click

from mdw.cli.app import app, fail

# Command modules, imported for their registrations. A module that is missing is skipped, so a
# partial install still offers the commands it has.
_COMMAND_MODULES = ("backfill", "simulate", "serve", "keys", "worker")


def _load_commands() -> None:
    for name in _COMMAND_MODULES:
        try:
            importlib.import_module(f"mdw.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mdw.cli.{name}":
                raise


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage errors print one line and exit 2, never a traceback."""
    _load_commands()
    try:
        app(args=argv, standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError:
        raise SystemExit(0) from None
    except click.UsageError as exc:
        fail(exc.format_message().strip().splitlines()[-1] if exc.format_message() else str(exc))
    except click.exceptions.Abort:
        print("mdw: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None


__all__ = ["app", "main"]
