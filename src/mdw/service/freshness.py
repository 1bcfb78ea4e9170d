"""How far behind the stored data is: tradable time between a series' coverage end and now.

Counting only tradable time (per the calendar) keeps a stock's daily series "fresh" over a
weekend and makes a crypto series stale after an hour without data, with one threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

from mdw.calendar import bar_window_start, tradable
from mdw.domain import DAY_MS, SeriesKey, Timeframe, TimeRange, parse_ticker
from mdw.errors import UsageError
from mdw.store.base import CoverageEntry, Dataset, Store

_HORIZON_MS = 400 * DAY_MS  # older than this is "very stale"; no need to count exactly


@dataclass(frozen=True, slots=True)
class SeriesFreshness:
    """One series' lag: how much tradable time since its coverage ended, and when it was fetched."""

    series: SeriesKey
    covered_end_ms: int
    fetched_at_ms: int
    lag_ms: int


def lag_ms(ticker: str, timeframe: Timeframe, covered_end_ms: int, now_ms: int) -> int:
    """Tradable ms in ``[covered_end, start of the window holding now)``: complete bars not held."""
    try:
        asset = parse_ticker(ticker).asset_class
    except UsageError:
        return max(0, now_ms - covered_end_ms)
    current = bar_window_start(asset, timeframe, now_ms)
    start = max(covered_end_ms, current - _HORIZON_MS)
    if start >= current:
        return 0
    missing = tradable(asset, timeframe, TimeRange(start, current)).total_ms
    return missing + (start - covered_end_ms if start > covered_end_ms else 0)


def freshness_of(entries: list[CoverageEntry], now_ms: int) -> list[SeriesFreshness]:
    """Per bars series in ``entries``: its lag at ``now_ms`` (by ticker, finest timeframe first)."""
    ends: dict[SeriesKey, tuple[int, int]] = {}
    for e in entries:
        if e.dataset is not Dataset.BARS:
            continue
        try:
            key = SeriesKey.of(e.ticker, e.timeframe)
        except UsageError:  # a row written by something else than mdw: not a series mdw tracks
            continue
        end, fetched = ends.get(key, (0, 0))
        ends[key] = (max(end, e.end_ms), max(fetched, e.fetched_at_ms))
    return [SeriesFreshness(key, end, fetched, lag_ms(key.ticker, key.timeframe, end, now_ms))
            for key, (end, fetched) in sorted(ends.items(), key=lambda item: item[0].sort_key())]


async def series_freshness(store: Store, now_ms: int, ticker: str | None = None) -> list[SeriesFreshness]:
    """Freshness of every stored bars series (or of one ticker's)."""
    return freshness_of(await store.catalog.ledger(ticker), now_ms)
