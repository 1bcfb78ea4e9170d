"""Flat files in a run: listing the bucket for the planner, ingesting the chosen days, settling.

- :func:`listings` lists each wanted dataset month by month (one request a month) and checks with
  one HEAD whether the key may read its files (the vendor lists files a plan does not include).
- :func:`run_files` ingests a plan's files, two at a time, into the run's report.
- :func:`settle_files` is the flat-file part of the settle pass: it lists the days already held
  from files and ingests again every day whose file was replaced since (another ETag or a later
  Last-Modified); the corrected bars are counted as ``bars_updated``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from mdw.backfill.fileplan import Listing, wanted_datasets
from mdw.backfill.ingest import FileJob, FileResult, FileSource, WriteTurns, ingest_file
from mdw.backfill.plan import BackfillSpec, FilesKey, PlannedFile
from mdw.backfill.report import Progress, RunReport, SeriesOutcome
from mdw.domain import Timeframe, from_ms
from mdw.errors import VendorAuthError, VendorError, VendorPlanError
from mdw.flatfiles.keys import FileDataset, FileInfo, last_published_day, parse_key
from mdw.logs import get_logger
from mdw.store.base import Store

log = get_logger(__name__)
PARALLEL_FILES = 2  # files in flight: one writes while the next downloads and decodes


def _months(first: date, last: date) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


async def list_days(source: FileSource, ds: FileDataset, first: date, last: date) -> dict[date, FileInfo]:
    """The published files of ``ds`` between ``first`` and ``last`` (inclusive), by day."""
    out: dict[date, FileInfo] = {}
    for year, month in _months(first, last):
        for info in await source.list_month(ds, year, month):
            parsed = parse_key(info.key)
            if parsed is not None and parsed[0] == ds and first <= parsed[1] <= last:
                out[parsed[1]] = info
    return out


async def listings(source: FileSource, spec: BackfillSpec, now_ms: int) -> list[Listing]:
    """Each wanted dataset's published files over the spec's range, and whether the key may read them.

    Raises:
        VendorAuthError: the key pair is refused (only under ``source = flatfiles``; under ``auto``
            the run goes on with REST and the plan says why).
    """
    out: list[Listing] = []
    for ds in wanted_datasets(spec):
        rng = spec.wanted(ds.asset)
        first = from_ms(rng.start_ms).astimezone(ds.asset.tz).date()
        last = min(from_ms(rng.end_ms - 1).astimezone(ds.asset.tz).date(), last_published_day(now_ms))
        if last < first:
            continue
        try:
            files = await list_days(source, ds, first, last)
            if files:
                await source.head(files[min(files)].key)  # listing is allowed even where reading is not
        except VendorAuthError:
            if spec.source == "flatfiles":
                raise
            out.append(Listing(ds, {}, "the flat-file key pair was refused"))
            continue
        except VendorPlanError as exc:
            out.append(Listing(ds, {}, str(exc)))
            continue
        except VendorError as exc:
            out.append(Listing(ds, {}, f"listing failed ({exc})"))
            continue
        out.append(Listing(ds, files))
    return out


@dataclass(slots=True)
class FileTotals:
    """What a run's files did, for its report."""

    planned: int = 0
    done: int = 0
    failed: int = 0
    bytes: int = 0
    rows: int = 0
    requests: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"planned": self.planned, "done": self.done, "failed": self.failed, "bytes": self.bytes,
                "rows": self.rows, "requests": self.requests, "seconds": round(self.seconds, 3)}


def _credit(report: RunReport, result: FileResult, totals: FileTotals) -> None:
    label = FilesKey(result.job.dataset.prefix)
    outcome = report.series.get(label)
    if outcome is None:
        outcome = report.series[label] = SeriesOutcome(label)
    totals.bytes += result.bytes
    if result.ok:
        totals.done += 1
        totals.rows += result.rows
        outcome.requests_done += 1
        outcome.bars += result.rows
        report.bars_fetched += result.rows
    else:
        totals.failed += 1
        outcome.requests_failed += 1
        outcome.reason = outcome.reason or (result.error or "")
        totals.errors.append(f"{result.job.info.key}: {result.error}")
    report.bars_inserted += result.written.inserted
    report.bars_updated += result.written.updated
    report.bars_unchanged += result.written.unchanged
    report.quarantined += result.quarantined
    report.db_s += result.db_s
    report.transactions += result.transactions


async def run_files(source: FileSource, store: Store, files: Sequence[PlannedFile], report: RunReport, *,
                    run_id: str = "", stop: asyncio.Event | None = None, progress: Progress | None = None,
                    parallel: int = PARALLEL_FILES) -> FileTotals:
    """Ingest the plan's files (``parallel`` at a time), crediting each to the report as it ends.

    The store goes to the earliest file in flight that has rows ready (:class:`WriteTurns`), so
    days complete in plan order while the next file downloads and decodes ahead. A file starts
    once the one before it is decoded: one decoder at a time runs beside the store's writer (on a
    host of few cores two decoders at once slowed the writer more than they gained).
    A failed file fails only its day (it stays uncovered, for the next run); ``stop`` starts no
    new file, and files in progress are abandoned without covering their day.
    """
    totals = FileTotals(planned=len(files))
    for f in files:
        label = FilesKey(f.dataset.prefix)
        if label not in report.series:
                report.series[label] = SeriesOutcome(label)
        report.series[label].requests_planned += 1
    started = time.perf_counter()
    requests_before = source.stats.requests
    queue = list(enumerate(files))
    stop = stop or asyncio.Event()
    turns = WriteTurns()
    decoded = [asyncio.Event() for _ in files]

    async def worker() -> None:
        while queue and not stop.is_set():
            rank, f = queue.pop(0)
            if rank and not await _until(decoded[rank - 1], stop):
                return
            job = FileJob(f.dataset, f.day, f.info, f.derive)
            ingest = asyncio.create_task(ingest_file(source, store, job, run_id=run_id, turns=turns,
                                                     rank=rank, decoded=decoded[rank]))
            stopper = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({ingest, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
            if not ingest.done():
                ingest.cancel()
                await asyncio.gather(ingest, return_exceptions=True)
                return
            result = ingest.result()
            _credit(report, result, totals)
            if progress:
                progress.advanced(FilesKey(f.dataset.prefix), result.ok, result.rows)

    await asyncio.gather(*(asyncio.create_task(worker(), name=f"flatfile-worker-{i}")
                           for i in range(max(1, parallel))))
    totals.seconds = time.perf_counter() - started
    totals.requests = source.stats.requests - requests_before
    return totals


async def _until(event: asyncio.Event, stop: asyncio.Event) -> bool:
    """Wait for ``event``; False when ``stop`` is set first."""
    waits = {asyncio.create_task(event.wait()), asyncio.create_task(stop.wait())}
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return event.is_set() and not stop.is_set()


@dataclass(slots=True)
class SettleReport:
    """What the flat-file settle pass found and did."""

    checked: int = 0  # days held from files whose listing was compared
    replaced: int = 0  # of those, files replaced since they were stored
    reingested: int = 0
    failed: int = 0
    bars_updated: int = 0
    bars_inserted: int = 0
    days: list[str] = field(default_factory=list)  # the replaced files' keys
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"checked": self.checked, "replaced": self.replaced, "reingested": self.reingested,
                "failed": self.failed, "bars_updated": self.bars_updated, "bars_inserted": self.bars_inserted,
                "days": self.days, "errors": self.errors}


async def settle_files(source: FileSource, store: Store, datasets: Sequence[FileDataset], first: date,
                       last: date, *, run_id: str = "") -> SettleReport:
    """Ingest again every day of ``datasets`` in ``[first, last]`` whose file changed since it was stored.

    A day is compared on its dataset's own timeframe; it is ingested again with the timeframes it
    was derived into then, so the derived bars follow the corrected minutes.
    """
    out = SettleReport()
    for ds in datasets:
        lo = ds.day_range(first).start_ms
        hi = ds.day_range(last).end_ms
        held = await store.market_days.recorded(ds.prefix, lo, hi)
        if not held:
            continue
        by_day: dict[date, tuple[str, int, list[Timeframe]]] = {}
        for d in held:
            day = from_ms(d.start_ms).astimezone(ds.asset.tz).date()
            etag, modified, tfs = by_day.get(day, ("", 0, []))
            if d.timeframe == str(ds.timeframe):
                etag, modified = d.etag, d.last_modified_ms
            else:
                tfs.append(Timeframe.parse(d.timeframe))
            by_day[day] = (etag, modified, tfs)
        listed = await list_days(source, ds, min(by_day), max(by_day))
        for day in sorted(by_day):
            etag, modified, derive = by_day[day]
            info = listed.get(day)
            out.checked += 1
            if info is None or (info.etag == etag and info.last_modified_ms <= modified):
                continue
            out.replaced += 1
            out.days.append(info.key)
            result = await ingest_file(source, store, FileJob(ds, day, info, tuple(derive)), run_id=run_id)
            if result.ok:
                out.reingested += 1
                out.bars_updated += result.written.updated
                out.bars_inserted += result.written.inserted
            else:
                out.failed += 1
                out.errors.append(f"{info.key}: {result.error}")
    log.info("flat-file settle pass", action="flatfiles.settled", checked=out.checked, replaced=out.replaced,
             bars_updated=out.bars_updated)
    return out


def settle_range(days_back: int, now_ms: int) -> tuple[date, date]:
    """The last ``days_back`` published days, the window a scheduled settle pass re-checks."""
    last = last_published_day(now_ms)
    return last - timedelta(days=days_back), last
