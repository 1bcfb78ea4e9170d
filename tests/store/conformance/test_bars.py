"""Round trips, idempotent re-writes and corrections, identical on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from mdw.domain import BarBatch, RangeSet, Timeframe
from mdw.store import Store, WriteResult

from ..helpers import D1, M1, T0, make_batch, with_column, write

H1 = Timeframe.parse("1h")
FAR = T0 + 10**12


async def test_write_bars_round_trips_every_column(store: Store) -> None:
    """Bars come back exactly as written: prices, fractional volume, missing v/vw, big counts."""
    batch = make_batch(n=50)
    result = await store.write_bars([write(batch)])
    got = await store.bars("AAPL", M1, T0, FAR)
    assert result == WriteResult(inserted=50)
    assert got.equals(batch)
    assert np.isnan(got.v[0]) and got.v[1] == 1001.5


async def test_bars_returns_only_the_half_open_range(store: Store) -> None:
    """``start <= t < end``: the bar at ``end`` is excluded, the one at ``start`` included."""
    batch = make_batch(n=10)
    await store.write_bars([write(batch)])
    got = await store.bars("AAPL", M1, int(batch.t[2]), int(batch.t[5]))
    assert got.t.tolist() == batch.t[2:5].tolist()


async def test_bars_of_an_unknown_series_is_empty(store: Store) -> None:
    """Reading a series never written returns an empty batch of that ticker and timeframe."""
    got = await store.bars("NOPE", M1, T0, FAR)
    assert len(got) == 0 and got.ticker == "NOPE" and got.timeframe == M1


async def test_write_bars_keeps_timeframes_and_tickers_apart(store: Store) -> None:
    """Bars of different timeframes or tickers at the same t never collide."""
    minute, hour = make_batch(n=3), make_batch(n=3, tf=H1, price=50.0)
    other = make_batch("MSFT", n=3, price=300.0)
    result = await store.write_bars([write(minute), write(hour), write(other)])
    assert result.inserted == 9
    assert (await store.bars("AAPL", M1, T0, FAR)).equals(minute)
    assert (await store.bars("AAPL", H1, T0, FAR)).equals(hour)
    assert (await store.bars("MSFT", M1, T0, FAR)).equals(other)


async def test_write_bars_spanning_several_years_round_trips(store: Store) -> None:
    """Daily bars across year boundaries (several PostgreSQL partitions) read back in order."""
    start = int(datetime(2019, 12, 30, 5, tzinfo=UTC).timestamp() * 1000)
    batch = make_batch("SPY", n=800, t0=start, tf=D1)
    await store.write_bars([write(batch)])
    got = await store.bars("SPY", D1, 0, FAR)
    assert got.equals(batch)


async def test_iter_bars_yields_the_same_rows_in_chunks(store: Store) -> None:
    """Streaming gives the rows of ``bars`` in order, in chunks no larger than asked."""
    batch = make_batch(n=1050)
    await store.write_bars([write(batch)])
    chunks = [c async for c in store.iter_bars("AAPL", M1, T0, FAR, chunk=200)]
    assert [len(c) for c in chunks] == [200, 200, 200, 200, 200, 50]
    assert BarBatch.concat(chunks).equals(batch)


async def test_bars_arrow_has_the_bar_columns_with_nulls_for_missing_volume(store: Store) -> None:
    """The Arrow table has t, o, h, l, c, v, vw, n, otc; omitted volumes are nulls, not NaN, and a
    bar without the vendor's otc flag has a null one."""
    batch = make_batch(n=7)
    await store.write_bars([write(batch)])
    table = await store.bars_arrow("AAPL", M1, T0, FAR)
    assert table.column_names == ["t", "o", "h", "l", "c", "v", "vw", "n", "otc"]
    assert table.column("otc").null_count == 7
    assert table.column("t").to_pylist() == batch.t.tolist()
    assert table.column("v").null_count == 2
    assert table.column("n").null_count == 2  # n the vendor left out is null, never 0
    assert table.column("n").to_pylist()[1:3] == [0, 3_000_000_002]  # a real 0 stays 0
    assert table.column("c").to_pylist() == batch.c.tolist()


async def test_write_bars_rewriting_identical_data_changes_nothing(store: Store) -> None:
    """A replayed write is a no-op: nothing inserted or updated, every row unchanged."""
    batch = make_batch(n=40)
    await store.write_bars([write(batch)])
    again = await store.write_bars([write(batch)])
    assert again == WriteResult(unchanged=40)
    assert (await store.bars("AAPL", M1, T0, FAR)).equals(batch)


async def test_write_bars_counts_and_applies_a_vendor_correction(store: Store) -> None:
    """Changed rows are updated and counted; identical rows are left alone."""
    batch = make_batch(n=20)
    await store.write_bars([write(batch)])
    fixed = with_column(with_column(batch, "c", 3, 100.9), "v", 7, 5.0)
    fixed = with_column(fixed, "v", 0, 12.0)  # a volume the vendor had omitted now arrives
    result = await store.write_bars([write(fixed)])
    got = await store.bars("AAPL", M1, T0, FAR)
    assert result == WriteResult(updated=3, unchanged=17)
    assert got.equals(fixed)


async def test_write_bars_overlapping_write_counts_new_and_known_rows(store: Store) -> None:
    """A write that overlaps stored bars inserts only the new ones."""
    batch = make_batch(n=30)
    await store.write_bars([write(batch.take(slice(0, 20)))])
    result = await store.write_bars([write(batch)])
    assert result == WriteResult(inserted=10, unchanged=20)
    assert (await store.bars("AAPL", M1, T0, FAR)).equals(batch)


async def test_write_bars_of_many_series_diffs_each_against_its_own_stored_bars(store: Store) -> None:
    """One write of several series, each at another place relative to what is stored (before its
    first bar, after its last, across it with a correction, a new series): each is diffed against
    its own stored bars only, so exactly the new rows are inserted and the corrected one counted."""
    aapl, msft, nvda = make_batch("AAPL", 30), make_batch("MSFT", 30), make_batch("NVDA", 30)
    await store.write_bars([write(aapl.take(slice(10, 20))), write(msft.take(slice(0, 10))),
                            write(nvda.take(slice(20, 30)))])  # fmt: skip
    fixed = with_column(aapl, "v", 16, 7.0)
    result = await store.write_bars([
        write(fixed),  # AAPL: 10 new before, 1 corrected, 9 unchanged, 10 new after
        write(msft.take(slice(10, 30))),  # MSFT: 20 new after its last bar
        write(nvda.take(slice(0, 20))),  # NVDA: 20 new before its first bar
        write(make_batch("SPY", 5)),  # SPY: a new series
    ])  # fmt: skip
    assert result == WriteResult(inserted=65, updated=1, unchanged=9)
    assert (await store.bars("AAPL", M1, T0, FAR)).equals(fixed)
    assert (await store.bars("MSFT", M1, T0, FAR)).equals(msft)
    assert (await store.bars("NVDA", M1, T0, FAR)).equals(nvda)
    assert len(await store.bars("SPY", M1, T0, FAR)) == 5


async def test_write_bars_upserts_rows_stored_without_a_ledger_entry(store: Store) -> None:
    """Rows present in the table but not in the ledger are still upserted, never duplicated."""
    batch = make_batch(n=12)
    await store.write_bars([write(batch, RangeSet())])
    result = await store.write_bars([write(with_column(batch, "o", 2, 100.3))])
    assert result == WriteResult(updated=1, unchanged=11)


async def test_write_bars_merges_several_writes_of_one_series(store: Store) -> None:
    """Two writes of the same series in one call land together, in order."""
    batch = make_batch(n=10)
    result = await store.write_bars([write(batch.take(slice(5, 10))), write(batch.take(slice(0, 5)))])
    assert result.inserted == 10
    assert (await store.bars("AAPL", M1, T0, FAR)).equals(batch)


async def test_write_bars_stores_the_source_of_derived_bars(store: Store) -> None:
    """Bars derived locally are accepted; re-deriving identical values changes nothing."""
    batch = make_batch(n=5, tf=H1, source="derived")
    assert (await store.write_bars([write(batch)])).inserted == 5
    assert (await store.write_bars([write(batch)])) == WriteResult(unchanged=5)


async def test_bars_accept_a_timeframe_given_as_text(store: Store) -> None:
    """Reads and coverage take ``"1m"`` as well as a Timeframe."""
    batch = make_batch(n=4)
    await store.write_bars([write(batch)])
    assert (await store.bars("AAPL", "1m", T0, FAR)).equals(batch)  # type: ignore[arg-type]
    assert [len(c) async for c in store.iter_bars("AAPL", "1m", T0, FAR)] == [4]  # type: ignore[arg-type]
    assert await store.coverage("AAPL", "bars", M1) == await store.coverage("AAPL", "bars", "1m")  # type: ignore[arg-type]
