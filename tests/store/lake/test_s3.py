"""The table on a real S3-protocol server, written by processes that share only the endpoint and catalog."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.compute as pc
import pytest
from tests.store.lake.conftest import KEY, S3Server, open_lake, series

WRITER = textwrap.dedent("""
    import sqlite3, sys
    from mdw.store.lake.catalog import SELECT_POINTER, SWAP_POINTER, StagingCatalog, sql
    from tests.store.lake.conftest import KEY, series
    db, bucket, endpoint, name, pages = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    catalog = StagingCatalog("mdw", uri="sqlite://", init_catalog_tables="false", warehouse=f"s3://{bucket}/wh",
                             **{"s3.endpoint": endpoint, "s3.region": "us-east-1"})
    from mdw.store.lake.table import LakeTable
    lake = LakeTable(catalog)
    conn = sqlite3.connect(db, isolation_level=None, timeout=60)
    for page in range(pages):
        # Two series per commit: a reader must never see one without the other.
        start = 1_700_000_000_000 + page * 100 * 60_000
        tables = [series(f"{name}A", start=start, seed=page), series(f"{name}B", start=start, seed=page)]
        conn.execute("BEGIN IMMEDIATE")
        old = conn.execute(sql(SELECT_POINTER, "sqlite"), KEY).fetchone()[0]
        new = lake.stage(old, {"1m": tables}, [])
        assert conn.execute(sql(SWAP_POINTER, "sqlite"), (new, old, *KEY, old)).rowcount == 1
        conn.execute("COMMIT")
    print("done")
""")

READER = textwrap.dedent("""
    import sqlite3, sys
    import pyarrow.compute as pc
    from mdw.store.lake.catalog import SELECT_POINTER, StagingCatalog, sql
    from mdw.store.lake.table import LakeTable
    from tests.store.lake.conftest import KEY
    db, bucket, endpoint, reads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    catalog = StagingCatalog("mdw", uri="sqlite://", init_catalog_tables="false", warehouse=f"s3://{bucket}/wh",
                             **{"s3.endpoint": endpoint, "s3.region": "us-east-1"})
    lake = LakeTable(catalog)
    conn = sqlite3.connect(db, isolation_level=None, timeout=60)
    for _ in range(reads):
        at = conn.execute(sql(SELECT_POINTER, "sqlite"), KEY).fetchone()[0]
        rows = lake.read(at, "1m", None, 0, 2**62, columns=("ticker", "t"))
        counts = {k: v for k, v in zip(*[c.to_pylist() for c in pc.value_counts(rows["ticker"]).flatten()])}
        for w in ("W1", "W2"):
            assert counts.get(w + "A", 0) == counts.get(w + "B", 0), counts
    print("consistent")
""")


def _run(script: str, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    root = Path(__file__).resolve().parents[3]
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=root, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_two_writer_processes_and_a_reader_on_s3_give_the_exact_ground_truth(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers queue on the catalog's lock, the reader only ever sees whole commits, nothing is lost."""
    bucket = s3_server.bucket()
    db = tmp_path / "mdw.db"
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    lake = open_lake(
        tmp_path, f"s3://{bucket}/wh", **{"s3.endpoint": s3_server.endpoint, "s3.region": "us-east-1"}
    )
    pages = 3
    procs = [_run(WRITER, str(db), bucket, s3_server.endpoint, name, str(pages), env=s3_server.env)
             for name in ("W1", "W2")]  # fmt: skip
    reader = _run(READER, str(db), bucket, s3_server.endpoint, "6", env=s3_server.env)
    for proc in [*procs, reader]:
        _out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-2000:]
    import sqlite3

    from mdw.store.lake.catalog import SELECT_POINTER, sql

    conn = sqlite3.connect(db)
    at = conn.execute(sql(SELECT_POINTER, "sqlite"), KEY).fetchone()[0]
    conn.close()
    got = lake.table.read(at, "1m", None, 0, 2**62).sort_by([("ticker", "ascending"), ("t", "ascending")])
    expected = [
        series(f"{name}{leg}", start=1_700_000_000_000 + page * 100 * 60_000, seed=page)
        for name in ("W1", "W2") for leg in ("A", "B") for page in range(pages)
    ]  # fmt: skip
    assert got.num_rows == sum(t.num_rows for t in expected) == 4 * pages * 100
    for table in expected:
        ticker = table["ticker"][0].as_py()
        part = got.filter(pc.and_(pc.equal(got["ticker"], ticker),
                                  pc.is_in(got["t"], value_set=table["t"])))  # fmt: skip
        assert part.to_pylist() == table.to_pylist()
    lake.conn.close()


STORE_WRITER = textwrap.dedent("""
    import asyncio, sys
    import numpy as np
    from mdw.domain import BarBatch, RangeSet, Timeframe
    from mdw.store import BarWrite, open_store
    url, name, pages = sys.argv[1], sys.argv[2], int(sys.argv[3])
    M1 = Timeframe.parse("1m")
    def page(ticker, i):
        t = 1_699_999_980_000 + (i * 100 + np.arange(100, dtype=np.int64)) * 60_000
        c = 100 + (t % 997) / 100
        return BarBatch(ticker, M1, t, c, c + 1, c - 1, c, c * 10, c, np.full(100, 7))
    async def main():
        async with await open_store(url) as store:
            for i in range(pages):
                writes = [page(f"{name}{leg}", i) for leg in "AB"]
                await store.write_bars([BarWrite(b, RangeSet.of([(int(b.t[0]), int(b.t[-1]) + 60_000)]))
                                        for b in writes])
    asyncio.run(main())
    print("done")
""")

STORE_READER = textwrap.dedent("""
    import asyncio, sys
    from mdw.domain import Timeframe
    from mdw.store import Dataset, open_store
    url, reads = sys.argv[1], int(sys.argv[2])
    async def main():
        async with await open_store(url) as store:
            for _ in range(reads):
                for name in ("W1", "W2"):
                    # Each read sees the table as of its own pointer, so a commit may land between
                    # two reads: A, then B, then A again. One commit holds both series, so B lies
                    # between the two reads of A, and equals them when no commit landed in between.
                    a = await store.bars(name + "A", Timeframe.parse("1m"), 0, 2**62)
                    b = await store.bars(name + "B", Timeframe.parse("1m"), 0, 2**62)
                    again = await store.bars(name + "A", Timeframe.parse("1m"), 0, 2**62)
                    cov = await store.coverage(name + "A", Dataset.BARS, "1m")
                    assert len(a) <= len(b) <= len(again), (len(a), len(b), len(again))
                    assert len(a) != len(again) or len(b) == len(a), (len(a), len(b), len(again))
                    assert len(again) <= cov.total_ms // 60_000 or len(again) == 0, (len(again), cov)
    asyncio.run(main())
    print("consistent")
""")


def test_two_store_writer_processes_and_a_reader_on_s3_agree_with_the_ground_truth(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``open_store`` on an s3:// warehouse in three processes: exact bars and coverage at the end."""
    import asyncio

    import numpy as np

    from mdw.domain import Timeframe
    from mdw.store import Dataset, open_store

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    bucket = s3_server.bucket()
    url = (f"iceberg+sqlite:///{tmp_path / 'mdw.db'}?warehouse=s3://{bucket}/lake"
           f"&s3.endpoint={s3_server.endpoint}&s3.region=us-east-1")  # fmt: skip
    pages = 3

    async def opened() -> None:
        async with await open_store(url):
            pass  # create the table once before the writers race

    asyncio.run(opened())
    writers = [_run(STORE_WRITER, url, name, str(pages), env=s3_server.env) for name in ("W1", "W2")]
    reader = _run(STORE_READER, url, "5", env=s3_server.env)
    for proc in [*writers, reader]:
        _out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-2000:]

    async def check() -> None:
        async with await open_store(url) as store:
            for name in ("W1", "W2"):
                for leg in "AB":
                    got = await store.bars(f"{name}{leg}", Timeframe.parse("1m"), 0, 2**62)
                    t = 1_699_999_980_000 + np.arange(pages * 100, dtype=np.int64) * 60_000
                    assert got.t.tolist() == t.tolist()
                    assert got.c.tolist() == (100 + (t % 997) / 100).tolist()
                    cov = await store.coverage(f"{name}{leg}", Dataset.BARS, "1m")
                    assert cov.ranges[0].start_ms == t[0] and cov.total_ms == pages * 100 * 60_000

    asyncio.run(check())
