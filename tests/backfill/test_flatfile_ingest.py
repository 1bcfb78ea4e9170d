"""Flat-file ingest into real stores: exact bars, derived timeframes, quarantine, interruptions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date

import numpy as np
import pytest

from mdw.backfill.derive import resample
from mdw.backfill.ingest import FileJob, ingest_file
from mdw.domain import NEW_YORK, Timeframe, local_midnight_ms
from mdw.flatfiles.keys import FileDataset, FileInfo, TransferStats, dataset_named
from mdw.flatfiles.s3 import FlatFileClient
from mdw.simulator import FaultConfig, SimServer
from mdw.simulator.testing import SimFactory
from mdw.store import Dataset, Store

MINUTES = dataset_named("us_stocks_sip/minute_aggs_v1")
DAYS = dataset_named("us_stocks_sip/day_aggs_v1")
NOW = local_midnight_ms(date(2024, 4, 2), NEW_YORK)
DAY = date(2024, 3, 7)


def client_for(sim: SimServer, **kwargs: object) -> FlatFileClient:
    key_id, secret = sim.flatfile_key
    return FlatFileClient(sim.base_url, key_id, secret, **kwargs)  # type: ignore[arg-type]


async def job_for(client: FlatFileClient, ds: FileDataset, day: date, derive: str = "") -> FileJob:
    info = await client.head(ds.key(day))
    tfs = tuple(Timeframe.parse(t) for t in derive.split(",") if t)
    return FileJob(ds, day, info, tfs)


@pytest.fixture
async def files_sim(sim_factory: SimFactory) -> SimServer:
    return await sim_factory(n_stocks=10, n_crypto=2, n_fx=1, now_ms=NOW)


async def _assert_truth(store: Store, sim: SimServer, ds: FileDataset, day: date) -> int:
    rng = ds.day_range(day)
    truth = sim.flatfiles.bars(ds, day)
    for ticker, expected in truth.items():
        got = await store.bars(ticker, ds.timeframe, rng.start_ms, rng.end_ms)
        for name in ("t", "o", "h", "l", "c", "v", "n"):
            assert np.array_equal(getattr(got, name), getattr(expected, name)), (ticker, name)
        assert np.isnan(got.vw).all()
    return sum(len(b) for b in truth.values())


async def test_ingest_stores_the_exact_bars_and_covers_the_day_when_the_file_is_whole(
    store: Store, files_sim: SimServer,
) -> None:
    """Every ticker's minute bars equal the simulator's; the day is covered for each of them."""
    client = client_for(files_sim)
    result = await ingest_file(client, store, await job_for(client, MINUTES, DAY))
    assert result.ok, result.error
    rows = await _assert_truth(store, files_sim, MINUTES, DAY)
    assert result.rows == rows == result.written.inserted and result.tickers == 10
    rng = MINUTES.day_range(DAY)
    for ticker in [*files_sim.market.universe(MINUTES.asset), "NOTTRADED"]:  # absent: confirmed empty
        assert list(await store.coverage(ticker, Dataset.BARS, "1m")) == [rng]
    assert not await store.coverage("X:BTCUSD", Dataset.BARS, "1m")  # another market's day
    assert [(d.timeframe, d.etag) for d in await store.market_days.recorded(MINUTES.prefix, 0, 2**62)] == [
        ("1m", result.job.info.etag)]
    again = await ingest_file(client, store, await job_for(client, MINUTES, DAY))
    assert again.written.unchanged == rows and again.written.written == 0


async def test_ingest_matches_rest_bars_except_vw_when_both_are_asked(
    store: Store, files_sim: SimServer,
) -> None:
    """A day file's bars equal the aggregates endpoint's daily bars in every column but vw."""
    client = client_for(files_sim)
    assert (await ingest_file(client, store, await job_for(client, DAYS, DAY))).ok
    rng = DAYS.day_range(DAY)
    for ticker in files_sim.market.universe(DAYS.asset):
        rest = files_sim.market.aggregates(ticker, Timeframe(1, "d"), rng.start_ms, rng.end_ms)
        got = await store.bars(ticker, Timeframe(1, "d"), rng.start_ms, rng.end_ms)
        for name in ("t", "o", "h", "l", "c", "v", "n"):
            assert np.array_equal(getattr(got, name), getattr(rest, name)), (ticker, name)


async def test_ingest_derives_coarser_timeframes_from_the_minute_file(
    store: Store, files_sim: SimServer,
) -> None:
    """With derive 5m,1h each ticker's derived bars equal resampling its minutes, and are covered."""
    client = client_for(files_sim)
    result = await ingest_file(client, store, await job_for(client, MINUTES, DAY, "5m,1h"))
    assert result.ok and result.derived > 0
    rng = MINUTES.day_range(DAY)
    for ticker, minutes in files_sim.flatfiles.bars(MINUTES, DAY).items():
        for tf in (Timeframe(5, "m"), Timeframe(1, "h")):
            expected = resample(minutes, MINUTES.asset, tf)
            got = await store.bars(ticker, tf, rng.start_ms, rng.end_ms)
            assert np.array_equal(got.t, expected.t) and np.array_equal(got.c, expected.c)
            assert np.array_equal(got.v, expected.v)
            assert list(await store.coverage(ticker, Dataset.BARS, str(tf))) == [rng]


async def test_ingest_resumes_dropped_downloads_and_still_stores_every_bar(
    store: Store, sim_factory: SimFactory,
) -> None:
    """With a third of the GETs cut halfway the file is resumed by ranges and stored exactly."""
    sim = await sim_factory(n_stocks=10, now_ms=NOW, faults=FaultConfig(truncate_rate=0.3))
    client = client_for(sim, max_retries=0)
    job = await job_for(client, MINUTES, DAY)
    result = await ingest_file(client, store, job)
    assert result.ok, result.error
    assert client.stats.resumes >= 1
    await _assert_truth(store, sim, MINUTES, DAY)


class _Stalling:
    """A file source that delivers the first chunks of a file, then waits forever (a hung transfer)."""

    def __init__(self, inner: FlatFileClient, chunks: int) -> None:
        self.inner, self.chunks = inner, chunks
        self.stats = TransferStats()
        self.sent = asyncio.Event()

    async def list_month(self, ds: FileDataset, year: int, month: int) -> list[FileInfo]:
        return await self.inner.list_month(ds, year, month)

    async def download(self, info: FileInfo, chunk: int = 4096) -> AsyncIterator[bytes]:
        n = 0
        async for part in self.inner.download(info, chunk=4096):
            yield part
            n += 1
            if n == self.chunks:
                self.sent.set()
                await asyncio.Event().wait()


async def test_ingest_cancelled_mid_download_leaves_no_coverage_and_a_rerun_is_exact(
    store: Store, files_sim: SimServer,
) -> None:
    """Cancelling the ingest partway writes no coverage; running it again stores the exact day."""
    client = client_for(files_sim)
    job = await job_for(client, MINUTES, DAY)
    stalling = _Stalling(client, chunks=1)
    task = asyncio.create_task(ingest_file(stalling, store, job, rows_per_write=200))
    await asyncio.wait_for(stalling.sent.wait(), 30)
    await asyncio.sleep(0.2)  # let the writer commit what was decoded so far
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for ticker in files_sim.market.universe(MINUTES.asset):
        assert not await store.coverage(ticker, Dataset.BARS, "1m")
    result = await ingest_file(client, store, job)
    assert result.ok
    await _assert_truth(store, files_sim, MINUTES, DAY)


async def test_ingest_quarantines_invalid_rows_and_keeps_the_rest(store: Store, files_sim: SimServer) -> None:
    """A file row with high below low goes to the quarantine; the ticker's other bars are stored."""
    import gzip

    rng = MINUTES.day_range(DAY)
    t0 = (rng.start_ms + 10 * 3_600_000) * 1_000_000
    text = ("ticker,volume,open,close,high,low,window_start,transactions\n"
            f"AAA,10,5,5,5,5,{t0},1\nAAA,10,5,5,4,6,{t0 + 60_000_000_000},1\n"
            f"AAA,10,5,5,5,5,{t0 + 120_000_000_000},1\n")
    body = gzip.compress(text.encode())

    class _Fixed:
        stats = TransferStats()

        async def list_month(self, ds: FileDataset, year: int, month: int) -> list[FileInfo]:
            return []

        async def download(self, info: FileInfo, chunk: int = 0) -> AsyncIterator[bytes]:
            yield body

    info = FileInfo(MINUTES.key(DAY), len(body), '"x"', 0)
    result = await ingest_file(_Fixed(), store, FileJob(MINUTES, DAY, info), run_id="run-q")
    assert result.ok and result.quarantined == 1 and result.written.inserted == 2
    kept = await store.quarantine.recent("AAA")
    assert [(q.reason, q.run_id, q.url) for q in kept] == [("high is below low", "run-q", info.key)]
    assert len(await store.bars("AAA", Timeframe(1, "m"), rng.start_ms, rng.end_ms)) == 2


async def test_ingest_reports_a_failed_download_without_covering_the_day(
    store: Store, files_sim: SimServer,
) -> None:
    """A file the key may not read fails the job with the vendor's reason and records nothing."""
    client = client_for(files_sim)
    job = await job_for(client, MINUTES, DAY)
    files_sim.flatfiles.deny(["us_stocks_sip"])
    result = await ingest_file(client, store, job)
    assert not result.ok and "refused" in (result.error or "")
    assert not await store.coverage("AAPL", Dataset.BARS, "1m")


class _Recording:
    """A file source that records which files were asked for and holds back one file's last chunks."""

    def __init__(self, inner: FlatFileClient, hold: str) -> None:
        self.inner, self.hold = inner, hold
        self.stats = TransferStats()
        self.started: list[str] = []
        self.release = asyncio.Event()
        self.held = asyncio.Event()

    async def list_month(self, ds: FileDataset, year: int, month: int) -> list[FileInfo]:
        return await self.inner.list_month(ds, year, month)

    async def head(self, key: str) -> FileInfo:
        return await self.inner.head(key)

    async def download(self, info: FileInfo, chunk: int = 4096) -> AsyncIterator[bytes]:
        self.started.append(info.key)
        async for part in self.inner.download(info, chunk=4096):
            if info.key == self.hold and not self.release.is_set():
                self.held.set()
                await self.release.wait()
            yield part


async def test_run_files_starts_the_next_file_once_the_one_before_is_decoded(
    store: Store, files_sim: SimServer,
) -> None:
    """With two files in flight, the second starts only after the first is decoded; all days are exact."""
    from mdw.backfill.filerun import run_files
    from mdw.backfill.plan import PlannedFile
    from mdw.backfill.report import RunReport
    from mdw.store.base import RunKind

    client = client_for(files_sim)
    days = MINUTES.days(DAY, date(2024, 3, 12))[:3]
    planned = [PlannedFile(MINUTES, d, await client.head(MINUTES.key(d))) for d in days]
    source = _Recording(client, hold=MINUTES.key(days[0]))
    report = RunReport(run_id="order", kind=RunKind.BACKFILL)
    run = asyncio.create_task(run_files(source, store, planned, report, parallel=2))
    await asyncio.wait_for(source.held.wait(), 30)
    await asyncio.sleep(0.3)  # time enough for a second worker to start its file, were it allowed to
    assert source.started == [MINUTES.key(days[0])]
    source.release.set()
    totals = await asyncio.wait_for(run, 60)
    assert source.started == [MINUTES.key(d) for d in days]
    assert totals.done == 3 and not totals.failed
    for d in days:
        await _assert_truth(store, files_sim, MINUTES, d)
