"""The quarantine of invalid vendor bars: appended, listed and purged the same on every backend."""

from __future__ import annotations

import math
from dataclasses import astuple, replace
from typing import Any

from mdw.domain import RangeSet
from mdw.store import Dataset, QuarantinedBar, Store, SymbolInfo

from ..helpers import M1, T0

NAN = math.nan
URL = "https://api.example/v2/aggs/ticker/AAPL/range/1/minute/1/2?adjusted=false"


def _entry(t: int = T0, ticker: str = "AAPL", at: int = 5_000, **kw: Any) -> QuarantinedBar:
    fields: dict[str, Any] = dict(ticker=ticker, timeframe="1m", t=t, o=100.0, h=99.0, l=101.0, c=100.5,
                                  v=1200.5, vw=100.25, n=3_000_000_000, reason="high is below low",
                                  run_id="run-1", url=URL, quarantined_at_ms=at)
    fields.update(kw)
    return QuarantinedBar(**fields)


def _key(entry: QuarantinedBar) -> tuple[Any, ...]:
    """The entry as a tuple in which NaN compares equal to NaN."""
    return tuple("NaN" if isinstance(x, float) and math.isnan(x) else x for x in astuple(entry))


async def test_quarantine_round_trips_every_field_including_nan_and_infinity(store: Store) -> None:
    """NaN prices and omitted volumes come back as NaN, infinities as infinities, the rest exactly."""
    entries = [
        _entry(),
        _entry(T0 + 60_000, o=NAN, reason="price is not a finite number"),
        _entry(T0 + 120_000, h=math.inf, v=NAN, vw=NAN, n=0, reason="open or close below low"),
    ]
    assert await store.quarantine.add(entries) == 3
    got = await store.quarantine.recent()
    assert [_key(e) for e in got] == [_key(e) for e in entries]


async def test_quarantined_lists_newest_first_filters_by_ticker_and_honours_the_limit(store: Store) -> None:
    """Newest quarantine first, then by ticker and t; ``ticker`` and ``limit`` narrow the list."""
    old = [_entry(T0 + 60_000, at=1_000), _entry(T0, at=1_000)]
    new = [_entry(T0, ticker="MSFT", at=2_000), _entry(T0, at=2_000, run_id="run-2")]
    await store.quarantine.add(old)
    await store.quarantine.add(new)
    got = await store.quarantine.recent()
    assert [(e.quarantined_at_ms, e.ticker, e.t) for e in got] == [
        (2_000, "AAPL", T0), (2_000, "MSFT", T0), (1_000, "AAPL", T0), (1_000, "AAPL", T0 + 60_000)]
    assert [(e.run_id, e.t) for e in await store.quarantine.recent("AAPL")] == [
        ("run-2", T0), ("run-1", T0), ("run-1", T0 + 60_000)]
    assert [e.ticker for e in await store.quarantine.recent("MSFT")] == ["MSFT"]
    assert await store.quarantine.recent("NOPE") == []
    assert len(await store.quarantine.recent(limit=2)) == 2


async def test_quarantine_keeps_every_sighting_and_adds_nothing_for_no_entries(store: Store) -> None:
    """The same bar quarantined by two runs is two entries; an empty call adds none."""
    assert await store.quarantine.add([]) == 0
    await store.quarantine.add([_entry(run_id="run-1")])
    await store.quarantine.add([_entry(run_id="run-2")])
    assert sorted(e.run_id for e in await store.quarantine.recent()) == ["run-1", "run-2"]


async def test_quarantined_bars_are_neither_bars_nor_coverage(store: Store) -> None:
    """A quarantined bar is never served by ``bars`` and covers nothing."""
    await store.quarantine.add([_entry(), replace(_entry(), t=T0 + 60_000)])
    assert len(await store.bars("AAPL", M1, 0, 2**62)) == 0
    assert await store.coverage("AAPL", Dataset.BARS, "1m") == RangeSet()
    assert await store.catalog.series() == []


async def test_delete_symbol_with_purge_removes_its_quarantine_and_nothing_else(store: Store) -> None:
    """Purging a ticker forgets its quarantined bars too; other tickers' entries stay."""
    await store.symbols.upsert(SymbolInfo("AAPL", "stocks"))
    await store.quarantine.add([_entry(), _entry(ticker="MSFT")])
    assert await store.symbols.delete("AAPL") is True
    assert len(await store.quarantine.recent()) == 2  # stop tracking alone keeps the evidence
    assert await store.symbols.delete("AAPL", purge=True) is True
    assert [e.ticker for e in await store.quarantine.recent()] == ["MSFT"]
