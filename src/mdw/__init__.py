"""mdw: a market data warehouse for Polygon/Massive bars, dividends and splits.

The public names load on first use (PEP 562): ``import mdw`` stays cheap (no numpy, pydantic or
structlog), so ``mdw --help`` and a script that only needs one name start fast. The imports under
``TYPE_CHECKING`` tell type checkers and IDEs what each name is.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mdw.api import Warehouse, connect
    from mdw.config import RateLimit, Settings, load_settings
    from mdw.domain import (
        AssetClass,
        BarBatch,
        Dividend,
        RangeSet,
        Split,
        Ticker,
        Timeframe,
        TimeRange,
        parse_ticker,
    )
    from mdw.errors import MdwError

__version__ = "0.1.0"

# Each public name and the module that defines it.
_LAZY = {
    "Warehouse": "mdw.api",
    "connect": "mdw.api",
    "RateLimit": "mdw.config",
    "Settings": "mdw.config",
    "load_settings": "mdw.config",
    "AssetClass": "mdw.domain",
    "BarBatch": "mdw.domain",
    "Dividend": "mdw.domain",
    "RangeSet": "mdw.domain",
    "Split": "mdw.domain",
    "Ticker": "mdw.domain",
    "Timeframe": "mdw.domain",
    "TimeRange": "mdw.domain",
    "parse_ticker": "mdw.domain",
    "MdwError": "mdw.errors",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mdw' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
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
]
