"""The store's pure parts: the ledger merge and cut rules, write grouping, URLs and migration files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np
import pytest

from mdw.domain import RangeSet, TimeRange
from mdw.errors import SchemaVersionError, StoreError, UsageError
from mdw.store import migrate, open_store, sqlite_path
from mdw.store.ledger import LedgerRow, cut_rule, merge_rule
from mdw.store.pgpartitions import split_by_year, year_bounds, years_of
from mdw.store.primitives import numbered, rowcount_of
from mdw.store.rows import as_date, as_float, as_int, as_json, as_str, as_text_list
from mdw.store.writes import diff_bars, prepare_writes

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


@pytest.mark.parametrize(
    ("sql", "numbered_sql"),
    [
        ("SELECT 1", "SELECT 1"),
        ("DELETE FROM bars WHERE ticker = ? AND t >= ?", "DELETE FROM bars WHERE ticker = $1 AND t >= $2"),
        ("INSERT INTO t (a, b) VALUES (?, ?), (?, ?)", "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"),
    ],
)
def test_numbered_turns_shared_placeholders_into_postgres_parameters(sql: str, numbered_sql: str) -> None:
    """The shared ``?`` SQL becomes ``$1, $2, ...`` in order, for the driver that numbers them."""
    assert numbered(sql) == numbered_sql


@pytest.mark.parametrize(("tag", "count"), [("INSERT 0 3", 3), ("UPDATE 0", 0), ("DELETE 12", 12),
                                            ("CREATE TABLE", 0), ("BEGIN", 0)])
def test_rowcount_of_reads_the_count_at_the_end_of_a_command_tag(tag: str, count: int) -> None:
    """PostgreSQL's command tags give the rows a statement changed; tags without one give 0."""
    assert rowcount_of(tag) == count


@pytest.mark.parametrize(
    ("convert", "value"),
    [(as_int, "12"), (as_int, True), (as_int, 1.5), (as_str, 3), (as_float, "1.0"), (as_date, 20240101),
     (as_text_list, 5), (as_json, "[1, 2]")],
)
def test_row_values_of_the_wrong_type_are_a_store_error(
    convert: Callable[[object], object], value: object
) -> None:
    """A value the database returns in a shape the record does not allow is refused, never passed on."""
    with pytest.raises(StoreError, match=r"where .* belongs"):
        convert(value)


def test_row_values_convert_both_dialects_spellings() -> None:
    """Dates as ISO text (SQLite) or ``date`` (PostgreSQL), text lists as text or arrays, NULL as NaN."""
    assert as_date("2024-03-04") == as_date(date(2024, 3, 4)) == date(2024, 3, 4)
    assert as_text_list("1m,1d") == as_text_list(["1m", "1d"]) == ("1m", "1d") and as_text_list("") == ()
    assert np.isnan(as_float(None)) and as_float(3) == 3.0
