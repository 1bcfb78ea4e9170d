"""How bars sit in the Iceberg table: the schema, the partitioning, and the Parquet files mdw writes.

The layout is chosen for the two read patterns (ADR 0012): one series over a range, and one day
across the market.

* Partitioned by ``timeframe`` (identity): a read never opens another timeframe's files. A commit
  writes a timeframe's rows into one file, or into several of whole series when it holds more
  than a file per writer thread (``table.write_files``), so the files encode on every core.
* Rows in a file sorted by ``(ticker, t)`` (the table's declared sort order), cut into row groups
  of whole series where they fit, so the per-file and per-row-group min/max of ``ticker`` and ``t``
  send a series read to the few row groups that hold it. Compaction cuts files at time windows, so
  a market-day read opens one file per timeframe.
* Encodings measured on the demo data (ADR 0012): PLAIN prices, volumes and counts under zstd
  level 3 (a series' neighbouring values share their leading bytes; dictionaries cost more than
  they save below a million rows), DELTA_BINARY_PACKED for ``t`` (evenly spaced),
  BYTE_STREAM_SPLIT for ``vw`` (full precision), dictionaries only for the repeated strings, and
  statistics only for ``ticker``, ``timeframe`` and ``t`` (what pruning reads). 26 bytes/bar
  (level 1 encodes about 20 % faster for 28: a write's commit uses it, compaction rewrites at
  level 3); nearly the same for 16k- and 128k-row row groups, so row groups stay small for reads
  (32k rows).
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mdw.domain import MISSING_N, MISSING_OTC, BarBatch, Timeframe
from mdw.store.arrow import otc_array

if TYPE_CHECKING:  # pyiceberg is imported where it is used: loading it costs a second
    from pyiceberg.io import FileIO
    from pyiceberg.io.pyarrow import StatisticsCollector
    from pyiceberg.manifest import DataFile
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.table.metadata import TableMetadata
    from pyiceberg.table.sorting import SortOrder

TABLE = "bars"
NAMESPACE = "mdw"
ROW_GROUP_ROWS = 32_768
COLUMNS = ("ticker", "timeframe", "t", "o", "h", "l", "c", "v", "vw", "n", "source", "otc")
# Added after the first tables were written (field id 12): files written before hold no such column
# and read as null (see :func:`conform`).
ADDED = ("otc",)
_REQUIRED = frozenset(COLUMNS) - {"v", "vw", "n", "otc"}
_TYPES = {"ticker": pa.string(), "timeframe": pa.string(), "source": pa.string(), "t": pa.int64(),
          "n": pa.int64(), "otc": pa.bool_()}  # fmt: skip
# The columns whose statistics anything prunes on: the manifests' and footers' min/max of ticker and t
# (and timeframe, the partition). Statistics of the price columns cost encoder time and prune nothing.
STATS_COLUMNS = ("ticker", "timeframe", "t")
WRITER_OPTIONS: dict[str, object] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": ["ticker", "timeframe", "source"],
    "column_encoding": {"t": "DELTA_BINARY_PACKED", "vw": "BYTE_STREAM_SPLIT"},
    "write_statistics": list(STATS_COLUMNS),
    # The files hold plain strings: the dictionary-typed columns mdw writes (see write_schema) are an
    # encoding shortcut, and no Arrow schema in the footer makes readers read them back as such.
    "store_schema": False,
}
# A write's commit encodes its files at zstd level 1: the encoder is most of what a backfill's
# commits cost in CPU (level 1 spends ~20 % less than level 3 for ~2 bytes more a bar); compaction
# rewrites them with WRITER_OPTIONS (level 3), so a compacted table holds level-3 files only.
COMMIT_WRITER_OPTIONS: dict[str, object] = {**WRITER_OPTIONS, "compression_level": 1}
# The Iceberg column metrics recorded in the manifests, matching the statistics the files carry.
METRICS_PROPERTIES = {
    "write.metadata.metrics.default": "none",
    "write.metadata.metrics.column.ticker": "truncate(16)",
    "write.metadata.metrics.column.timeframe": "truncate(16)",
    "write.metadata.metrics.column.t": "full",
}
TABLE_PROPERTIES = {
    # pyiceberg's own rewrites (a copy-on-write delete) use these; mdw's files use WRITER_OPTIONS.
    "write.parquet.compression-codec": "zstd",
    "write.parquet.compression-level": "3",
    "commit.manifest-merge.enabled": "true",
    "commit.manifest.min-count-to-merge": "50",
    "write.metadata.previous-versions-max": "4",
}


_STRINGS = ("ticker", "timeframe", "source")
_DICT = pa.dictionary(pa.int32(), pa.string())


def _schema(strings: pa.DataType) -> pa.Schema:
    return pa.schema([
        pa.field(name, strings if name in _STRINGS else _TYPES.get(name, pa.float64()),
                 nullable=name not in _REQUIRED, metadata={b"PARQUET:field_id": str(i + 1).encode()})
        for i, name in enumerate(COLUMNS)
    ])  # fmt: skip


_ARROW_SCHEMA = _schema(pa.string())
_WRITE_SCHEMA = _schema(_DICT)


def arrow_schema() -> pa.Schema:
    """The bars' Arrow schema with Iceberg field ids (1..12 in :data:`COLUMNS` order)."""
    return _ARROW_SCHEMA


def write_schema() -> pa.Schema:
    """The schema mdw hands the Parquet writer: :func:`arrow_schema` with the repeated strings
    dictionary-typed, so a series' ticker is one dictionary entry and its indices, never ``n``
    strings; the file holds the same Parquet columns (dictionary-encoded strings) either way."""
    return _WRITE_SCHEMA


def iceberg_schema() -> Schema:
    """The table's Iceberg schema (``t`` is epoch ms as a long, exactly as mdw stores it elsewhere)."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import BooleanType, DoubleType, LongType, NestedField, StringType

    types = {"ticker": StringType(), "timeframe": StringType(), "source": StringType(), "t": LongType(),
             "n": LongType(), "otc": BooleanType()}  # fmt: skip
    return Schema(*[
        NestedField(i + 1, name, types.get(name, DoubleType()), required=name in _REQUIRED)
        for i, name in enumerate(COLUMNS)
    ])  # fmt: skip


def partition_spec() -> PartitionSpec:
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import IdentityTransform

    return PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(),
                                        name="timeframe"))  # fmt: skip


def sort_order() -> SortOrder:
    from pyiceberg.table.sorting import SortField, SortOrder
    from pyiceberg.transforms import IdentityTransform

    return SortOrder(SortField(source_id=1, transform=IdentityTransform()),
                     SortField(source_id=3, transform=IdentityTransform()))  # fmt: skip


def batch_table(batch: BarBatch) -> pa.Table:
    """One series as rows of the table (NaN v/vw, a missing n or otc become nulls, as the row stores
    keep NULL)."""
    return write_table(batch).cast(_ARROW_SCHEMA)


def write_table(batch: BarBatch) -> pa.Table:
    """One series as :func:`write_schema` rows: what a commit hands the Parquet writer."""
    n = len(batch)
    arrays: list[pa.Array] = [_repeat(batch.ticker, n), _repeat(str(batch.timeframe), n)]
    for name in ("t", "o", "h", "l", "c", "v", "vw", "n"):
        col = getattr(batch, name)
        if name in ("v", "vw", "n"):
            mask = np.isnan(col) if name != "n" else col < 0  # n < 0: MISSING_N
            arrays.append(pa.array(col, mask=mask) if mask.any() else pa.array(col))
        else:
            arrays.append(pa.array(col))
    arrays.append(_repeat(batch.source, n))
    arrays.append(otc_array(batch.otc))
    return pa.Table.from_arrays(arrays, schema=_WRITE_SCHEMA)


def conform(rows: pa.Table, columns: list[str]) -> pa.Table:
    """``rows`` with every column of ``columns`` it lacks (a file written before the column was
    added) as nulls of the column's type, in ``columns`` order."""
    size = rows.num_rows
    schema = arrow_schema()
    arrays = [rows.column(name) if name in rows.column_names else pa.nulls(size, schema.field(name).type)
              for name in columns]
    return pa.Table.from_arrays(arrays, schema=pa.schema([schema.field(name) for name in columns]))


def _repeat(text: str, n: int) -> pa.Array:
    """``text`` ``n`` times as a dictionary array: one string and ``n`` zero indices."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([text]))


def table_batch(ticker: str, timeframe: Timeframe, rows: pa.Table) -> BarBatch:
    """Rows of one series (sorted by ``t``) as a batch; null v/vw become NaN."""
    if not rows.num_rows:
        return BarBatch.empty(ticker, timeframe)
    cols: dict[str, npt.ArrayLike] = {}
    for name in ("t", "o", "h", "l", "c", "v", "vw", "n"):
        col = rows.column(name)
        if name in ("v", "vw"):
            cols[name] = col.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> NaN
        elif name == "n" and col.null_count:
            cols[name] = col.fill_null(MISSING_N).to_numpy(zero_copy_only=False)
        else:
            cols[name] = col.to_numpy()
    if "otc" in rows.column_names:
        flags = rows.column("otc")
        if flags.null_count < rows.num_rows:
            cols["otc"] = pc.cast(flags, pa.int8()).fill_null(MISSING_OTC).to_numpy(zero_copy_only=False)
    return BarBatch.from_columns(ticker, timeframe, cols)


def row_groups(tables: list[pa.Table]) -> list[pa.Table]:
    """Series packed, in order, into row groups of whole series up to :data:`ROW_GROUP_ROWS` rows."""
    out: list[pa.Table] = []
    group: list[pa.Table] = []
    rows = 0
    for table in tables:
        for start in range(0, table.num_rows, ROW_GROUP_ROWS):
            part = table.slice(start, ROW_GROUP_ROWS)
            if group and rows + part.num_rows > ROW_GROUP_ROWS:
                out.append(pa.concat_tables(group))
                group, rows = [], 0
            group.append(part)
            rows += part.num_rows
    if group:
        out.append(pa.concat_tables(group))
    return out


def data_path(location: str, timeframe: str) -> str:
    """Where a new data file of ``timeframe`` goes under the table's location."""
    return f"{location.rstrip('/')}/data/timeframe={timeframe}/{uuid.uuid4().hex}.parquet"


@dataclass(frozen=True, slots=True)
class FilePlan:
    """What every data file of one commit shares: the table's location, spec and statistics plan."""

    location: str
    spec_id: int
    stats_columns: dict[int, StatisticsCollector]
    column_mapping: dict[str, int]

    @classmethod
    def of(cls, metadata: TableMetadata) -> FilePlan:
        from pyiceberg.io.pyarrow import compute_statistics_plan, parquet_path_to_id_mapping

        schema = metadata.schema()
        return cls(
            location=metadata.location, spec_id=metadata.default_spec_id,
            stats_columns=compute_statistics_plan(schema, {**metadata.properties, **METRICS_PROPERTIES}),
            column_mapping=parquet_path_to_id_mapping(schema),
        )  # fmt: skip


def file_parts(series: list[pa.Table], rows: int) -> list[list[pa.Table]]:
    """Series (in ticker order) cut into files of about ``rows`` rows, never splitting a series."""
    files: list[list[pa.Table]] = []
    current: list[pa.Table] = []
    held = 0
    for s in series:
        if current and held + s.num_rows > rows:
            files.append(current)
            current, held = [], 0
        current.append(s)
        held += s.num_rows
    if current:
        files.append(current)
    return files


def write_data_file(
    io: FileIO, plan: FilePlan, timeframe: str, series: list[pa.Table],
    options: dict[str, object] = WRITER_OPTIONS,
) -> DataFile:
    """Write one Parquet file of ``series`` (each sorted by t, given in ticker order) with the
    writer ``options`` (:data:`COMMIT_WRITER_OPTIONS` for a write's commit); its DataFile.

    The statistics (row count, per-column sizes, min/max of :data:`STATS_COLUMNS`) come from the
    footer just written, as pyiceberg's own writer computes them, so any Iceberg reader can prune
    on them. Thread-safe: a commit writes its files in parallel.
    """
    from pyiceberg.io.pyarrow import data_file_statistics_from_parquet_metadata
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
    from pyiceberg.typedef import Record

    path = data_path(plan.location, timeframe)
    output = io.new_output(path)
    schema = _WRITE_SCHEMA
    with output.create(overwrite=False) as stream, pq.ParquetWriter(stream, schema, **options) as w:
        for group in row_groups(series):
            w.write_table(
                group if group.schema.equals(schema, check_metadata=True) else group.cast(schema),
                row_group_size=group.num_rows,
            )
    stats = data_file_statistics_from_parquet_metadata(
        parquet_metadata=w.writer.metadata,
        stats_columns=plan.stats_columns,
        parquet_column_mapping=plan.column_mapping,
    )
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=Record(timeframe),
        file_size_in_bytes=len(output),
        sort_order_id=None,
        spec_id=plan.spec_id,
        equality_ids=None,
        key_metadata=None,
        **stats.to_serialized_dict(),
    )


def by_ticker(table: pa.Table) -> list[pa.Table]:
    """A table sorted by (ticker, t) split into one table per ticker, in ticker order."""
    if not table.num_rows:
        return []
    keys = table.column("ticker")
    change = pc.not_equal(keys.slice(1), keys.slice(0, len(keys) - 1)).to_numpy(zero_copy_only=False)
    bounds = np.flatnonzero(np.r_[True, change, True])
    return [table.slice(int(a), int(b - a)) for a, b in itertools.pairwise(bounds)]
