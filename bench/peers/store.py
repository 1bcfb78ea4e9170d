"""The peers write into mdw's own ``bars`` table (same schema, same keys), through plain drivers.

The schema is created by mdw's migrations before the clock starts, and on PostgreSQL the yearly
partitions a workload needs are created up front, so a peer pays only for its own inserts.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from typing import Any

COLUMNS = "ticker, timeframe, t, o, h, l, c, v, vw, n"
INSERT_SQLITE = f"INSERT INTO bars ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
INSERT_PG = (
    f"INSERT INTO bars ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


def prepare(db_url: str, years: range) -> None:
    """Migrate the database with mdw's schema; on PostgreSQL create the partitions for ``years``."""
    from mdw.store import open_store

    async def migrate() -> None:
        store = await open_store(db_url)
        await store.close()

    asyncio.run(migrate())
    if db_url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as con:
            for year in years:
                lo = int(datetime(year, 1, 1, tzinfo=UTC).timestamp() * 1000)
                hi = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp() * 1000)
                con.execute(
                    f"CREATE TABLE IF NOT EXISTS bars_y{year:04d} PARTITION OF bars "
                    f"FOR VALUES FROM ({lo}) TO ({hi})"
                )


class RowWriter:
    """A plain driver connection: ``insert_row`` (one statement per row) or ``insert_many`` (executemany)."""

    def __init__(self, db_url: str) -> None:
        self.sqlite = db_url.startswith("sqlite:///")
        if self.sqlite:
            self.con: Any = sqlite3.connect(db_url.removeprefix("sqlite:///"))
            self.con.execute("PRAGMA journal_mode=WAL")
            self.sql = INSERT_SQLITE
        else:
            import psycopg

            self.con = psycopg.connect(db_url)
            self.sql = INSERT_PG

    def insert_row(self, row: tuple[Any, ...]) -> None:
        self.con.execute(self.sql, row)

    def insert_many(self, rows: list[tuple[Any, ...]]) -> None:
        if self.sqlite:
            self.con.executemany(self.sql, rows)
        else:
            with self.con.cursor() as cur:
                cur.executemany(self.sql, rows)

    def commit(self) -> None:
        self.con.commit()

    def rollback(self) -> None:
        self.con.rollback()

    def close(self) -> None:
        self.con.close()
