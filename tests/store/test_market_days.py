"""Whole-market days: one row covers every ticker of an asset class; holes keep deletions honest."""

from __future__ import annotations

from datetime import date

from mdw.domain import NEW_YORK, day_range_ms
from mdw.store import Dataset, MarketDay, open_store

from .conftest import Backend
from .helpers import M1, T0, make_batch, write

DAY = day_range_ms(date(2024, 3, 4), date(2024, 3, 4), NEW_YORK)  # T0's day
NEXT = day_range_ms(date(2024, 3, 5), date(2024, 3, 5), NEW_YORK)


def _day(rng: object, timeframe: str = "1m", etag: str = '"a"', asset: str = "stocks") -> MarketDay:
    start, end = rng.start_ms, rng.end_ms  # type: ignore[attr-defined]
    return MarketDay(asset, timeframe, start, end, "us_stocks_sip/minute_aggs_v1", etag, 123, 5, 6)


async def test_market_days_cover_every_ticker_of_their_asset_class(backend: Backend) -> None:
    """A recorded stock day is held for any stock ticker, not for crypto, not at another timeframe."""
    async with await open_store(backend.url) as store:
        await store.market_days.record([_day(DAY), _day(NEXT)])
        both = DAY.__class__(DAY.start_ms, NEXT.end_ms)
        assert list(await store.coverage("AAPL", Dataset.BARS, "1m")) == [both]
        assert list(await store.coverage("NOTLISTED", Dataset.BARS, "1m")) == [both]
        assert not await store.coverage("X:BTCUSD", Dataset.BARS, "1m")
        assert not await store.coverage("AAPL", Dataset.BARS, "5m")
        assert not await store.coverage("AAPL", Dataset.DIVIDENDS)


async def test_market_days_are_upserted_with_the_file_they_came_from(backend: Backend) -> None:
    """Recording a day again replaces its ETag; recorded() lists a dataset's days by start."""
    async with await open_store(backend.url) as store:
        await store.market_days.record([_day(NEXT), _day(DAY)])
        await store.market_days.record([_day(DAY, etag='"b"')])
        got = await store.market_days.recorded("us_stocks_sip/minute_aggs_v1", 0, 2**62)
        assert [(d.start_ms, d.etag) for d in got] == [(DAY.start_ms, '"b"'), (NEXT.start_ms, '"a"')]
        later = await store.market_days.recorded("us_stocks_sip/minute_aggs_v1", NEXT.start_ms, 2**62)
        assert later == [got[1]]


async def test_market_days_delete_range_takes_the_range_out_of_one_ticker_only(backend: Backend) -> None:
    """delete_range inside a market day uncovers that ticker's range; other tickers stay covered."""
    async with await open_store(backend.url) as store:
        await store.write_bars([write(make_batch("AAPL", n=3))])
        await store.market_days.record([_day(DAY)])
        cut = DAY.__class__(T0, T0 + 3 * 60_000)
        assert await store.delete_range("AAPL", M1, cut.start_ms, cut.end_ms) == 3
        held = await store.coverage("AAPL", Dataset.BARS, "1m")
        assert not held.covers(cut) and held.covers(DAY.__class__(DAY.start_ms, cut.start_ms))
        assert list(await store.coverage("MSFT", Dataset.BARS, "1m")) == [DAY]
        await store.market_days.record([_day(DAY, etag='"again"')])  # the file stored again
        assert list(await store.coverage("AAPL", Dataset.BARS, "1m")) == [DAY]


async def test_market_days_no_longer_cover_a_purged_symbol(backend: Backend) -> None:
    """A purge takes every market day out of that ticker's coverage, until the day is stored again."""
    async with await open_store(backend.url) as store:
        await store.market_days.record([_day(DAY), _day(DAY, "1h")])
        await store.write_bars([write(make_batch("KO", n=2))])
        assert await store.symbols.delete("KO", purge=True)
        assert not await store.coverage("KO", Dataset.BARS, "1m")
        assert not await store.coverage("KO", Dataset.BARS, "1h")
        assert list(await store.coverage("PEP", Dataset.BARS, "1h")) == [DAY]
        await store.market_days.record([_day(NEXT)])
        assert list(await store.coverage("KO", Dataset.BARS, "1m")) == [NEXT]


async def test_coverage_many_equals_coverage_one_ticker_at_a_time(backend: Backend) -> None:
    """A universe's plan reads coverage in bulk: the same ranges as one read per ticker, market days,
    their holes and ledger rows together, tickers with nothing held included."""
    async with await open_store(backend.url) as store:
        await store.write_bars([write(make_batch("AAPL", n=3)),
                                write(make_batch("MSFT", n=5, t0=T0 + 10 * 60_000))])
        await store.market_days.record([_day(NEXT)])
        await store.delete_range("MSFT", M1, NEXT.start_ms, NEXT.start_ms + 60_000)
        names = ["AAPL", "MSFT", "NOTLISTED", "X:BTCUSD"]
        many = await store.coverage_many(names, Dataset.BARS, "1m")
        assert set(many) == set(names)
        for name in names:
            assert many[name] == await store.coverage(name, Dataset.BARS, "1m"), name
        assert many["AAPL"] and many["MSFT"] != many["AAPL"] and not many["X:BTCUSD"]
        assert await store.coverage_many(["AAPL"], Dataset.DIVIDENDS) == {"AAPL": await store.coverage(
            "AAPL", Dataset.DIVIDENDS)}
