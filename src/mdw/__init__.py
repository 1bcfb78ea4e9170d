"""mdw: a market data warehouse for Polygon/Massive bars, dividends and splits."""

from __future__ import annotations

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
