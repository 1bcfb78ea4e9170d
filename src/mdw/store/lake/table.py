"""The bars table in Iceberg: staging commits at a given pointer, and reads that prune to row groups.

Everything here is synchronous and takes the metadata location (the pointer) to work at, so the
caller decides which snapshot a read sees and under which lock a write stages. Immutable things are
cached by their path: table metadata by metadata location, manifest entries by manifest path,
Parquet footers by data file path. A read therefore costs one pointer query, a dictionary lookup,
and the row groups it needs (measured in bench/columnar_engines.py).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mdw.store.lake import layout
from mdw.store.lake.catalog import StagingCatalog

if TYPE_CHECKING:  # pyiceberg is imported where it is used: loading it costs a second
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile, ManifestFile
    from pyiceberg.table import Table, Transaction
    from pyiceberg.table.metadata import TableMetadata
    from pyiceberg.table.update import TableUpdate

V = TypeVar("V")

_TICKER, _T = 1, 3  # field ids
_CACHED_TABLES = 4
KEEP_SNAPSHOTS = 8  # snapshots a commit keeps in the metadata (the newest)
_CACHED_FOOTERS = 20_000
_CACHED_MANIFESTS = 4_096
WRITE_THREADS = max(1, min(4, os.cpu_count() or 1))  # data files of one commit written in parallel
MIN_FILE_ROWS = 4 * layout.ROW_GROUP_ROWS  # a commit splits a timeframe into files no smaller


@dataclass(frozen=True, slots=True)
class FileRef:
    """A live data file with the bounds its manifest entry holds (strings may be truncated)."""

    path: str
    timeframe: str
    ticker_lo: str
    ticker_hi: str
    t_lo: int
    t_hi: int
    rows: int
    size: int

    def may_hold(self, timeframe: str, ticker: str | None, start_ms: int, end_ms: int) -> bool:
        if self.timeframe != timeframe or self.t_hi < start_ms or self.t_lo >= end_ms:
            return False
        return ticker is None or self.ticker_lo <= ticker <= self.ticker_hi


@dataclass(frozen=True, slots=True)
class Footer:
    """A data file's Parquet footer and, per row group, the min/max of ticker and t."""

    metadata: pq.FileMetaData
    groups: tuple[tuple[str, str, int, int], ...]


@dataclass(frozen=True, slots=True)
class RangeDelete:
    """Rows of one series with ``start_ms <= t < end_ms``, to remove in a commit."""

    ticker: str
    timeframe: str
    start_ms: int
    end_ms: int

    def expression(self) -> BooleanExpression:
        from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan

        return And(
            EqualTo(term="timeframe", value=self.timeframe),
            EqualTo(term="ticker", value=self.ticker),
            GreaterThanOrEqual(term="t", value=self.start_ms),
            LessThan(term="t", value=self.end_ms),
        )


class _Lru(OrderedDict[str, V]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: str, value: V) -> V:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value


class LakeTable:
    """The ``mdw.bars`` Iceberg table, read and written at explicit metadata locations."""

    def __init__(self, catalog: StagingCatalog) -> None:
        self.catalog = catalog
        self.identifier = (layout.NAMESPACE, layout.TABLE)
        self._lock = threading.Lock()
        self._tables: _Lru[tuple[TableMetadata, FileIO]] = _Lru(_CACHED_TABLES)
        self._plans: _Lru[tuple[FileRef, ...]] = _Lru(_CACHED_TABLES)
        self._manifests: _Lru[tuple[FileRef, ...]] = _Lru(_CACHED_MANIFESTS)
        self._footers: _Lru[Footer] = _Lru(_CACHED_FOOTERS)

    # -- creation ---------------------------------------------------------------------------------

    def new_table(self, warehouse: str) -> str:
        """Write the first metadata file of a new, empty bars table; its location.

        The caller records the location in ``iceberg_tables`` (in its own transaction), which is
        what makes the table exist; an unrecorded file is removed by housekeeping like any other.
        """
        from pyiceberg.serializers import ToOutputFile
        from pyiceberg.table.metadata import new_table_metadata

        location = f"{warehouse.rstrip('/')}/{layout.NAMESPACE}/{layout.TABLE}"
        metadata = new_table_metadata(
            layout.iceberg_schema(), layout.partition_spec(), layout.sort_order(), location,
            dict(layout.TABLE_PROPERTIES),
        )  # fmt: skip
        path = f"{location}/metadata/00000-{uuid.uuid4()}.metadata.json"
        io = self.catalog._load_file_io(properties=metadata.properties, location=path)
        ToOutputFile.table_metadata(metadata, io.new_output(path))
        return path

    # -- tables and plans at a location ---------------------------------------------------------

    def at(self, location: str) -> Table:
        """The table as of the metadata file at ``location``.

        The parsed metadata is cached (a metadata file never changes); the ``Table`` is new on
        every call because a pyiceberg transaction moves the ``Table`` it was started from.
        """
        from pyiceberg.serializers import FromInputFile
        from pyiceberg.table import Table

        with self._lock:
            hit = self._tables.get(location)
        if hit is None:
            io = self.catalog._load_file_io(location=location)
            hit = (FromInputFile.table_metadata(io.new_input(location)), io)
            with self._lock:
                self._tables.put(location, hit)
        metadata, io = hit
        return Table(self.identifier, metadata, location, io, self.catalog)

    def files(self, location: str) -> list[FileRef]:
        """The live data files of the current snapshot at ``location``."""
        with self._lock:
            hit = self._plans.get(location)
        if hit is not None:
            return list(hit)
        table = self.at(location)
        snapshot = table.current_snapshot()
        refs: list[FileRef] = []
        if snapshot is not None:
            for manifest in snapshot.manifests(table.io):
                refs.extend(self._manifest(table.io, manifest))
        with self._lock:
            self._plans.put(location, tuple(refs))
        return refs

    def _manifest(self, io: FileIO, manifest: ManifestFile) -> tuple[FileRef, ...]:
        key = manifest.manifest_path
        with self._lock:
            hit = self._manifests.get(key)
        if hit is not None:
            return hit
        refs = tuple(_file_ref(e.data_file) for e in manifest.fetch_manifest_entry(io, discard_deleted=True))
        with self._lock:
            self._manifests.put(key, refs)
        return refs

    def _footer(self, io: FileIO, path: str) -> Footer:
        with self._lock:
            hit = self._footers.get(path)
        if hit is not None:
            return hit
        with io.new_input(path).open() as stream:
            metadata = pq.read_metadata(stream)
        groups = []
        for i in range(metadata.num_row_groups):
            rg = metadata.row_group(i)
            ts, ws = rg.column(0).statistics, rg.column(2).statistics
            groups.append((str(ts.min), str(ts.max), int(ws.min), int(ws.max)))
        footer = Footer(metadata, tuple(groups))
        with self._lock:
            return self._footers.put(path, footer)

    # -- reads ------------------------------------------------------------------------------------

    def read(
        self,
        location: str,
        timeframe: str,
        ticker: str | None,
        start_ms: int,
        end_ms: int,
        columns: Sequence[str] = layout.COLUMNS,
    ) -> pa.Table:
        """Rows of one series (or, with ``ticker=None``, every ticker) in ``[start_ms, end_ms)``.

        Only row groups whose statistics may hold matching rows are read. One series comes back
        sorted by ``t``; a market-wide read is in file order.
        """
        table = self.at(location)
        wanted = list(dict.fromkeys([*columns, "ticker", "t"]))
        parts: list[pa.Table] = []
        for ref in self.files(location):
            if not ref.may_hold(timeframe, ticker, start_ms, end_ms):
                continue
            footer = self._footer(table.io, ref.path)
            picked = [
                i for i, (tlo, thi, wlo, whi) in enumerate(footer.groups)
                if whi >= start_ms and wlo < end_ms and (ticker is None or tlo <= ticker <= thi)
            ]  # fmt: skip
            if not picked:
                continue
            present = set(footer.metadata.schema.names)
            with table.io.new_input(ref.path).open() as stream:
                got = pq.ParquetFile(stream, metadata=footer.metadata).read_row_groups(
                    picked, columns=[c for c in wanted if c in present])
            if len(got.column_names) < len(wanted):  # a file written before a column was added
                got = layout.conform(got, wanted)
            mask = pc.and_(pc.greater_equal(got["t"], start_ms), pc.less(got["t"], end_ms))
            if ticker is not None:
                mask = pc.and_(mask, pc.equal(got["ticker"], ticker))
            parts.append(got.filter(mask))
        if not parts:
            return layout.arrow_schema().empty_table().select(wanted).select(list(columns))
        out = pa.concat_tables(parts)
        if ticker is not None and len(parts) > 1:
            out = out.sort_by("t")
        return out.select(list(columns))

    # -- writes -----------------------------------------------------------------------------------

    def stage(self, location: str, appends: dict[str, list[pa.Table]], deletes: Iterable[RangeDelete]) -> str:
        """Write the files and metadata of one commit at ``location``; the new metadata location.

        ``appends`` maps a timeframe to its series tables (each sorted by t, in ticker order).
        Deleted ranges are removed first (copy-on-write), so a range can be replaced in one commit.
        The pointer is not moved: the caller swaps it (see :mod:`mdw.store.lake.catalog`).
        """
        from pyiceberg.expressions import Or

        table = self.at(location)
        tx = _transaction(table)
        _evolve(tx)
        exprs = [d.expression() for d in deletes]
        if exprs:
            tx.delete(exprs[0] if len(exprs) == 1 else Or(*exprs))
        new_files = write_files(table.io, layout.FilePlan.of(tx.table_metadata), appends)
        if new_files:
            with tx.update_snapshot().fast_append() as append:
                for data_file in new_files:
                    append.append_data_file(data_file)
        new = self._commit(tx, location)
        if new_files and not exprs and new != location:
            # A fast append's live files are the new ones (its manifest comes first) and the old
            # ones: known without reading the manifest list back, which grows with every commit.
            refs = (*(_file_ref(f) for f in new_files), *self.files(location))
            with self._lock:
                self._plans.put(new, refs)
        return new

    def replace_files(
        self, location: str, old: Sequence[str], new_series: dict[str, list[list[pa.Table]]]
    ) -> str:
        """Swap data files for rewritten ones holding the same rows (compaction); new location.

        ``new_series`` maps a timeframe to the files to write, each a list of series tables.
        """
        table = self.at(location)
        tx = _transaction(table)
        _evolve(tx)
        live = {f.file_path: f for f in self._live_data_files(table)}
        plan = layout.FilePlan.of(tx.table_metadata)
        with tx.update_snapshot().overwrite() as rewrite:
            for path in old:
                rewrite.delete_data_file(live[path])
            for tf, files in sorted(new_series.items()):
                for series in files:
                    rewrite.append_data_file(layout.write_data_file(table.io, plan, tf, series))
        return self._commit(tx, location)

    def expire(self, location: str, older_than_ms: int) -> str:
        """Stage the expiry of snapshots older than ``older_than_ms`` (never the current one)."""
        from pyiceberg.table.update import RemoveSnapshotsUpdate

        table = self.at(location)
        current = table.metadata.current_snapshot_id
        old = [s.snapshot_id for s in table.metadata.snapshots
               if s.timestamp_ms < older_than_ms and s.snapshot_id != current]  # fmt: skip
        if not old:
            return location
        tx = _transaction(table)
        tx._apply((RemoveSnapshotsUpdate(snapshot_ids=old),), ())
        return self._commit(tx, location)

    def _live_data_files(self, table: Table) -> list[DataFile]:
        snapshot = table.current_snapshot()
        if snapshot is None:
            return []
        return [e.data_file for m in snapshot.manifests(table.io) for e in m.fetch_manifest_entry(table.io)]

    def _commit(self, tx: Transaction, location: str) -> str:
        from pyiceberg.table.update import RemoveSnapshotsUpdate

        # Every pyiceberg update deep-copies the table's metadata, whose size grows with its
        # snapshots: keeping the newest few bounds a commit's cost. Files stay until housekeeping
        # has seen them unreferenced for its grace period, so a reader at an older snapshot keeps
        # reading.
        snapshots = sorted(tx.table_metadata.snapshots, key=lambda s: s.sequence_number or 0)
        if len(snapshots) > KEEP_SNAPSHOTS:
            old = [s.snapshot_id for s in snapshots[:-KEEP_SNAPSHOTS]]
            tx._apply((RemoveSnapshotsUpdate(snapshot_ids=old),), ())
        self.catalog.staged = None
        tx.commit_transaction()
        staged = self.catalog.staged
        if staged is None:  # nothing changed
            return location
        return staged[1]


def _file_ref(f: DataFile) -> FileRef:
    """A data file and the bounds its manifest entry holds."""
    from pyiceberg.conversions import from_bytes
    from pyiceberg.types import LongType, StringType

    lo, hi = f.lower_bounds or {}, f.upper_bounds or {}
    return FileRef(
        path=f.file_path, timeframe=str(f.partition[0]),
        ticker_lo=str(from_bytes(StringType(), lo[_TICKER])) if _TICKER in lo else "",
        ticker_hi=str(from_bytes(StringType(), hi[_TICKER])) if _TICKER in hi else "\U0010ffff",
        t_lo=int(from_bytes(LongType(), lo[_T])) if _T in lo else -(2**63),
        t_hi=int(from_bytes(LongType(), hi[_T])) if _T in hi else 2**63 - 1,
        rows=int(f.record_count), size=int(f.file_size_in_bytes),
    )  # fmt: skip


def write_files(io: FileIO, plan: layout.FilePlan, appends: dict[str, list[pa.Table]]) -> list[DataFile]:
    """The data files of one commit, written in parallel on up to :data:`WRITE_THREADS` threads.

    Each timeframe's series are cut into files of about ``rows / WRITE_THREADS`` rows (at least
    :data:`MIN_FILE_ROWS`, never splitting a series), so a commit of one large timeframe still
    encodes on every core: the Parquet encoder releases the GIL. Files come back in timeframe, then
    ticker order.
    """
    total = sum(t.num_rows for series in appends.values() for t in series)
    rows = max(MIN_FILE_ROWS, -(-total // WRITE_THREADS))
    tasks = [(tf, part) for tf, series in sorted(appends.items()) if series
             for part in layout.file_parts(series, rows)]  # fmt: skip
    options = layout.COMMIT_WRITER_OPTIONS
    if len(tasks) <= 1:
        return [layout.write_data_file(io, plan, tf, part, options) for tf, part in tasks]
    return list(_pool().map(lambda task: layout.write_data_file(io, plan, task[0], task[1], options), tasks))


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="mdw-lake-write")
        return _POOL


def apply_updates(
    base: TableMetadata, updates: tuple[TableUpdate, ...], metadata_location: str | None = None
) -> TableMetadata:
    """``base`` with ``updates`` applied: pyiceberg's ``update_table_metadata`` without its final
    deep copy. Each update handler builds new lists and dicts and the metadata models are frozen, so
    nothing is shared that anything mutates; the deep copy cost more than the rest of a small commit.
    ``metadata_location`` (of ``base``) is added to the metadata log, as a catalog commit does."""
    from datetime import datetime

    from pyiceberg.table.update import (
        _apply_table_update,
        _TableMetadataUpdateContext,
        _update_table_metadata_log,
    )
    from pyiceberg.utils.datetime import datetime_to_millis

    context = _TableMetadataUpdateContext()
    new = base
    for update in updates:
        new = _apply_table_update(update, new, context)
    if context.has_changes():
        if metadata_location:
            new = _update_table_metadata_log(new, metadata_location, base.last_updated_ms)
        if base.last_updated_ms == new.last_updated_ms:
            new = new.model_copy(update={"last_updated_ms": datetime_to_millis(datetime.now().astimezone())})
    new.spec().check_compatible(new.schema())
    new.sort_order().check_compatible(new.schema())
    return new


def _new_transaction_class() -> type[Transaction]:
    from pyiceberg.table import Transaction

    class CachedTransaction(Transaction):
        """A pyiceberg ``Transaction`` that applies its updates to the base metadata once per set of
        updates (pyiceberg's recomputes and deep-copies the metadata on every access, a dozen
        times per commit), with :func:`apply_updates`."""

        _cached: tuple[tuple[TableUpdate, ...], TableMetadata] | None = None

        @property
        def table_metadata(self) -> TableMetadata:
            updates = self._updates
            if self._cached is None or self._cached[0] is not updates:
                self._cached = (updates, apply_updates(self._table.metadata, updates))
            return self._cached[1]

    return CachedTransaction


_TRANSACTION: type[Transaction] | None = None


def _transaction(table: Table) -> Transaction:
    """A new transaction on ``table`` (a :func:`_new_transaction_class`, made on first use)."""
    global _TRANSACTION
    if _TRANSACTION is None:
        _TRANSACTION = _new_transaction_class()
    return _TRANSACTION(table)


def _evolve(tx: Transaction) -> None:
    """Bring a table created by an older mdw to :func:`~mdw.store.lake.layout.iceberg_schema`, staged
    once with the next commit; Iceberg schema changes any reader accepts, no data file rewritten:

    * ``n`` made optional (a missing trade count is null, as the row stores keep NULL);
    * ``otc`` added as an optional boolean with field id 12 (older files read it as null).
    """
    from pyiceberg.types import BooleanType

    schema = tx.table_metadata.schema()
    optional_n = schema.find_field("n").required
    missing = [name for name in layout.ADDED if name not in schema.column_names]
    if not optional_n and not missing:
        return
    with tx.update_schema() as update:
        if optional_n:
            update.make_column_optional("n")
        for name in missing:
            update.add_column(name, BooleanType())
    added = tx.table_metadata.schema()
    for name in missing:  # mdw's files carry the ids of layout.arrow_schema(): they must agree
        want = layout.COLUMNS.index(name) + 1
        if added.find_field(name).field_id != want:
            raise RuntimeError(f"column {name} got field id {added.find_field(name).field_id}, not {want}")
