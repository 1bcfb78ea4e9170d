"""Reading every import under src/mdw with ``ast``, for the layer rules of test_layers.py.

Imports are read, never executed: module-level ones, those inside functions, those under
``TYPE_CHECKING`` (marked type-only), relative imports, and ``importlib.import_module("...")``
calls with a literal. ``from a import b`` yields both ``a`` and ``a.b``, so a rule about module
``a.b`` holds whether it was imported as a module or a name.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import mdw

SRC = Path(mdw.__file__).resolve().parent  # .../src/mdw
ROOT = SRC.parent


@dataclass(frozen=True)
class Import:
    """One imported module name, where it was imported, at module level or not, and for types only."""

    name: str
    line: int
    top_level: bool
    typing_only: bool = False


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


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return getattr(test, "id", getattr(test, "attr", "")) == "TYPE_CHECKING"


@functools.cache
def imports_of(path: Path) -> tuple[Import, ...]:
    """Every module name ``path`` imports (each file is parsed once per test session)."""
    return tuple(imports_in(path.read_text(encoding="utf-8"), path))


def imports_in(text: str, path: Path) -> list[Import]:
    """The imports of source ``text`` as though it were the module at ``path``."""
    tree = ast.parse(text, filename=str(path))
    top = {id(n) for n in tree.body}
    typing_only: set[int] = set()
    for node in tree.body:  # TYPE_CHECKING / try blocks at module level count as top level
        if isinstance(node, ast.If | ast.Try):
            top.update(id(n) for n in ast.walk(node))
        if isinstance(node, ast.If) and _is_type_checking(node):
            typing_only.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    out: list[Import] = []
    for node in ast.walk(tree):
        at_top, types = id(node) in top, id(node) in typing_only
        if isinstance(node, ast.Import):
            out.extend(Import(alias.name, node.lineno, at_top, types) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(path, node)
            out.append(Import(base, node.lineno, at_top, types))
            out.extend(Import(f"{base}.{alias.name}", node.lineno, at_top, types) for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append(Import(node.args[0].value, node.lineno, at_top))
    return out


def calls_of(path: Path, name: str) -> list[int]:
    """Lines where ``path`` calls the bare name ``name`` (``open(...)``, not ``x.open(...)``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name]


def matches(name: str, prefixes: tuple[str, ...] | frozenset[str] | set[str]) -> bool:
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


def component(name: str) -> str:
    """The layer a module of mdw belongs to: ``mdw.store.sqlite`` -> ``store``, ``mdw.api`` -> ``api``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"
