"""Housekeeping of the bars table: compact small files, expire old snapshots, remove unreferenced files.

Every commit of a backfill adds one small file per timeframe it touches. Compaction rewrites a
timeframe's small files into large ones sorted by ``(ticker, t)`` (the table's sort order), at
most :data:`COMPACT_ROWS` rows per run so memory stays bounded whatever the table's size; repeated
runs converge. It is a ``replace`` commit: the same rows, other files, so readers see no change.

Every commit keeps only the newest snapshots in the metadata (``table.KEEP_SNAPSHOTS``), and expiry
drops older ones still there. The files no kept snapshot references, and files no snapshot ever
referenced (left by a writer that crashed before its commit), are deleted afterwards, outside the
transaction, once they have been seen unreferenced for the grace period, so a reader at an older
snapshot and a writer still staging its files never lose them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from mdw.store.lake import layout
from mdw.store.lake.table import FileRef, LakeTable

if TYPE_CHECKING:
    from pyarrow.fs import FileInfo, FileSelector, FileSystem

SMALL_FILE_BYTES = 64 << 20  # files below this are compacted
COMPACT_ROWS = 8_000_000  # at most this many rows rewritten per timeframe per run
FILE_ROWS = 4_000_000  # rows per compacted file
MIN_FILES = 4  # fewer small files than this in a timeframe are left alone


def _small_by_timeframe(lake: LakeTable, location: str) -> dict[str, list[FileRef]]:
    """Per timeframe, the files below :data:`SMALL_FILE_BYTES` (oldest first)."""
    out: dict[str, list[FileRef]] = {}
    for ref in lake.files(location):
        if ref.size < SMALL_FILE_BYTES:
            out.setdefault(ref.timeframe, []).append(ref)
    return out


def small_counts(lake: LakeTable, location: str) -> dict[str, int]:
    """Per timeframe, how many small files (below :data:`SMALL_FILE_BYTES`) the table holds."""
    return {tf: len(refs) for tf, refs in _small_by_timeframe(lake, location).items()}


def small_files(lake: LakeTable, location: str) -> dict[str, list[FileRef]]:
    """Per timeframe, the small files the next compaction would rewrite (oldest first)."""
    out = _small_by_timeframe(lake, location)
    picked: dict[str, list[FileRef]] = {}
    for tf, refs in out.items():
        if len(refs) < MIN_FILES:
            continue
        chosen: list[FileRef] = []
        rows = 0
        for ref in refs:
            if chosen and rows + ref.rows > COMPACT_ROWS:
                break
            chosen.append(ref)
            rows += ref.rows
        picked[tf] = chosen
    return picked


def compact(lake: LakeTable, location: str) -> str:
    """Stage one compaction at ``location``; the new metadata location (unchanged if nothing to do)."""
    plan = small_files(lake, location)
    if not plan:
        return location
    table = lake.at(location)
    old: list[str] = []
    new: dict[str, list[list[pa.Table]]] = {}
    for tf, refs in plan.items():
        parts = []
        for ref in refs:
            with table.io.new_input(ref.path).open() as stream:
                # a file written before a column was added reads it as nulls
                parts.append(layout.conform(pq.read_table(stream), list(layout.COLUMNS)))
            old.append(ref.path)
        rows = pa.concat_tables(parts).sort_by([("ticker", "ascending"), ("t", "ascending")])
        new[tf] = layout.file_parts(layout.by_ticker(rows), FILE_ROWS)
    return lake.replace_files(location, old, new)


def expire(lake: LakeTable, location: str, keep_ms: int, now_ms: int | None = None) -> str:
    """Stage the expiry of snapshots older than ``keep_ms``; the new location."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return lake.expire(location, now - keep_ms)


def referenced(lake: LakeTable, location: str) -> set[str]:
    """Every file the metadata at ``location`` can reach: metadata files, manifest lists, manifests,
    data files of every snapshot it keeps."""
    table = lake.at(location)
    io = table.io
    keep = {location, *(entry.metadata_file for entry in table.metadata.metadata_log)}
    for snapshot in table.metadata.snapshots:
        keep.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(io):
            keep.add(manifest.manifest_path)
            keep.update(
                e.data_file.file_path for e in manifest.fetch_manifest_entry(io, discard_deleted=True)
            )
    return keep


def remove_unreferenced(
    lake: LakeTable, location: str, fs: FileSystem, grace_ms: int, seen: dict[str, int],
    now_ms: int | None = None,
) -> tuple[int, dict[str, int]]:
    """Delete files under the table's location that ``location`` does not reach, once they have been
    seen unreferenced (``seen``: path -> first seen, epoch ms) for ``grace_ms`` and are at least that
    old. Returns how many were deleted and the updated ``seen``. Call it after the pointer names
    ``location``; a file a reader's older snapshot or a staging writer still needs is new to
    ``seen`` and so survives the grace period."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    keep = {_plain(p) for p in referenced(lake, location)}
    root = _plain(lake.at(location).metadata.location)
    from pyarrow.fs import FileSelector, FileType

    removed = 0
    still: dict[str, int] = {}
    for info in _listing(fs, FileSelector(root, recursive=True, allow_not_found=True)):
        if info.type != FileType.File or info.path in keep:
            continue
        first = seen.get(info.path, now)
        mtime = info.mtime.timestamp() * 1000 if info.mtime is not None else 0
        if now - first >= grace_ms and now - mtime >= grace_ms:
            fs.delete_file(info.path)
            removed += 1
        else:
            still[info.path] = first
    return removed, still


def _listing(fs: FileSystem, selector: FileSelector) -> Iterable[FileInfo]:
    return list(fs.get_file_info(selector))


def _plain(uri: str) -> str:
    """A URI as the pyarrow filesystem names it: no scheme (file:///x -> /x, s3://b/k -> b/k)."""
    for prefix in ("file://", "s3://", "s3a://"):
        if uri.startswith(prefix):
            return uri[len(prefix) :]
    return uri
