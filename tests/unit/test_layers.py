"""The package layering of docs/architecture.md, enforced by reading every import under src/mdw.

Imports are read with ``ast`` (never executed), including imports inside functions and under
``TYPE_CHECKING``, relative imports, and ``importlib.import_module("...")`` calls with a literal.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import mdw

SRC = Path(mdw.__file__).resolve().parent  # .../src/mdw
ROOT = SRC.parent

# Anything that touches the network, a database or a server.
IO_PACKAGES = (
    "aiohttp", "asyncpg", "sqlite3", "psycopg", "psycopg2", "fastapi", "starlette", "uvicorn",
    "procrastinate", "httpx", "requests", "urllib.request", "http.client", "socket", "ssl",
    "selectors", "obstore", "mdw.polygon", "mdw.flatfiles.s3",
    "mdw.store", "mdw.backfill", "mdw.service", "mdw.simulator",
    "mdw.cli", "mdw.dashboard",
)

# The only modules outside the simulator allowed to import it, each for a command that starts
# it on purpose; even they must import it inside a function, so that loading the CLI (which
# imports every command module) never loads the simulator.
SIMULATOR_ALLOWED = {
    "mdw/cli/simulate.py": "`mdw simulate` runs the simulator",
    "mdw/backfill/demo.py": "`mdw demo` (run_demo) starts the simulator as its offline data source",
}


@dataclass(frozen=True)
class Import:
    """One imported module name, where it was imported, and whether at module level."""

    name: str
    line: int
    top_level: bool


def module_of(path: Path) -> str:
    """``src/mdw/store/sqlite.py`` -> ``mdw.store.sqlite``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module_of(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: Path) -> list[Import]:
    """Every module name ``path`` imports (``from a import b`` yields ``a`` and ``a.b``)."""
    return imports_in(path.read_text(encoding="utf-8"), path)


def imports_in(text: str, path: Path) -> list[Import]:
    """The imports of source ``text`` as though it were the module at ``path``."""
    tree = ast.parse(text, filename=str(path))
    top = {id(n) for n in tree.body}
    for node in tree.body:  # TYPE_CHECKING / try blocks at module level count as top level
        if isinstance(node, ast.If | ast.Try):
            top.update(id(n) for n in ast.walk(node))
    out: list[Import] = []
    for node in ast.walk(tree):
        at_top = id(node) in top
        if isinstance(node, ast.Import):
            out.extend(Import(alias.name, node.lineno, at_top) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(path, node)
            out.append(Import(base, node.lineno, at_top))
            out.extend(Import(f"{base}.{alias.name}", node.lineno, at_top) for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append(Import(node.args[0].value, node.lineno, at_top))
    return out


def matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def source_files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{rel(f)}:{imp.line} imports {imp.name}"
        for f in files
        for imp in imports_of(f)
        if matches(imp.name, forbidden)
    ]


def under(package: str) -> list[Path]:
    return [f for f in source_files() if rel(f).startswith(f"mdw/{package}/")]


@pytest.mark.parametrize("module", ["domain", "ranges", "calendar"])
def test_layers_domain_and_calendar_import_no_io(module: str) -> None:
    """The vocabulary and the calendar stay pure: no network, database, server or upper layer."""
    assert violations([SRC / f"{module}.py"], IO_PACKAGES) == []


def test_layers_polygon_client_does_not_know_about_storage() -> None:
    """The vendor client never imports the store, the engine, the service or the CLI."""
    assert violations(under("polygon"), ("mdw.store", "mdw.backfill", "mdw.service", "mdw.cli")) == []


def test_layers_flat_file_client_does_not_know_about_storage() -> None:
    """The flat-file client and decoder never import the store, the engine, the service or the CLI."""
    forbidden = ("mdw.store", "mdw.backfill", "mdw.service", "mdw.cli", "mdw.polygon")
    assert violations(under("flatfiles"), forbidden) == []


def test_layers_backfill_reaches_flat_files_only_through_its_seam() -> None:
    """The backfill never imports the S3 client module or obstore: it is handed a file source."""
    assert violations(under("backfill"), ("obstore", "mdw.flatfiles.s3")) == []


def test_layers_store_does_not_know_about_http() -> None:
    """The store never imports the vendor, the engine, the service, the CLI or an HTTP library."""
    forbidden = ("mdw.polygon", "mdw.backfill", "mdw.service", "mdw.cli", "aiohttp", "fastapi", "httpx")
    assert violations(under("store"), forbidden) == []


def test_layers_backfill_opens_no_sockets_itself() -> None:
    """The planner and engine reach HTTP and databases only through the vendor and store seams."""
    forbidden = ("aiohttp", "httpx", "socket", "asyncpg", "sqlite3", "psycopg", "fastapi")
    assert violations(under("backfill"), forbidden) == []


def test_layers_nothing_outside_the_simulator_imports_it() -> None:
    """Production code never imports mdw.simulator; the allow-listed commands do so lazily."""
    found: list[str] = []
    for f in source_files():
        path = rel(f)
        if path.startswith("mdw/simulator/"):
            continue
        for imp in imports_of(f):
            if not matches(imp.name, ("mdw.simulator",)):
                continue
            if path not in SIMULATOR_ALLOWED:
                found.append(f"{path}:{imp.line} imports {imp.name}")
            elif imp.top_level:
                why = "at module level; import it inside the command"
                found.append(f"{path}:{imp.line} imports {imp.name} {why}")
    assert found == []


def test_layers_checker_sees_the_whole_tree_and_every_import_form() -> None:
    """The scan covers the real tree and resolves relative, nested and importlib imports."""
    names = {rel(f) for f in source_files()}
    assert {"mdw/domain.py", "mdw/calendar.py", "mdw/config.py", "mdw/cli/app.py"} <= names
    assert any(imp.name == "mdw.errors" for imp in imports_of(SRC / "domain.py"))
    src = (
        "from __future__ import annotations\n"
        "from . import sqlite\n"
        "from ..polygon.client import X\n"
        "def f():\n"
        "    import aiohttp\n"
        "    importlib.import_module('mdw.simulator.server')\n"
    )
    tree_imports = {(i.name, i.top_level) for i in imports_in(src, SRC / "store" / "base.py")}
    assert ("mdw.store.sqlite", True) in tree_imports
    assert ("mdw.polygon.client", True) in tree_imports
    assert ("aiohttp", False) in tree_imports
    assert ("mdw.simulator.server", False) in tree_imports

