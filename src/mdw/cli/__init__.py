"""The ``mdw`` console script.

Each command lives in a module of this package that registers itself on :data:`mdw.cli.app.app`.
"""

from __future__ import annotations

import importlib
import sys

import typer

from mdw.cli.app import app, fail

# Command modules, imported for their registrations. A module that is missing is skipped, so a
# partial install still offers the commands it has.
_COMMAND_MODULES = ("backfill", "simulate", "serve", "keys", "worker", "quarantine")


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
        result = app(args=argv, standalone_mode=False)
    except typer.Abort:
        print("mdw: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:
        # typer vendors its own click; its usage errors are recognised by shape, not by class.
        fmt = getattr(exc, "format_message", None)
        if fmt is None or not hasattr(exc, "exit_code"):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            raise SystemExit(0) from None
        message = str(fmt()).strip().splitlines()
        fail(message[-1] if message else type(exc).__name__)
    if isinstance(result, int) and result:
        raise SystemExit(result)


__all__ = ["app", "main"]
