"""SQLite quirks: WAL lets a reader in another process keep reading while this process writes."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mdw.domain import RangeSet
from mdw.store import WriteResult, open_store

from .helpers import M1, T0, make_batch, write

READER = """
import asyncio, sys
from mdw.domain import Timeframe
from mdw.store import open_store

async def main(url):
    async with await open_store(url) as store:
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() != "read":
                break
            batch = await store.bars("AAPL", Timeframe.parse("1m"), 0, 2**62)
            print(len(batch), flush=True)

asyncio.run(main(sys.argv[1]))
"""


class Reader:
    """A reader process driven line by line: ``read`` -> the number of AAPL 1m bars it sees."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", READER, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def read(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write("read\n")
        self.proc.stdin.flush()
        return int(self._line())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


async def test_sqlite_reader_in_another_process_reads_while_a_writer_commits(tmp_path: Path) -> None:
    """The reader never blocks or sees a partial write: before, during and after commits."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    big = make_batch(n=60_000)
    async with await open_store(url) as store:
        await store.write_bars([write(big.take(slice(0, 1000)))])
        reader = await asyncio.to_thread(Reader, url)
        try:
            assert await asyncio.to_thread(reader.read) == 1000
            # A writer holding an open write transaction does not block the reader: the read answers
            # (the old snapshot) while the transaction is still open, since it is rolled back only
            # afterwards. A blocked reader would never see 1000 here: it would fail once its busy
            # timeout ran out.
            raw = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("DELETE FROM bars")
            assert await asyncio.to_thread(reader.read) == 1000
            assert raw.in_transaction
            raw.execute("ROLLBACK")
            raw.close()
            # While a big write runs, every read sees all of it or none of it.
            task = asyncio.create_task(store.write_bars([write(big)]))
            seen = []
            while not task.done():
                seen.append(await asyncio.to_thread(reader.read))
            await task
            seen.append(await asyncio.to_thread(reader.read))
        finally:
            await asyncio.to_thread(reader.close)
    assert set(seen) <= {1000, 60_000} and seen[-1] == 60_000
    assert seen.count(1000) >= 2  # the reader kept answering while the write was in flight
    assert reader.proc.returncode == 0


async def test_sqlite_store_uses_wal_mode(tmp_path: Path) -> None:
    """The file is switched to WAL when the store opens it."""
    path = tmp_path / "wal.db"
    async with await open_store(f"sqlite:///{path}"):
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


@pytest.mark.parametrize("url", ["sqlite://:memory:", "sqlite:///:memory:"])
async def test_sqlite_in_memory_store_round_trips(url: str) -> None:
    """An in-memory store (tests, demos) reads back what it wrote on its single connection."""
    async with await open_store(url) as store:
        batch = make_batch(n=5)
        await store.write_bars([write(batch)])
        assert (await store.bars("AAPL", M1, T0, T0 + 10**9)).equals(batch)
        assert await store.coverage("AAPL", "bars", "1m") != RangeSet()  # type: ignore[arg-type]


async def test_sqlite_creates_the_parent_directory(tmp_path: Path) -> None:
    """A path in a directory that does not exist yet is created."""
    path = tmp_path / "deeper" / "still" / "mdw.db"
    async with await open_store(f"sqlite:///{path}") as store:
        await store.ping()
    assert path.exists()


async def test_sqlite_write_cancelled_at_any_point_leaves_all_or_nothing_and_the_store_usable(
    tmp_path: Path,
) -> None:
    """A write cancelled between any two of its statements rolls back whole; the next write succeeds."""
    async with await open_store(f"sqlite:///{tmp_path / 'cancel.db'}") as store:
        for steps in range(12):  # cancel after 0, 1, 2, ... turns of the event loop
            ticker = f"T{steps}"
            task = asyncio.create_task(store.write_bars([write(make_batch(ticker, n=2_000))]))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            stored = len(await store.bars(ticker, M1, 0, 2**62))
            covered = await store.coverage(ticker, "bars", "1m")  # type: ignore[arg-type]
            assert (stored, bool(covered)) in ((0, False), (2_000, True))
        assert await store.write_bars([write(make_batch("AFTER", n=5))]) == WriteResult(inserted=5)
