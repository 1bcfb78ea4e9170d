"""The NYSE session table cached on disk, injected into the pure calendar by the entry points.

Computing 50 years of sessions with exchange_calendars costs about a second per process, and
every CLI call needs them; so the CLI, the service and the Python API call :func:`install` at
start-up, and :mod:`mdw.calendar` asks the cached loader instead of recomputing. The file is keyed
by the exchange_calendars version, written to a temp file and renamed into place, and any file
that cannot be read or parsed is simply rebuilt.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
from collections.abc import Sequence
from pathlib import Path

from mdw.calendar import FIRST_YEAR, LAST_YEAR, SessionLoader, SessionRow, build_sessions, use_sessions


def cache_dir() -> Path:
    """``$MDW_CACHE_DIR``, else ``$XDG_CACHE_HOME/mdw``, else ``~/.cache/mdw``."""
    root = os.environ.get("MDW_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mdw"
    )
    return Path(root)


def cache_file(directory: Path | None = None) -> Path | None:
    """Where the table is cached, named for the exchange_calendars version (None if unknown)."""
    try:
        version = importlib.metadata.version("exchange_calendars")
    except importlib.metadata.PackageNotFoundError:
        return None
    return (directory or cache_dir()) / f"xnys-{version}-{FIRST_YEAR}-{LAST_YEAR}.json"


def _read(path: Path) -> list[SessionRow] | None:
    with contextlib.suppress(OSError, ValueError):
        rows = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(rows, list) and rows and all(isinstance(r, list) and len(r) == 5 for r in rows):
            return [(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]
    return None


def _write(path: Path, rows: Sequence[SessionRow]) -> None:
    with contextlib.suppress(OSError):  # a read-only home still gets a working (uncached) calendar
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(rows), encoding="utf-8")
        os.replace(tmp, path)


def disk_cached(directory: Path | None = None) -> SessionLoader:
    """A loader that reads the table from disk, or builds it and writes it there for next time."""

    def load() -> Sequence[SessionRow]:
        path = cache_file(directory)
        cached = _read(path) if path is not None else None
        if cached is not None:
            return cached
        rows = build_sessions()
        if path is not None:
            _write(path, rows)
        return rows

    return load


_installed: list[Path | None] = []  # the directory install() last wired in, if any


def install(directory: Path | None = None) -> None:
    """Make the calendar read its sessions through the disk cache (the entry points call this).

    Calling it again with the same directory keeps the table already loaded.
    """
    if _installed == [directory]:
        return
    use_sessions(disk_cached(directory))
    _installed[:] = [directory]
