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
