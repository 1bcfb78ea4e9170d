"""``Store.write_market``: many tickers' bars as columns, diffed and written as a whole, with market days."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date

import numpy as np
import pytest

from mdw.domain import BarBatch, MarketBars
from mdw.errors import StoreError, ValidationError
from mdw.store import Dataset, MarketDay, Store

from .helpers import M1, MIN, T0, days, make_batch, with_column, write

DAY = days(date(2024, 3, 4), date(2024, 3, 4))  # T0's day


def market(batches: Sequence[BarBatch], source: str = "flatfile") -> MarketBars:
    """The batches' rows as one market write, in the given order (not grouped by name)."""
    names = tuple(b.ticker for b in batches)
    code = np.concatenate([np.full(len(b), k, dtype=np.int64) for k, b in enumerate(batches)])
    cols = {name: np.concatenate([getattr(b, name) for b in batches])
            for name in ("t", "o", "h", "l", "c", "v", "vw", "n")}
    return MarketBars(names, M1, code, cols["t"], cols["o"], cols["h"], cols["l"], cols["c"], cols["v"],
                      cols["vw"], cols["n"], source, np.concatenate([b.otc for b in batches]))


def the_day(etag: str = '"a"') -> MarketDay:
    return MarketDay("stocks", "1m", DAY.start_ms, DAY.end_ms, "us_stocks_sip/minute_aggs_v1", etag, 10, 5, 6)


async def assert_stored(store: Store, batch: BarBatch) -> None:
    got = await store.bars(batch.ticker, M1, DAY.start_ms, DAY.end_ms)
    assert got.equals(batch.with_source(got.source)), batch.ticker


async def test_write_market_stores_every_tickers_rows_and_the_day_in_one_write(store: Store) -> None:
    """Rows out of name order and out of time order are stored per ticker, sorted; the day is covered."""
    msft, aapl, ibm = (make_batch(name, 30, price=p, source="flatfile")
                       for name, p in (("MSFT", 300.0), ("AAPL", 100.0), ("IBM", 150.0)))
    shuffled = aapl.take(np.random.default_rng(1).permutation(len(aapl)))
    result = await store.write_market(market([msft, shuffled, ibm]), days=[the_day()])
    assert (result.inserted, result.updated, result.unchanged) == (90, 0, 0)
    for batch in (msft, aapl, ibm):
        await assert_stored(store, batch)
    for ticker in ("AAPL", "NOTTRADED"):  # absent from the write: confirmed empty for the day
        assert list(await store.coverage(ticker, Dataset.BARS, "1m")) == [DAY]
    again = await store.write_market(market([ibm, msft, aapl]), days=[the_day()])
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 90)


async def test_write_market_counts_corrections_as_updated_and_new_rows_as_inserted(store: Store) -> None:
    """A replaced file: changed values, a flag, another source are corrections; a new minute an insert."""
    aapl, msft = make_batch("AAPL", 20, source="flatfile"), make_batch("MSFT", 20, price=300.0)
    await store.write_market(market([aapl]))
    await store.write_bars([write(msft)])  # stored from REST: the file's identical values are corrections
    fixed = with_column(with_column(with_column(aapl, "c", 3, 100.9), "v", 7, 5.0), "otc", 2, 1)
    longer = make_batch("AAPL", 21, source="flatfile")
    fixed = BarBatch.concat([fixed, longer.take(slice(20, 21))])
    result = await store.write_market(market([fixed, msft.with_source("flatfile")]))
    assert (result.inserted, result.updated, result.unchanged) == (1, 3 + 20, 17)
    await assert_stored(store, fixed)
    await assert_stored(store, msft)


async def test_write_market_refuses_an_invalid_row_and_writes_nothing(store: Store) -> None:
    """One bad row (high below low, or a duplicate minute) fails the whole write, the day included."""
    good, bad = make_batch("AAPL", 10, source="flatfile"), make_batch("MSFT", 10, source="flatfile")
    for broken in (with_column(bad, "h", 4, 1.0), bad.take(np.array([0, 1, 1, 2]))):
        with pytest.raises(ValidationError) as err:
            await store.write_market(market([good, broken]), days=[the_day()])
        assert "MSFT" in str(err.value) and err.value.bars is not None and err.value.bars.ticker == "MSFT"
        assert not len(await store.bars("AAPL", M1, DAY.start_ms, DAY.end_ms))
        assert not await store.coverage("AAPL", Dataset.BARS, "1m")
        assert not await store.market_days.recorded("us_stocks_sip/minute_aggs_v1", 0, 2**62)


async def test_write_market_failing_in_the_database_leaves_no_bars_and_no_day(
    store: Store, fail_when: Callable[[str], Awaitable[None]],
) -> None:
    """A failure inside the transaction undoes every ticker's rows and the market day together."""
    aapl, msft = make_batch("AAPL", 10, source="flatfile"), make_batch("MSFT", 10, source="flatfile")
    await fail_when(f"NEW.ticker = 'MSFT' AND NEW.t = {T0 + 5 * MIN}")
    with pytest.raises(StoreError):
        await store.write_market(market([aapl, msft]), days=[the_day()])
    assert not len(await store.bars("AAPL", M1, DAY.start_ms, DAY.end_ms))
    assert not await store.coverage("AAPL", Dataset.BARS, "1m")


async def test_write_market_of_no_rows_records_the_day_alone(store: Store) -> None:
    """The last transaction of a file whose rows were all written (or derived) earlier."""
    result = await store.write_market(MarketBars.empty(M1), days=[the_day('"b"')])
    assert result.written == 0
    recorded = await store.market_days.recorded("us_stocks_sip/minute_aggs_v1", 0, 2**62)
    assert [d.etag for d in recorded] == ['"b"']
