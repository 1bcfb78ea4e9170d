"""A bars table in a temporary warehouse, its pointer in a SQLite file, driven as the store drives it."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mdw.domain import BarBatch, Timeframe
from mdw.store.lake import layout
from mdw.store.lake.catalog import CATALOG_DDL, SELECT_POINTER, SWAP_POINTER, StagingCatalog, pointer_key, sql
from mdw.store.lake.table import LakeTable

KEY = pointer_key(layout.NAMESPACE, layout.TABLE)


@dataclass
class Lake:
    """The table, its catalog database and a connection that swaps the pointer like the store does."""

    table: LakeTable
    db: Path
    warehouse: Path
    conn: sqlite3.Connection

    def pointer(self) -> str:
        return str(self.conn.execute(sql(SELECT_POINTER, "sqlite"), KEY).fetchone()[0])

    def commit(self, stage: Callable[[str], str]) -> str:
        """Stage at the pointer read under the write lock, swap it, commit; the new location."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            old = self.pointer()
            new = stage(old)
            if self.conn.execute(sql(SWAP_POINTER, "sqlite"), (new, old, *KEY, old)).rowcount != 1:
                raise AssertionError("the pointer moved under the lock")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return new


def open_lake(root: Path, warehouse: str | None = None, **io: str) -> Lake:
    """A new bars table registered in a new SQLite catalog, as the store's ``open`` registers it."""
    where = warehouse or f"file://{root}/lake"
    catalog = StagingCatalog("mdw", uri="sqlite://", init_catalog_tables="false", warehouse=where, **io)
    table = LakeTable(catalog)
    conn = sqlite3.connect(root / "mdw.db", isolation_level=None)
    for ddl in CATALOG_DDL:
        conn.execute(ddl)
    conn.execute("INSERT INTO iceberg_tables VALUES (?, ?, ?, ?, NULL)", (*KEY, table.new_table(where)))
    return Lake(table, root / "mdw.db", root / "lake", conn)


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    opened = open_lake(tmp_path)
    try:
        yield opened
    finally:
        opened.conn.close()


def series(
    ticker: str, tf: str = "1m", start: int = 1_700_000_000_000, n: int = 100, seed: int = 1
) -> pa.Table:
    """``n`` bars of one series at consecutive windows; every 7th bar without volume."""
    rng = np.random.default_rng(seed)
    step = Timeframe.parse(tf).fixed_ms or 86_400_000
    t = start + np.arange(n, dtype=np.int64) * step
    c = 100 + np.round(np.cumsum(rng.normal(0, 0.1, n)), 4)
    v = rng.integers(1, 10_000, n).astype(np.float64)
    v[::7] = np.nan
    batch = BarBatch(ticker, Timeframe.parse(tf), t, c, c + 0.5, c - 0.5, c, v, v / 3, rng.integers(1, 99, n))
    return layout.batch_table(batch)


@dataclass(frozen=True)
class S3Server:
    """A real S3-protocol server (moto's server mode) on loopback, with one bucket per test."""

    endpoint: str
    env: dict[str, str]

    def bucket(self) -> str:
        import boto3

        name = f"lake-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=name)  # fmt: skip
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto_server in its own process on a free loopback port, stopped after the session."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = str(Path(sys.executable).parent / "moto_server")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_for(endpoint, proc)
        yield S3Server(endpoint, {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                                  "AWS_REGION": "us-east-1"})  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_for(endpoint: str, proc: subprocess.Popen[bytes]) -> None:
    import urllib.request

    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(endpoint + "/", timeout=1).close()
            return
        except OSError:
            threading.Event().wait(0.1)
    raise RuntimeError("moto_server did not answer within 30 s")
