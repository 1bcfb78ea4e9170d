"""The curated public API: ``mdw.__all__`` is pinned, so growing or shrinking it is deliberate."""

from __future__ import annotations

import mdw

# The public names of ``import mdw``. When a change adds or removes one on purpose, update this
# set in the same commit (and CHANGELOG.md): the diff then shows the API change in review.
PUBLIC_API = {
    "AssetClass",
    "BarBatch",
    "Dividend",
    "MdwError",
    "RangeSet",
    "RateLimit",
    "Settings",
    "Split",
    "Ticker",
    "TimeRange",
    "Timeframe",
    "Warehouse",
    "connect",
    "load_settings",
    "parse_ticker",
}


def test_public_api_all_is_exactly_the_pinned_set() -> None:
    """``mdw.__all__`` lists the pinned names, each once."""
    assert sorted(mdw.__all__) == sorted(PUBLIC_API)
    assert len(mdw.__all__) == len(set(mdw.__all__))


def test_public_api_every_name_resolves_and_is_public() -> None:
    """Every exported name exists on the package and claims to come from an mdw module."""
    for name in mdw.__all__:
        obj = getattr(mdw, name)
        assert getattr(obj, "__module__", "mdw").startswith("mdw"), name


def test_public_api_star_import_gives_exactly_all() -> None:
    """``from mdw import *`` brings in the exported names and nothing private."""
    namespace: dict[str, object] = {}
    exec("from mdw import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(mdw.__all__)


def test_public_api_version_is_a_dotted_string() -> None:
    """``mdw.__version__`` is available for bug reports (not part of ``__all__``)."""
    assert all(part.isdigit() for part in mdw.__version__.split(".")[:2])
