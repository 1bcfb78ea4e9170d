"""Helpers shared by the planner and engine tests."""

from __future__ import annotations

from datetime import date

from mdw.backfill.plan import BackfillSpec
from mdw.domain import parse_tickers, parse_timeframes


def make_spec(tickers: str, timeframes: str, start: str, end: str, **kw: object) -> BackfillSpec:
    """A spec from CLI-style text: comma-separated tickers and timeframes, ISO days inclusive."""
    return BackfillSpec(
        tuple(parse_tickers(tickers)),
        tuple(parse_timeframes(timeframes)),
        date.fromisoformat(start),
        date.fromisoformat(end),
        **kw,
    )  # type: ignore[arg-type]
