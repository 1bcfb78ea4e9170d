"""The store's pure parts: the ledger merge and cut rules, write grouping, URLs and migration files."""

from __future__ import annotations

import numpy as np
import pytest

from mdw.domain import RangeSet, TimeRange
from mdw.errors import SchemaVersionError, UsageError
from mdw.store import migrate, open_store, sqlite_path
from mdw.store.ledger import LedgerRow, cut_rule, diff_bars, merge_rule, prepare_writes
from mdw.store.pgpartitions import split_by_year, year_bounds, years_of

from .helpers import make_batch, write


@pytest.mark.parametrize(
    ("stored", "new", "deleted", "inserted"),
    [
        ([], [(0, 10)], (), [(0, 10)]),
        ([(0, 10)], [(10, 20)], (0,), [(0, 20)]),  # touching merges
        ([(0, 10), (30, 40)], [(5, 35)], (0, 30), [(0, 40)]),  # bridges two
        ([(0, 10), (30, 40)], [(15, 20)], (), [(15, 20)]),  # between, touching neither
        ([(0, 100)], [(20, 30)], (0,), [(0, 100)]),  # inside: refreshes the whole range
    ],
)
def test_merge_rule_folds_new_ranges_into_what_they_touch(
    stored: list[tuple[int, int]],
    new: list[tuple[int, int]],
    deleted: tuple[int, ...],
    inserted: list[tuple[int, int]],
) -> None:
    """Rows the new ranges overlap or abut are replaced by one merged row with the new fetched_at."""
    change = merge_rule([LedgerRow(a, b, 1) for a, b in stored], RangeSet.of(new), 9)
    assert change.delete_starts == deleted
    assert [(r.start_ms, r.end_ms, r.fetched_at_ms) for r in change.insert] == [
        (a, b, 9) for a, b in inserted
    ]


@pytest.mark.parametrize(
    ("stored", "hole", "deleted", "kept"),
    [
        ([(0, 100)], (20, 30), (0,), [(0, 20), (30, 100)]),
        ([(0, 10), (20, 30)], (5, 25), (0, 20), [(0, 5), (25, 30)]),
        ([(0, 10)], (10, 20), (), []),  # touching is not overlapping
        ([(0, 10)], (0, 10), (0,), []),
    ],
)
def test_cut_rule_removes_a_range_and_keeps_each_sides_fetched_at(
    stored: list[tuple[int, int]],
    hole: tuple[int, int],
    deleted: tuple[int, ...],
    kept: list[tuple[int, int]],
) -> None:
    """Cutting a hole leaves the pieces on either side with their original fetched_at."""
    change = cut_rule([LedgerRow(a, b, i) for i, (a, b) in enumerate(stored)], TimeRange(*hole))
    assert change.delete_starts == deleted
    assert [(r.start_ms, r.end_ms) for r in change.insert] == kept
    assert all(
        r.fetched_at_ms == next(i for i, (a, b) in enumerate(stored) if a <= r.start_ms < b)
        for r in change.insert
    )


def test_prepare_writes_groups_per_series_in_a_fixed_order() -> None:
    """Writes are grouped by (ticker, timeframe), sorted, so writers always lock in one order."""
    later, earlier = make_batch("MSFT", n=4).take(slice(2, 4)), make_batch("MSFT", n=4).take(slice(0, 2))
    groups = prepare_writes([write(later), write(make_batch("AAPL", n=2)), write(earlier)])
    assert [(g.ticker, g.timeframe, len(g.batch)) for g in groups] == [("AAPL", "1m", 2), ("MSFT", "1m", 4)]
    assert groups[1].batch.equals(make_batch("MSFT", n=4))
    assert groups[1].covered == RangeSet.of([*write(later).covered, *write(earlier).covered])


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/mdw.db", "data/mdw.db"),
        ("sqlite:////abs/mdw.db", "/abs/mdw.db"),
        ("sqlite://:memory:", ":memory:"),
    ],
)
def test_sqlite_path_accepts_relative_absolute_and_memory_urls(url: str, path: str) -> None:
    """The three documented SQLite URL forms map to a file path."""
    assert sqlite_path(url) == path


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite:/x.db", "data.db", "postgresql:x", ""])
async def test_open_store_rejects_an_unknown_url_listing_the_accepted_forms(url: str) -> None:
    """A bad URL is a one-line UsageError naming every accepted form."""
    with pytest.raises(UsageError, match=r"expected sqlite:///relative/path\.db.*postgresql://") as info:
        await open_store(url)
    assert "\n" not in str(info.value)


def test_migrations_substitute_a_variant_file_when_asked() -> None:
    """The timescaledb variant replaces the plain bars migration only when that variant is on."""
    plain = migrate.migrations("postgres")
    ts = migrate.migrations("postgres", frozenset({"timescaledb"}))
    assert [m.version for m in plain] == [m.version for m in ts]
    bars, ts_bars = (next(m for m in found if m.name == "bars") for found in (plain, ts))
    assert "PARTITION BY RANGE" in bars.sql and "create_hypertable" in ts_bars.sql


def test_pending_refuses_a_database_newer_than_the_code() -> None:
    """A version above the newest file is a SchemaVersionError; an older one lists what is pending."""
    top = migrate.latest("sqlite")
    assert [m.version for m in migrate.pending("sqlite", 0)][-1] == top
    assert migrate.pending("sqlite", top) == []
    with pytest.raises(SchemaVersionError, match="upgrade mdw"):
        migrate.pending("sqlite", top + 1)


def test_split_sqlite_keeps_trigger_bodies_whole() -> None:
    """Statements split on complete SQL, so a trigger body with inner semicolons stays one statement."""
    script = (
        "-- note\nCREATE TABLE a (x);\nCREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END;\n"
    )
    assert len(migrate.split_sqlite(script)) == 2


def test_diff_bars_splits_new_corrected_and_identical_rows() -> None:
    """New t are inserts; a changed value, a filled-in volume or another source is a correction."""
    stored = make_batch(n=6).take(slice(0, 4))
    batch = make_batch(n=6)
    cols = {k: v.copy() for k, v in batch.columns().items()}
    cols["c"][1] += 0.5
    cols["v"][0] = 7.0  # row 0 had no volume (NaN) when stored
    batch = type(batch).from_columns(batch.ticker, batch.timeframe, cols)
    other = np.array([False, False, False, True])
    diff = diff_bars(batch, stored, other)
    assert diff.new.t.tolist() == batch.t[4:].tolist()
    assert diff.changed.t.tolist() == batch.t[[0, 1, 3]].tolist()
    assert diff.unchanged == 1
    assert diff_bars(batch, stored.take(slice(0, 0))).new.equals(batch)


def test_split_by_year_cuts_rows_at_utc_new_year_and_skips_empty_years() -> None:
    """Rows go to the partition of their UTC year; a year with no rows gets no part."""
    lo_2020, hi_2020 = year_bounds(2020)
    t = np.array([hi_2020 - 120_000, hi_2020 - 60_000, hi_2020, year_bounds(2023)[0]], dtype=np.int64)
    batch = make_batch(n=4).take(slice(0, 4))
    cols = {k: v.copy() for k, v in batch.columns().items()}
    cols["t"] = t
    batch = type(batch).from_columns(batch.ticker, batch.timeframe, cols)
    parts = split_by_year(prepare_writes([write(batch)]))
    assert years_of(t) == {2020, 2021, 2023}
    assert {y: [len(p.batch) for p in ps] for y, ps in parts.items()} == {2020: [2], 2021: [1], 2023: [1]}
    assert lo_2020 < hi_2020 and int(parts[2021][0].batch.t[0]) == hi_2020
