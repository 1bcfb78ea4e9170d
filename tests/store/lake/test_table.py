"""The Iceberg bars table: commits staged at a pointer, swapped in SQL, read back by row group."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyarrow.fs import LocalFileSystem
from tests.store.lake.conftest import Lake, series

from mdw.store.lake import housekeeping, layout
from mdw.store.lake.table import RangeDelete

T0 = 1_700_000_000_000
MIN = 60_000


def test_stage_then_swap_makes_the_rows_readable_and_exact(lake: Lake) -> None:
    """Rows written in one commit read back column for column, nulls included, sorted by t."""
    aapl, msft = series("AAPL", n=500), series("MSFT", n=300, seed=2)
    lake.commit(lambda at: lake.table.stage(at, {"1m": [aapl, msft]}, []))
    got = lake.table.read(lake.pointer(), "1m", "AAPL", T0, T0 + 500 * MIN)
    assert got.equals(aapl)
    assert lake.table.read(lake.pointer(), "1m", "MSFT", T0 + 10 * MIN, T0 + 20 * MIN).num_rows == 10


def test_a_staged_commit_whose_pointer_is_not_swapped_changes_nothing(lake: Lake) -> None:
    """Files written without the pointer swap (a crash before COMMIT) are invisible to readers."""
    before = lake.pointer()
    staged = lake.table.stage(before, {"1m": [series("AAPL")]}, [])
    assert staged != before
    assert lake.pointer() == before
    assert lake.table.read(lake.pointer(), "1m", "AAPL", T0, T0 + 100 * MIN).num_rows == 0


def test_swap_refuses_a_pointer_that_moved_since_it_was_read(lake: Lake) -> None:
    """Iceberg's compare-and-swap: a commit staged at an old pointer cannot replace a newer one."""
    from tests.store.lake.conftest import KEY

    from mdw.store.lake.catalog import SWAP_POINTER, sql

    old = lake.pointer()
    late = lake.table.stage(old, {"1m": [series("MSFT")]}, [])
    lake.commit(lambda at: lake.table.stage(at, {"1m": [series("AAPL")]}, []))
    moved = lake.conn.execute(sql(SWAP_POINTER, "sqlite"), (late, old, *KEY, old)).rowcount
    assert moved == 0
    assert lake.table.read(lake.pointer(), "1m", "MSFT", T0, T0 + 100 * MIN).num_rows == 0


def test_range_delete_and_append_in_one_commit_replace_exactly_that_range(lake: Lake) -> None:
    """Rows outside the replaced range are kept; inside it only the new rows remain."""
    aapl = series("AAPL", n=200)
    lake.commit(lambda at: lake.table.stage(at, {"1m": [aapl, series("MSFT", n=200)]}, []))
    lo, hi = T0 + 50 * MIN, T0 + 60 * MIN
    fixed = aapl.slice(50, 10)
    fixed = fixed.set_column(6, "c", pc.multiply(fixed["c"], 2.0))
    lake.commit(lambda at: lake.table.stage(at, {"1m": [fixed]}, [RangeDelete("AAPL", "1m", lo, hi)]))
    got = lake.table.read(lake.pointer(), "1m", "AAPL", T0, T0 + 200 * MIN)
    assert got.num_rows == 200
    assert got.slice(50, 10).to_pylist() == fixed.to_pylist()
    assert got.slice(0, 50).equals(aapl.slice(0, 50)) and got.slice(60).equals(aapl.slice(60))
    assert lake.table.read(lake.pointer(), "1m", "MSFT", T0, T0 + 200 * MIN).num_rows == 200


def test_market_wide_read_returns_every_ticker_of_the_timeframe_only(lake: Lake) -> None:
    """``ticker=None`` reads one window across the market, never another timeframe's bars."""
    tables = [series(tk, n=100, seed=i) for i, tk in enumerate(["A", "B", "C"])]
    lake.commit(lambda at: lake.table.stage(at, {"1m": tables, "1h": [series("A", "1h", n=50)]}, []))
    got = lake.table.read(lake.pointer(), "1m", None, T0 + 10 * MIN, T0 + 20 * MIN)
    assert sorted(pc.unique(got["ticker"]).to_pylist()) == ["A", "B", "C"]
    assert got.num_rows == 30 and set(got["timeframe"].to_pylist()) == {"1m"}


def test_files_use_the_documented_layout(lake: Lake) -> None:
    """Data files carry Iceberg field ids, zstd, delta-encoded t, and whole-series row groups."""
    lake.commit(lambda at: lake.table.stage(at, {"1m": [series("A", n=40_000), series("B", n=10)]}, []))
    (ref,) = lake.table.files(lake.pointer())
    meta = pq.read_metadata(ref.path.removeprefix("file://"))
    assert meta.schema.to_arrow_schema().field("t").metadata[b"PARQUET:field_id"] == b"3"
    t_col = meta.row_group(0).column(2)
    assert t_col.compression == "ZSTD" and "DELTA_BINARY_PACKED" in t_col.encodings
    groups = [(meta.row_group(i).column(0).statistics.min, meta.row_group(i).num_rows)
              for i in range(meta.num_row_groups)]  # fmt: skip
    assert groups == [("A", layout.ROW_GROUP_ROWS), ("A", 40_000 - layout.ROW_GROUP_ROWS + 10)]


def test_compaction_rewrites_small_files_into_one_with_the_same_rows(lake: Lake) -> None:
    """Many one-series commits become one sorted file; every read answers as before."""
    for i, tk in enumerate(["D", "B", "A", "C", "E"]):
        lake.commit(lambda at, tk=tk, i=i: lake.table.stage(at, {"1m": [series(tk, n=100, seed=i)]}, []))
    before = lake.table.read(lake.pointer(), "1m", None, T0, T0 + 100 * MIN).sort_by(
        [("ticker", "ascending"), ("t", "ascending")]
    )
    assert len(lake.table.files(lake.pointer())) == 5
    lake.commit(lambda at: housekeeping.compact(lake.table, at))
    (ref,) = lake.table.files(lake.pointer())
    after = lake.table.read(lake.pointer(), "1m", None, T0, T0 + 100 * MIN)
    assert after.equals(before)  # one file, already in (ticker, t) order
    assert ref.rows == 500


def test_expiry_then_cleanup_deletes_only_files_nothing_reaches(lake: Lake) -> None:
    """Old snapshots' files and a crashed writer's files go; the current table stays whole."""
    for i in range(5):
        lake.commit(lambda at, i=i: lake.table.stage(at, {"1m": [series(f"S{i}", n=50)]}, []))
    lake.table.stage(lake.pointer(), {"1m": [series("CRASHED")]}, [])  # never swapped in
    lake.commit(lambda at: housekeeping.compact(lake.table, at))
    lake.commit(lambda at: housekeeping.expire(lake.table, at, keep_ms=-1))
    now = lake.pointer()
    removed, seen = housekeeping.remove_unreferenced(lake.table, now, LocalFileSystem(), grace_ms=-1, seen={})
    assert seen == {}
    assert removed >= 6  # five small data files and the crashed writer's file at least
    data = sorted(p.name for p in lake.warehouse.rglob("*.parquet"))
    assert data == sorted(r.path.rsplit("/", 1)[1] for r in lake.table.files(now))
    got = lake.table.read(now, "1m", None, T0, T0 + 50 * MIN)
    assert got.num_rows == 250


def test_cleanup_keeps_files_younger_than_the_grace_period(lake: Lake) -> None:
    """A writer still staging (its files are new) never loses them to a concurrent cleanup."""
    lake.table.stage(lake.pointer(), {"1m": [series("INFLIGHT")]}, [])
    removed, seen = housekeeping.remove_unreferenced(
        lake.table, lake.pointer(), LocalFileSystem(), 3_600_000, {}
    )
    assert removed == 0 and len(seen) >= 1
    assert len(list(lake.warehouse.rglob("*.parquet"))) == 1


def test_cleanup_deletes_a_file_only_once_it_was_seen_unreferenced_for_the_grace_period(lake: Lake) -> None:
    """An old file that just became unreferenced (a reader may still be at its snapshot) survives
    the first cleanup and goes in a later one, after the grace period."""
    lake.commit(lambda at: lake.table.stage(at, {"1m": [series("A")]}, []))
    (old,) = lake.table.files(lake.pointer())
    lake.commit(lambda at: lake.table.stage(at, {}, [RangeDelete("A", "1m", 0, 2**62)]))
    lake.commit(lambda at: housekeeping.expire(lake.table, at, keep_ms=-1))
    now, fs, at = 10**13, LocalFileSystem(), lake.pointer()  # now: every file is old by its mtime
    removed, seen = housekeeping.remove_unreferenced(lake.table, at, fs, 60_000, {}, now_ms=now)
    assert removed == 0 and old.path.removeprefix("file://") in seen
    removed, seen = housekeeping.remove_unreferenced(lake.table, at, fs, 60_000, seen, now_ms=now + 60_000)
    assert removed >= 1 and not list(lake.warehouse.rglob("*.parquet"))


def test_commits_keep_only_the_newest_snapshots_in_the_metadata(lake: Lake) -> None:
    """The metadata a commit copies stays small however many commits the table has seen."""
    from mdw.store.lake.table import KEEP_SNAPSHOTS

    for i in range(KEEP_SNAPSHOTS + 4):
        lake.commit(lambda at, i=i: lake.table.stage(at, {"1m": [series(f"S{i}", n=10)]}, []))
    metadata = lake.table.at(lake.pointer()).metadata
    assert len(metadata.snapshots) == KEEP_SNAPSHOTS
    assert lake.table.read(lake.pointer(), "1m", None, 0, 2**62).num_rows == 10 * (KEEP_SNAPSHOTS + 4)


def test_an_empty_table_reads_as_no_rows_with_the_bar_columns(lake: Lake) -> None:
    """Reading before any commit returns an empty table, not an error."""
    got = lake.table.read(lake.pointer(), "1d", "AAPL", 0, 2**62)
    assert got.num_rows == 0 and got.schema.names == list(layout.COLUMNS)


@pytest.mark.parametrize("columns", [("t", "c"), ("t", "o", "h", "l", "c", "v", "vw", "n")])
def test_read_returns_only_the_columns_asked_for(lake: Lake, columns: tuple[str, ...]) -> None:
    """The read path selects columns, so a bars() call never decodes the strings it drops."""
    lake.commit(lambda at: lake.table.stage(at, {"1m": [series("AAPL")]}, []))
    got = lake.table.read(lake.pointer(), "1m", "AAPL", T0, T0 + 10 * MIN, columns=columns)
    assert got.schema.names == list(columns) and got.num_rows == 10
    assert isinstance(got, pa.Table)


def test_table_created_with_required_n_takes_missing_n_after_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table made when ``n`` was required becomes ``n``-optional on its next commit; a missing
    ``n`` (MISSING_N) is written as null and read back as missing."""
    from tests.store.lake.conftest import open_lake

    from mdw.domain import MISSING_N, BarBatch, Timeframe

    monkeypatch.setattr(layout, "_REQUIRED", frozenset(layout.COLUMNS) - {"v", "vw"})  # the old schema
    old = open_lake(tmp_path)
    monkeypatch.undo()
    try:
        assert old.table.at(old.pointer()).schema().find_field("n").required
        n = 5
        t = T0 + MIN * np.arange(n)
        batch = BarBatch("AAPL", Timeframe.parse("1m"), t, [10.0] * n, [11.0] * n, [9.0] * n, [10.5] * n,
                         [100.0] * n, [10.2] * n, [3, MISSING_N, 0, MISSING_N, 7])
        old.commit(lambda at: old.table.stage(at, {"1m": [layout.batch_table(batch)]}, []))
        assert not old.table.at(old.pointer()).schema().find_field("n").required
        got = old.table.read(old.pointer(), "1m", "AAPL", T0, T0 + n * MIN)
        assert got.column("n").to_pylist() == [3, None, 0, None, 7]
        back = layout.table_batch("AAPL", Timeframe.parse("1m"), got)
        assert back.n.tolist() == [3, MISSING_N, 0, MISSING_N, 7]
    finally:
        old.conn.close()


def test_a_writer_knows_the_files_of_its_commit_as_a_fresh_reader_lists_them(lake: Lake) -> None:
    """The live files a writer derives after a fast append equal those read from the manifests."""
    from mdw.store.lake.table import LakeTable

    for i in range(3):
        tables = {"1m": [series(f"S{i}", n=50)], "1h": [series(f"S{i}", "1h")]}
        lake.commit(lambda at, tables=tables: lake.table.stage(at, tables, []))
    lo, hi = T0 + 10 * MIN, T0 + 20 * MIN
    lake.commit(lambda at: lake.table.stage(at, {"1m": [series("S0", start=lo, n=10, seed=9)]},
                                            [RangeDelete("S0", "1m", lo, hi)]))  # fmt: skip
    lake.commit(lambda at: lake.table.stage(at, {"1m": [series("S3", n=50)]}, []))
    now = lake.pointer()
    fresh = LakeTable(lake.table.catalog)
    assert lake.table.files(now) == fresh.files(now)
    assert len(fresh.files(now)) >= 7


def test_table_created_before_otc_gains_it_and_old_files_read_as_null(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table (and its files) made before ``otc`` gets the column with field id 12 on its next commit;
    its old rows read the flag as null, new rows as written, and a compaction and a copy-on-write
    delete across old and new files keep both exactly."""
    from tests.store.lake.conftest import open_lake

    from mdw.domain import MISSING_OTC, BarBatch, Timeframe

    m1 = Timeframe.parse("1m")

    def bars(first: int, n: int, flags: list[int] | None = None) -> BarBatch:
        t = T0 + MIN * (first + np.arange(n))
        b = BarBatch("OTCX", m1, t, [10.0] * n, [11.0] * n, [9.0] * n, [10.5] * n, [100.0] * n, [10.2] * n,
                     [3] * n)
        return b if flags is None else BarBatch.from_columns("OTCX", m1, {**b.columns(), "otc": flags})

    rows_before = layout.batch_table(bars(0, 3)).drop_columns("otc")
    monkeypatch.setattr(layout, "COLUMNS", tuple(c for c in layout.COLUMNS if c != "otc"))  # before otc
    monkeypatch.setattr(layout, "ADDED", ())
    monkeypatch.setattr(layout, "_ARROW_SCHEMA", layout._schema(pa.string()))
    monkeypatch.setattr(layout, "_WRITE_SCHEMA", layout._schema(layout._DICT))
    old = open_lake(tmp_path)
    try:
        old.commit(lambda at: old.table.stage(at, {"1m": [rows_before]}, []))
        assert "otc" not in old.table.at(old.pointer()).schema().column_names
        monkeypatch.undo()
        flagged = layout.batch_table(bars(3, 3, [1, 0, MISSING_OTC]))
        old.commit(lambda at: old.table.stage(at, {"1m": [flagged]}, []))
        field = old.table.at(old.pointer()).schema().find_field("otc")
        assert field.field_id == 12 and not field.required
        want = [None, None, None, True, False, None]
        got = old.table.read(old.pointer(), "1m", "OTCX", T0, T0 + 6 * MIN)
        assert got.column("otc").to_pylist() == want
        assert layout.table_batch("OTCX", m1, got).otc.tolist() == [MISSING_OTC] * 3 + [1, 0, MISSING_OTC]
        monkeypatch.setattr(housekeeping, "MIN_FILES", 2)  # the two files are enough to compact
        old.commit(lambda at: housekeeping.compact(old.table, at))
        assert len(old.table.files(old.pointer())) == 1
        got = old.table.read(old.pointer(), "1m", "OTCX", T0, T0 + 6 * MIN)
        assert got.column("otc").to_pylist() == want and got.column("t").to_pylist() == [
            T0 + i * MIN for i in range(6)]
        cut = RangeDelete("OTCX", "1m", T0 + 2 * MIN, T0 + 4 * MIN)
        old.commit(lambda at: old.table.stage(at, {}, [cut]))
        got = old.table.read(old.pointer(), "1m", "OTCX", T0, T0 + 6 * MIN)
        assert got.column("otc").to_pylist() == [None, None, False, None]
    finally:
        old.conn.close()
