"""A full disk: runs fail in one line, reads keep working, the WAL gives its space back, a re-run completes.

The database lives on a small tmpfs mounted for the test (root only; elsewhere the test is
skipped with the reason), filled to the last byte by a filler file. Nothing is mocked: SQLite
itself answers ``database or disk is full``.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdw.backfill import BackfillSpec, run_backfill
from mdw.backfill.liveness import recent_runs
from mdw.backfill.plan import OutcomeKey
from mdw.backfill.report import Progress
from mdw.polygon import Pacing, PolygonClient
from mdw.simulator import SimServer
from mdw.store import open_store
from mdw.store.base import RunStatus

from .conftest import assert_exact, cli_env, run_mdw, spec_of


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs of the test's own (unmounted after it)."""
    where = tmp_path / "vol"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(volume: Path) -> Path:
    """Fill ``volume`` to the last byte; returns the filler (delete it to free the space)."""
    filler = volume / f"filler-{uuid.uuid4().hex[:6]}"
    with contextlib.suppress(OSError), filler.open("ab") as fh:
        while True:
            fh.write(b"\0" * 4096)
            fh.flush()
    with contextlib.suppress(OSError), filler.open("ab") as fh:
        while True:  # the last partial page
            fh.write(b"\0")
            fh.flush()
    return filler


def wal_bytes(db: Path) -> int:
    wal = Path(f"{db}-wal")
    return wal.stat().st_size if wal.exists() else 0


class FillAfterLastWrite:
    """A progress sink that fills the disk once the last request's bars are committed.

    First the WAL is checkpointed and truncated to zero bytes from a connection of its own, so the
    run's next write (its record) must grow the WAL on a disk with no byte left.
    """

    def __init__(self, db: Path, volume: Path) -> None:
        self.db = db
        self.volume = volume
        self.left = 0
        self.filler: Path | None = None

    def planned(self, plan: object) -> None:
        self.left = int(getattr(plan, "request_count", 0))

    def advanced(self, key: OutcomeKey, ok: bool, bars: int) -> None:
        self.left -= 1
        if self.left == 0 and self.filler is None:
            conn = sqlite3.connect(self.db, isolation_level=None)
            try:
                assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
            finally:
                conn.close()
            self.filler = fill(self.volume)


async def test_run_that_wrote_its_data_ends_with_its_report_when_its_record_cannot_be_saved(
    volume: Path, sim: SimServer
) -> None:
    """The disk fills after the last bars commit: the report says the record was not saved, the data is exact,
    and reads (the runs view included) still work on the full disk."""
    db = volume / "mdw.db"
    url = f"sqlite:///{db}"
    spec: BackfillSpec = spec_of("AAPL,MSFT", "1h", "2024-03-04", "2024-03-15")
    progress = FillAfterLastWrite(db, volume)
    store = await open_store(url)
    try:
        async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as client:
            report = await run_backfill(store, client, spec, progress=progress)
    finally:
        await store.close()
    assert progress.filler is not None, "the disk was never filled"
    assert report.status is RunStatus.OK and report.bars_inserted > 0
    assert report.record_error is not None and "full" in report.record_error, report.record_error
    assert report.exit_code == 1 and report.to_dict()["record_error"] == report.record_error
    # On the full disk: the store opens read-only, the data is exact, the runs view works.
    reader = await open_store(url, read_only=True)
    try:
        await assert_exact(reader, sim, spec)
        runs = await recent_runs(reader, 5, persist=False)
        assert [r.id for r in runs] == [report.run_id] and runs[0].status is RunStatus.RUNNING
    finally:
        await reader.close()
    progress.filler.unlink()


async def test_full_disk_backfill_fails_in_one_line_reads_work_and_a_rerun_completes(
    volume: Path, sim: SimServer
) -> None:
    """Through the CLI: a backfill on a full disk exits 1 with one line; status, status --runs and export
    answer on the full disk; once space is freed the re-run completes exactly and leaves no WAL behind."""
    db = volume / "mdw.db"
    url = f"sqlite:///{db}"
    env = cli_env(sim.base_url, sim.key, url, MDW_LOG_FORMAT="console", MDW_LOG_LEVEL="ERROR")
    window = ["--start", "2024-03-04", "--end", "2024-03-15"]
    code, out, err = await run_mdw("backfill", "-s", "AAPL", "-t", "1d", *window, env=env)
    assert code == 0, err
    filler = fill(volume)
    assert shutil.disk_usage(volume).free < 4096
    code, out, err = await run_mdw("backfill", "-s", "AAPL,MSFT", "-t", "1h,1d", *window, env=env)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1, (out, err)
    assert "Traceback" not in out + err
    assert lines and lines[-1].startswith("mdw: error:") and "full" in lines[-1], err
    for command in (["status"], ["status", "--runs"], ["export", "-s", "AAPL", *window]):
        code, out, err = await run_mdw(*command, env=env)
        assert code == 0, (command, out, err)
        assert "AAPL" in out or "backfill" in out, (command, out)
    filler.unlink()
    code, out, err = await run_mdw("backfill", "-s", "AAPL,MSFT", "-t", "1h,1d", *window,
                                   "--report", str(volume / "r.json"), env=env)
    assert code == 0, (out, err)
    assert wal_bytes(db) == 0  # checkpointed and truncated after the run (and at close)
    store = await open_store(url, read_only=True)
    try:
        await assert_exact(store, sim, spec_of("AAPL,MSFT", "1h,1d", "2024-03-04", "2024-03-15"))
        statuses = [r.status for r in await store.runs.recent(5)]
    finally:
        await store.close()
    assert statuses[0] is RunStatus.OK, statuses


def _progress_type_check(p: FillAfterLastWrite) -> Progress:
    return p  # FillAfterLastWrite is a Progress (checked by mypy)
