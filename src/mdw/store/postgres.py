"""The server store: PostgreSQL through an asyncpg pool, bars range-partitioned by year of ``t``.

Writes COPY binary rows built by numpy (:mod:`mdw.store.pgcopy`). When the ledger and the table
agree a series' range is empty the rows go straight into ``bars``; otherwise into a per-connection
temporary stage, then ``INSERT ... ON CONFLICT DO UPDATE ... WHERE ... IS DISTINCT FROM ...``,
so identical re-writes change nothing. Ledger and bars share one transaction.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from mdw.domain import BarBatch, Dividend, RangeSet, Split, Timeframe, TimeRange
from mdw.errors import StoreError
from mdw.store import migrate, pgcopy
from mdw.store.base import Dataset, WriteResult
from mdw.store.common import StoreBase, as_timeframe, check_range, tf_text
from mdw.store.ledger import (
    LedgerChange,
    LedgerRow,
    SeriesWrite,
    cut_rule,
    diff_bars,
    hull,
    merge_rule,
    now_ms,
)
from mdw.store.pgpartitions import split_by_year, year_bounds, years_of
from mdw.store.postgres_records import PostgresRecords, pg_errors

log = logging.getLogger(__name__)

STAGE = "mdw_stage"
_STAGE_SQL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (ticker TEXT, timeframe TEXT, t BIGINT, o FLOAT8, h FLOAT8,"
    " l FLOAT8, c FLOAT8, v FLOAT8, vw FLOAT8, n BIGINT, source TEXT) ON COMMIT DELETE ROWS"
)
_VALUES = ("o", "h", "l", "c", "v", "vw", "n", "source")
_COLS = ", ".join(pgcopy.WRITE_COLUMNS)
_UPSERT = (
    f"WITH up AS (INSERT INTO bars ({_COLS}) SELECT {_COLS} FROM {STAGE}"
    " ON CONFLICT (ticker, timeframe, t) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _VALUES)
    + f" WHERE ({', '.join('bars.' + c for c in _VALUES)}) IS DISTINCT FROM"
    f" ({', '.join('EXCLUDED.' + c for c in _VALUES)})"
    " RETURNING 1) SELECT count(*) FROM up"
)
_TIMESCALE_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
    " OR (EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
    " AND current_setting('shared_preload_libraries') LIKE '%timescaledb%')"
)
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || $1, 0))"


async def _init_connection(conn: Any) -> None:
    # One stage per pooled connection; ON COMMIT DELETE ROWS empties it at every commit.
    await conn.execute(_STAGE_SQL)


class PostgresStore(PostgresRecords, StoreBase):
    """A :class:`~mdw.store.base.Store` in PostgreSQL (``postgresql://user@host/db``)."""

    def __init__(self, url: str, *, max_connections: int = 10) -> None:
        self.url = url
        self._dsn = "postgresql://" + url.split("://", 1)[1]
        self._max = max_connections
        self._pool: Any = None
        self._partitioned = True
        self._partitions: set[int] = set()

    @contextlib.asynccontextmanager
    async def _acquire(self, what: str) -> AsyncIterator[Any]:
        if self._pool is None:
            raise StoreError(f"the store {_safe(self.url)} is not open")
        async with pg_errors(what), self._pool.acquire() as conn:
            yield conn

    async def open(self) -> None:
        """Create the pool and apply pending migrations (serialised across processes by a lock).

        Raises:
            SchemaVersionError: the database was migrated by a newer mdw.
            StoreError: the server is unreachable or refused.
        """
        async with pg_errors("connect"):
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=1, max_size=self._max, init=_init_connection, timeout=10
            )
        async with self._acquire("migrate") as conn:
            async with conn.transaction():
                await conn.execute(_LOCK, ":mdw-migrate")
                await conn.execute(migrate.SCHEMA_TABLE_SQL)
                current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
                variants = frozenset({"timescaledb"}) if await conn.fetchval(_TIMESCALE_SQL) else frozenset()
                for step in migrate.pending("postgres", int(current), variants):
                    log.info(
                        "applying migration %04d_%s%s",
                        step.version,
                        step.name,
                        " (timescaledb)" if variants else "",
                        extra={"action": "store.migrate", "backend": "postgres"},
                    )
                    await conn.execute(step.sql)
                    await conn.execute(
                        "INSERT INTO schema_version (version, name, applied_at_ms) VALUES ($1, $2, $3)",
                        step.version,
                        step.name,
                        now_ms(),
                    )
            kind = await conn.fetchval("SELECT relkind FROM pg_class WHERE oid = 'bars'::regclass")
            self._partitioned = kind == b"p" or kind == "p"
            if not self._partitioned:
                log.info(
                    "bars is not natively partitioned (TimescaleDB hypertable); partitions are not managed",
                    extra={"action": "store.layout", "backend": "postgres"},
                )

    async def close(self) -> None:
        """Close the pool (idempotent)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            async with pg_errors("close"):
                await pool.close()

    async def ping(self) -> None:
        async with self._acquire("ping") as conn:
            await conn.fetchval("SELECT 1")

    async def schema_version(self) -> tuple[int, int]:
        async with self._acquire("schema_version") as conn:
            got = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
        return int(got), migrate.latest("postgres")

    # -- partitions -----------------------------------------------------------------------------

    async def _ensure_partitions(self, conn: Any, years: set[int]) -> None:
        """Create missing yearly partitions, each in its own short transaction before the data write.

        An advisory lock serialises creators (in this and other processes), and ``IF NOT EXISTS``
        under that lock makes a lost race harmless.
        """
        missing = years - self._partitions
        if not missing or not self._partitioned:
            return
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'bars'::regclass"
        )
        self._partitions |= {int(r[0][len("bars_y") :]) for r in rows if r[0].startswith("bars_y")}
        for year in sorted(missing - self._partitions):
            lo, hi = year_bounds(year)
            async with conn.transaction():
                await conn.execute(_LOCK, ":mdw-partitions")
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS bars_y{year:04d} PARTITION OF bars"
                    f" FOR VALUES FROM ({lo}) TO ({hi})"
                )
            log.info("created partition bars_y%04d", year, extra={"action": "store.partition"})
            self._partitions.add(year)

    # -- bars -----------------------------------------------------------------------------------

    async def _write_series(self, series: list[SeriesWrite], fetched_at_ms: int) -> WriteResult:
        years: set[int] = set()
        for s in series:
            if len(s.batch):
                years |= years_of(s.batch.t)
        async with self._acquire("write_bars") as conn:
            await self._ensure_partitions(conn, years)
            async with conn.transaction():
                return await self._write_locked(conn, series, fetched_at_ms)

    async def _write_locked(self, conn: Any, series: list[SeriesWrite], fetched_at_ms: int) -> WriteResult:
        new: list[SeriesWrite] = []
        changed: list[SeriesWrite] = []
        unchanged = 0
        for s in series:  # sorted by (ticker, timeframe): every writer locks in the same order
            await conn.execute(_LOCK, f":bars:{s.ticker}:{s.timeframe}")
            span = s.span
            if span is not None:
                # Under the series lock, what is stored in the span decides the path: an empty span
                # (what the ledger says, plus rows written without coverage) is one plain COPY.
                data = await _copy_out(
                    conn, pgcopy.DIFF_SQL, s.ticker, s.timeframe, span.start_ms, span.end_ms, s.batch.source
                )
                diff = diff_bars(s.batch, *pgcopy.decode_diff(s.ticker, s.batch.timeframe, data))
                if len(diff.new):
                    new.append(SeriesWrite(s.ticker, s.timeframe, diff.new, RangeSet()))
                if len(diff.changed):
                    changed.append(SeriesWrite(s.ticker, s.timeframe, diff.changed, RangeSet()))
                unchanged += diff.unchanged
            # The ledger first: a failure while writing bars then also undoes the ledger rows.
            await _apply_ledger(
                conn,
                s.ticker,
                Dataset.BARS,
                s.timeframe,
                s.covered,
                functools.partial(merge_rule, new=s.covered, fetched_at_ms=fetched_at_ms),
            )
        inserted = sum(len(s.batch) for s in new)
        if new:
            await self._copy_fast(conn, new)
        updated = 0
        if changed:
            # Corrections go through the stage and the guarded upsert, which also stays correct
            # if a writer outside mdw (no series lock) touched these rows meanwhile.
            await _copy(conn, STAGE, changed)
            updated = await conn.fetchval(_UPSERT)
            unchanged += sum(len(s.batch) for s in changed) - updated
        return WriteResult(inserted=inserted, updated=updated, unchanged=unchanged)

    async def _copy_fast(self, conn: Any, fast: list[SeriesWrite]) -> None:
        """COPY straight into each year's partition (no per-row routing through the parent)."""
        if not self._partitioned:
            await _copy(conn, "bars", fast)
            return
        for year, parts in split_by_year(fast).items():
            await _copy(conn, f"bars_y{year:04d}" if year in self._partitions else "bars", parts)

    async def bars(self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int) -> BarBatch:
        timeframe = as_timeframe(timeframe)
        rng = check_range(start_ms, end_ms)
        async with self._acquire("bars") as conn:
            data = await _copy_out(
                conn, pgcopy.READ_SQL, ticker, tf_text(timeframe), rng.start_ms, rng.end_ms
            )
        return pgcopy.decode(ticker, timeframe, data)

    async def iter_bars(
        self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int, chunk: int = 100_000
    ) -> AsyncIterator[BarBatch]:
        timeframe = as_timeframe(timeframe)
        rng = check_range(start_ms, end_ms)
        tf = tf_text(timeframe)
        lo = rng.start_ms
        while True:
            # Keyset paging on the primary key: one short COPY per chunk, memory stays flat and no
            # connection is held between chunks.
            async with self._acquire("iter_bars") as conn:
                data = await _copy_out(
                    conn, pgcopy.READ_SQL + f" LIMIT {int(chunk)}", ticker, tf, lo, rng.end_ms
                )
            batch = pgcopy.decode(ticker, timeframe, data)
            if not len(batch):
                return
            yield batch
            if len(batch) < chunk:
                return
            lo = int(batch.t[-1]) + 1

    async def delete_range(self, ticker: str, timeframe: Timeframe | str, start_ms: int, end_ms: int) -> int:
        rng = check_range(start_ms, end_ms)
        tf = tf_text(timeframe)
        async with self._acquire("delete_range") as conn, conn.transaction():
            await conn.execute(_LOCK, f":bars:{ticker}:{tf}")
            status = await conn.execute(
                "DELETE FROM bars WHERE ticker = $1 AND timeframe = $2 AND t >= $3 AND t < $4",
                ticker,
                tf,
                rng.start_ms,
                rng.end_ms,
            )
            await _apply_ledger(
                conn, ticker, Dataset.BARS, tf, RangeSet.of([rng]), lambda rows: cut_rule(rows, rng)
            )
        return int(status.split()[-1])

    async def coverage(self, ticker: str, dataset: Dataset, timeframe: str = "") -> RangeSet:
        async with self._acquire("coverage") as conn:
            rows = await conn.fetch(
                "SELECT start_ms, end_ms FROM coverage WHERE ticker = $1 AND dataset = $2 AND timeframe = $3",
                ticker,
                Dataset(dataset).value,
                str(timeframe),
            )
        return RangeSet.of((r[0], r[1]) for r in rows)

    async def write_corporate_actions(
        self,
        ticker: str,
        dividends: Sequence[Dividend] | None,
        splits: Sequence[Split] | None,
        covered: TimeRange,
    ) -> WriteResult:
        fetched = now_ms()
        total = WriteResult()
        async with self._acquire("write_corporate_actions") as conn, conn.transaction():
            for dataset, items in ((Dataset.DIVIDENDS, dividends), (Dataset.SPLITS, splits)):
                if items is None:
                    continue
                await conn.execute(_LOCK, f":{dataset.value}:{ticker}")
                total += await self._upsert_actions(conn, dataset, items)
                await _apply_ledger(
                    conn,
                    ticker,
                    dataset,
                    "",
                    RangeSet.of([covered]),
                    lambda rows: merge_rule(rows, RangeSet.of([covered]), fetched),
                )
        return total


async def _copy(conn: Any, table: str, series: list[SeriesWrite]) -> None:
    """One binary COPY of every group's rows into ``table``."""
    body = b"".join(pgcopy.encode_rows(s.ticker, s.timeframe, s.batch) for s in series)
    await _copy_body(conn, table, body)


async def _copy_body(conn: Any, table: str, body: bytes) -> None:
    await conn.copy_to_table(
        table,
        source=io.BytesIO(pgcopy.HEADER + body + pgcopy.TRAILER),
        columns=list(pgcopy.WRITE_COLUMNS),
        format="binary",
    )


async def _copy_out(conn: Any, sql: str, *args: Any) -> bytearray:
    buf = bytearray()

    async def sink(chunk: bytes) -> None:
        buf.extend(chunk)

    await conn.copy_from_query(sql, *args, output=sink, format="binary")
    return buf


async def _apply_ledger(
    conn: Any, ticker: str, dataset: Dataset, timeframe: str, ranges: RangeSet, rule: Any
) -> None:
    """Read the ledger rows near ``ranges``, apply ``rule``, write the change (caller's transaction)."""
    box = hull(ranges)
    if box is None:
        return
    rows = await conn.fetch(
        "SELECT start_ms, end_ms, fetched_at_ms FROM coverage WHERE ticker = $1 AND dataset = $2"
        " AND timeframe = $3 AND start_ms <= $4 AND end_ms >= $5",
        ticker,
        dataset.value,
        timeframe,
        box.end_ms,
        box.start_ms,
    )
    change: LedgerChange = rule([LedgerRow(r[0], r[1], r[2]) for r in rows])
    if change.delete_starts:
        await conn.execute(
            "DELETE FROM coverage WHERE ticker = $1 AND dataset = $2 AND timeframe = $3"
            " AND start_ms = ANY($4::bigint[])",
            ticker,
            dataset.value,
            timeframe,
            list(change.delete_starts),
        )
    if change.insert:
        await conn.executemany(
            "INSERT INTO coverage (ticker, dataset, timeframe, start_ms, end_ms, fetched_at_ms)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            [
                (ticker, dataset.value, timeframe, r.start_ms, r.end_ms, r.fetched_at_ms)
                for r in change.insert
            ],
        )


def _safe(url: str) -> str:
    """The URL without a password, for messages."""
    head, sep, tail = url.partition("://")
    if "@" in tail:
        cred, _, host = tail.rpartition("@")
        return f"{head}{sep}{cred.split(':', 1)[0]}@{host}"
    return url
