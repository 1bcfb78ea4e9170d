"""Bad input is refused before any write; a failure inside the transaction leaves nothing behind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from mdw.domain import RangeSet
from mdw.errors import StoreError, ValidationError
from mdw.store import Dataset, Store, WriteResult

from ..helpers import M1, T0, make_batch, with_column, write

FAR = T0 + 10**12
FailWhen = Callable[[str], Awaitable[None]]


async def _nothing_stored(store: Store, *tickers: str) -> bool:
    for ticker in tickers:
        if len(await store.bars(ticker, M1, 0, FAR)) or await store.coverage(ticker, Dataset.BARS, "1m"):
            return False
    return True


async def test_write_bars_failure_in_a_later_series_leaves_no_bars_or_coverage(
    store: Store, fail_when: FailWhen
) -> None:
    """The first series is written, the second fails in the database: both are rolled back."""
    await fail_when("NEW.ticker = 'ZZZ'")
    good, bad = make_batch("AAA", n=50), make_batch("ZZZ", n=50)
    with pytest.raises(StoreError, match="injected failure"):
        await store.write_bars([write(good), write(bad)])
    assert await _nothing_stored(store, "AAA", "ZZZ")


async def test_write_bars_failure_partway_through_a_batch_keeps_the_earlier_state(
    store: Store, fail_when: FailWhen
) -> None:
    """A correction plus new bars that fails on row 60 leaves the stored bars and ledger as they were."""
    first = make_batch(n=40)
    await store.write_bars([write(first)])
    before = await store.catalog.ledger("AAPL")
    bigger = with_column(make_batch(n=100), "c", 5, 100.75)  # corrects a stored bar, adds 60 more
    await fail_when(f"NEW.t = {int(bigger.t[60])}")
    with pytest.raises(StoreError, match="injected failure"):
        await store.write_bars([write(bigger)])
    assert (await store.bars("AAPL", M1, 0, FAR)).equals(first)
    assert await store.catalog.ledger("AAPL") == before


async def test_write_bars_store_stays_usable_after_a_failed_transaction(
    store: Store, fail_when: FailWhen
) -> None:
    """After a rolled-back write the next write on the same store succeeds."""
    await fail_when("NEW.ticker = 'ZZZ'")
    with pytest.raises(StoreError):
        await store.write_bars([write(make_batch("ZZZ", n=5))])
    assert await store.write_bars([write(make_batch("AAA", n=5))]) == WriteResult(inserted=5)


@pytest.mark.parametrize(
    ("column", "row", "value", "reason"),
    [
        ("l", 3, 200.0, "high is below low"),
        ("t", 4, T0 + 3 * 60_000, "duplicate timestamp"),
        ("t", 4, T0, "out of order"),
        ("t", 6, T0 + 6 * 60_000 + 1_000, "not aligned"),
        ("v", 2, -1.0, "negative volume"),
    ],
)
async def test_write_bars_rejects_a_broken_batch_naming_its_rows_and_writes_nothing(
    store: Store, column: str, row: int, value: float, reason: str
) -> None:
    """A batch breaking an invariant raises ValidationError naming the row; no series is written."""
    good = make_batch("AAA", n=10)
    broken = with_column(make_batch("BBB", n=10), column, row, value)
    with pytest.raises(ValidationError, match=reason) as info:
        await store.write_bars([write(good), write(broken)])
    assert row in info.value.rows
    assert f"row {row}" in str(info.value)
    assert await _nothing_stored(store, "AAA", "BBB")


async def test_write_bars_rejects_the_same_bar_in_two_writes_of_one_call(store: Store) -> None:
    """Two writes carrying the same t for one series are ambiguous and rejected whole."""
    batch = make_batch(n=10)
    with pytest.raises(ValidationError, match="two writes"):
        await store.write_bars([write(batch.take(slice(0, 6))), write(batch.take(slice(5, 10)))])
    assert await _nothing_stored(store, "AAPL")


async def test_write_bars_rejects_an_unknown_source(store: Store) -> None:
    """Only rest, grouped and derived bars are stored."""
    batch = make_batch(n=3).with_source("scraped")
    with pytest.raises(ValidationError, match="source"):
        await store.write_bars([write(batch, RangeSet())])
    assert await _nothing_stored(store, "AAPL")
