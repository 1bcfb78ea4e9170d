"""What the warehouse holds, per series: first and last bar, bar count, gaps, last fetched."""

from __future__ import annotations

from dataclasses import dataclass

from mdw.backfill.planner import uncovered
from mdw.domain import AssetClass, SeriesKey, TimeRange, parse_ticker
from mdw.errors import UsageError
from mdw.store.base import Dataset, Store


@dataclass(frozen=True, slots=True)
class SeriesStatus:
    """One stored series at a glance; ``gaps`` counts tradable holes between its first and last bar."""

    ticker: str
    timeframe: str
    bars: int
    first_t: int | None
    last_t: int | None
    gaps: int
    covered_ranges: int
    last_fetched_ms: int | None

    def to_dict(self) -> dict[str, object]:
        return {
            "ticker": self.ticker,
            "timeframe": self.timeframe,
            "bars": self.bars,
            "first_t": self.first_t,
            "last_t": self.last_t,
            "gaps": self.gaps,
            "covered_ranges": self.covered_ranges,
            "last_fetched_ms": self.last_fetched_ms,
        }


def _asset(ticker: str, known: dict[str, str]) -> AssetClass:
    if ticker in known:
        return AssetClass(known[ticker])
    try:
        return parse_ticker(ticker).asset_class
    except UsageError:
        return AssetClass.STOCKS


async def series_status(store: Store, tickers: set[str] | None = None) -> list[SeriesStatus]:
    """Every bar series in the store (or only those of ``tickers``), sorted by ticker and timeframe."""
    known = {s.ticker: s.asset_class for s in await store.symbols.all()}
    entries = await store.catalog.ledger()
    fetched: dict[SeriesKey, int] = {}
    ranges: dict[SeriesKey, int] = {}
    for e in entries:
        if e.dataset != Dataset.BARS:
            continue
        key = SeriesKey.of(e.ticker, e.timeframe)
        fetched[key] = max(fetched.get(key, 0), e.fetched_at_ms)
        ranges[key] = ranges.get(key, 0) + 1
    out: list[SeriesStatus] = []
    for s in await store.catalog.series():
        if tickers and s.ticker not in tickers:
            continue
        key = SeriesKey.of(s.ticker, s.timeframe)
        gaps = 0
        if s.first_t is not None and s.last_t is not None:
            held = await store.coverage(s.ticker, Dataset.BARS, s.timeframe)
            gaps = len(uncovered(_asset(s.ticker, known), key.timeframe, TimeRange(s.first_t, s.last_t + 1),
                                 held))
        out.append(
            SeriesStatus(
                s.ticker, s.timeframe, s.bars, s.first_t, s.last_t, gaps, ranges.get(key, 0), fetched.get(key)
            )
        )
    out.sort(key=lambda r: SeriesKey.of(r.ticker, r.timeframe).sort_key())
    return out
