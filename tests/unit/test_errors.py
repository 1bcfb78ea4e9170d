"""The error tree: every exception class of mdw derives from MdwError, placed where errors.py draws it."""

from __future__ import annotations

import importlib
import re

import pytest
from layer_scan import module_of, source_files

import mdw.errors
from mdw.errors import MdwError

_BRANCH = re.compile(r"^(?P<indent>(?:[│ ] {3})*)[├└]── (?P<name>\w+)")


def _drawn_tree() -> dict[str, str]:
    """Each class drawn in the errors.py docstring, mapped to the class drawn as its parent."""
    doc = mdw.errors.__doc__ or ""
    lines = doc[doc.index("    MdwError"):].splitlines()
    parents: dict[str, str] = {}
    stack = ["MdwError"]
    for line in lines[1:]:
        m = _BRANCH.match(line.removeprefix("    "))
        if m is None:
            break
        depth = len(m["indent"]) // 4
        del stack[depth + 1:]
        parents[m["name"]] = stack[depth]
        stack.append(m["name"])
    return parents


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined under src/mdw (each module imported once, simulator included)."""
    found: dict[str, type[BaseException]] = {}
    for path in source_files():
        module = importlib.import_module(module_of(path))
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def test_errors_every_exception_class_in_src_derives_from_mdw_error() -> None:
    """No deliberate error escapes the tree: a caller can catch everything mdw raises as MdwError."""
    escaped = sorted(name for name, cls in _exception_classes().items() if not issubclass(cls, MdwError))
    assert escaped == []


def test_errors_tree_in_the_docstring_is_the_class_tree() -> None:
    """errors.py draws every MdwError subclass once, under its real parent, and nothing else."""
    drawn = _drawn_tree()
    actual = {cls.__name__: next(b for b in cls.__bases__ if issubclass(b, MdwError)).__name__
              for cls in _exception_classes().values() if issubclass(cls, MdwError) and cls is not MdwError}
    assert drawn == actual


@pytest.mark.parametrize("name", ["InvalidBarsError", "ApiError", "ListingError"])
def test_errors_classes_defined_elsewhere_name_their_module_in_the_tree(name: str) -> None:
    """A class drawn in the tree but defined outside errors.py says where it lives."""
    cls = next(c for c in _exception_classes().values() if c.__name__ == name)
    line = next(x for x in (mdw.errors.__doc__ or "").splitlines() if f"── {name} " in x)
    assert f"({cls.__module__})" in line
