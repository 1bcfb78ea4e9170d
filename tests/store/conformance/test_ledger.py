"""The coverage ledger: merging, confirmed-empty ranges, cutting holes, and calendar-aware gaps over it."""

from __future__ import annotations

from datetime import date

from mdw.backfill.planner import uncovered
from mdw.domain import DAY_MS, AssetClass, BarBatch, RangeSet, Timeframe, TimeRange, to_ms
from mdw.store import BarWrite, Dataset, Store

from ..helpers import D1, M1, MIN, T0, days, make_batch, span, write

FAR = T0 + 10**12


async def _gaps(store: Store, ticker: str, tf: Timeframe, asset: AssetClass, rng: TimeRange) -> RangeSet:
    """The planner's holes over what the store says it covers (the store itself computes no gaps)."""
    return uncovered(asset, tf, rng, await store.coverage(ticker, Dataset.BARS, str(tf)))


async def test_coverage_merges_overlapping_and_touching_ranges(store: Store) -> None:
    """Ranges that overlap or abut become one; a separate range stays separate."""
    empty = BarBatch.empty("AAPL", M1)
    for rng in [(0, 100 * MIN), (100 * MIN, 200 * MIN), (150 * MIN, 250 * MIN), (400 * MIN, 500 * MIN)]:
        await store.write_bars([BarWrite(empty, RangeSet.of([rng]))])
    held = await store.coverage("AAPL", Dataset.BARS, "1m")
    entries = await store.catalog.ledger("AAPL")
    assert held == RangeSet.of([(0, 250 * MIN), (400 * MIN, 500 * MIN)])
    assert [(e.start_ms, e.end_ms) for e in entries] == [(0, 250 * MIN), (400 * MIN, 500 * MIN)]


async def test_coverage_records_ranges_the_vendor_confirmed_empty(store: Store) -> None:
    """A write with no bars still records its range, so it is not fetched again."""
    rng = days(date(2024, 3, 4), date(2024, 3, 8))
    await store.write_bars([BarWrite(BarBatch.empty("ZZZ", D1), RangeSet.of([rng]))])
    assert await store.coverage("ZZZ", Dataset.BARS, "1d") == RangeSet.of([rng])
    assert len(await store.bars("ZZZ", D1, 0, FAR)) == 0


async def test_coverage_is_kept_per_ticker_dataset_and_timeframe(store: Store) -> None:
    """Coverage of one series says nothing about another timeframe or ticker."""
    batch = make_batch(n=5)
    await store.write_bars([write(batch)])
    assert await store.coverage("AAPL", Dataset.BARS, "1m") == span(batch)
    assert await store.coverage("AAPL", Dataset.BARS, "1d") == RangeSet()
    assert await store.coverage("MSFT", Dataset.BARS, "1m") == RangeSet()
    assert await store.coverage("AAPL", Dataset.SPLITS) == RangeSet()


async def test_coverage_fetched_at_is_renewed_only_where_a_write_touches(store: Store) -> None:
    """A merged range takes the new fetched_at; an untouched range keeps its own."""
    empty = BarBatch.empty("AAPL", M1)
    await store.write_bars(
        [BarWrite(empty, RangeSet.of([(0, 10 * MIN), (50 * MIN, 60 * MIN)]))], fetched_at_ms=1_000
    )
    await store.write_bars([BarWrite(empty, RangeSet.of([(10 * MIN, 20 * MIN)]))], fetched_at_ms=2_000)
    entries = await store.catalog.ledger("AAPL")
    assert [(e.start_ms, e.end_ms, e.fetched_at_ms) for e in entries] == [
        (0, 20 * MIN, 2_000),
        (50 * MIN, 60 * MIN, 1_000),
    ]
    assert {e.dataset for e in entries} == {Dataset.BARS} and entries[0].timeframe == "1m"


async def test_delete_range_removes_bars_and_cuts_their_coverage(store: Store) -> None:
    """Cutting a hole deletes exactly the bars in it and leaves the ledger's two sides."""
    batch = make_batch(n=100)
    await store.write_bars([write(batch)], fetched_at_ms=5)
    hole = TimeRange(int(batch.t[20]), int(batch.t[30]))
    deleted = await store.delete_range("AAPL", M1, hole.start_ms, hole.end_ms)
    got = await store.bars("AAPL", M1, T0, FAR)
    assert deleted == 10
    assert got.t.tolist() == batch.t[:20].tolist() + batch.t[30:].tolist()
    assert await store.coverage("AAPL", Dataset.BARS, "1m") == span(batch) - [hole]
    assert {e.fetched_at_ms for e in await store.catalog.ledger("AAPL")} == {5}


async def test_gaps_report_a_hole_cut_in_stored_data(store: Store) -> None:
    """After a hole is cut, gaps over the stored span is exactly the hole."""
    batch = make_batch(n=120)  # Monday 04:00-06:00 ET, inside extended hours
    await store.write_bars([write(batch)])
    hole = TimeRange(int(batch.t[40]), int(batch.t[45]))
    await store.delete_range("AAPL", "1m", hole.start_ms, hole.end_ms)
    rng = span(batch).ranges[0]
    assert await _gaps(store, "AAPL", M1, AssetClass.STOCKS, rng) == RangeSet.of([hole])


async def test_gaps_skip_weekends_and_holidays(store: Store) -> None:
    """Daily coverage of every session around Thanksgiving and a weekend leaves no gap."""
    week = days(date(2023, 11, 20), date(2023, 11, 28))  # Thanksgiving Thu 23rd, weekend 25-26th
    sessions = [date(2023, 11, d) for d in (20, 21, 22, 24, 27, 28)]
    covered = RangeSet.of(days(d, d) for d in sessions)
    await store.write_bars([BarWrite(BarBatch.empty("AAPL", D1), covered)])
    assert await _gaps(store, "AAPL", D1, AssetClass.STOCKS, week) == RangeSet()
    missing = RangeSet.of(days(d, d) for d in sessions[:-1])
    await store.delete_range("AAPL", D1, week.start_ms, week.end_ms)
    await store.write_bars([BarWrite(BarBatch.empty("AAPL", D1), missing)])
    last = days(sessions[-1], sessions[-1])
    assert await _gaps(store, "AAPL", D1, AssetClass.STOCKS, week) == RangeSet.of([last])


async def test_gaps_for_crypto_include_the_weekend(store: Store) -> None:
    """Crypto trades every day, so an uncovered Saturday is a gap."""
    sat = to_ms(date(2024, 3, 9))
    covered = RangeSet.of([(sat - 5 * DAY_MS, sat)])
    await store.write_bars([BarWrite(BarBatch.empty("X:BTCUSD", D1), covered)])
    gaps = await _gaps(store, "X:BTCUSD", D1, AssetClass.CRYPTO, TimeRange(sat - 5 * DAY_MS, sat + DAY_MS))
    assert gaps == RangeSet.of([(sat, sat + DAY_MS)])


async def test_one_write_of_many_series_merges_each_series_coverage_with_its_own(store: Store) -> None:
    """A write of several series (as a backfill's grouped transaction is) merges each series' new
    range with that series' stored rows only: touching joins, a gap stays, another series' rows and
    another timeframe's rows are not merged in; each series' bars are all there."""
    m5 = Timeframe.parse("5m")
    # held before: AAPL 1m [0, 10) min, MSFT 1m [20, 30) min, AAPL 5m [0, 50) min
    await store.write_bars([
        write(make_batch("AAPL", 10, T0)),
        write(make_batch("MSFT", 10, T0 + 20 * MIN)),
        write(make_batch("AAPL", 10, T0, m5)),
    ])  # fmt: skip
    await store.write_bars([
        write(make_batch("AAPL", 10, T0 + 10 * MIN)),  # touches AAPL 1m: [0, 20)
        write(make_batch("MSFT", 5, T0 + 40 * MIN)),  # a gap after MSFT 1m's [20, 30)
        write(make_batch("AAPL", 5, T0 + 100 * MIN, m5)),  # a gap after AAPL 5m's [0, 50)
        write(make_batch("NVDA", 5, T0 + 10 * MIN)),  # new series where AAPL 1m has rows
    ])  # fmt: skip
    expect = {
        ("AAPL", M1): [(T0, T0 + 20 * MIN)],
        ("MSFT", M1): [(T0 + 20 * MIN, T0 + 30 * MIN), (T0 + 40 * MIN, T0 + 45 * MIN)],
        ("AAPL", m5): [(T0, T0 + 50 * MIN), (T0 + 100 * MIN, T0 + 125 * MIN)],
        ("NVDA", M1): [(T0 + 10 * MIN, T0 + 15 * MIN)],
    }
    for (ticker, tf), ranges in expect.items():
        assert await store.coverage(ticker, Dataset.BARS, str(tf)) == RangeSet.of(ranges), (ticker, tf)
    assert len(await store.bars("AAPL", M1, 0, FAR)) == 20
    assert len(await store.bars("MSFT", M1, 0, FAR)) == 15
    assert len(await store.bars("AAPL", m5, 0, FAR)) == 15
    assert len(await store.bars("NVDA", M1, 0, FAR)) == 5
