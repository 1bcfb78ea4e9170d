"""PostgreSQL: the small tables (symbols, corporate actions, runs, API keys, audit) and summaries.

A mixin of :class:`mdw.store.postgres.PostgresStore`, split out so each module keeps one job.
Also home of :func:`pg_errors`, the one place driver errors become :class:`StoreError`.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from datetime import date
from typing import Any

import asyncpg

from mdw.domain import Dividend, Split
from mdw.errors import StoreError
from mdw.store.base import (
    ApiKeyRecord,
    CoverageEntry,
    Dataset,
    QuarantinedBar,
    RunRecord,
    SeriesStats,
    SymbolInfo,
    WriteResult,
)
from mdw.store.ledger import now_ms
from mdw.store.rows import (
    API_KEY_COLUMNS,
    DIVIDEND_COLUMNS,
    QUARANTINE_COLUMNS,
    SPLIT_COLUMNS,
    action_values,
    audit_entry,
    dividend_from_row,
    dump_json,
    quarantine_values,
    quarantined_from_row,
    run_from_row,
    run_values,
    split_from_row,
)

_RUN_COLS = "id, kind, status, started_at_ms, finished_at_ms, params::text, report::text"
_QUARANTINE_INSERT = (
    f"INSERT INTO quarantine ({', '.join(QUARANTINE_COLUMNS)})"
    f" VALUES ({', '.join(f'${i}' for i in range(1, len(QUARANTINE_COLUMNS) + 1))})"
)


@contextlib.asynccontextmanager
async def pg_errors(what: str) -> AsyncIterator[None]:
    """Map driver and connection errors at this boundary to :class:`StoreError`, chained with ``from``."""
    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreError(f"postgres {what} failed: {type(exc).__name__}: {exc}") from exc
    except (OSError, TimeoutError) as exc:
        raise StoreError(f"postgres {what} failed: cannot reach the server: {exc}") from exc


def _upsert_sql(table: str, cols: tuple[str, ...], casts: dict[str, str]) -> str:
    rest = cols[1:]
    params = ", ".join(f"${i}{casts.get(c, '')}" for i, c in enumerate(cols, 1))
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({params})"
        f" ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in rest)}"
        f" WHERE ({', '.join(f'{table}.{c}' for c in rest)}) IS DISTINCT FROM"
        f" ({', '.join('EXCLUDED.' + c for c in rest)})"
        " RETURNING (xmax = 0)"
    )


class PostgresRecords(ABC):
    """Everything but bars and the ledger, on top of the backend's ``_acquire``."""

    @abstractmethod
    def _acquire(self, what: str) -> contextlib.AbstractAsyncContextManager[Any]: ...

    # -- corporate actions ----------------------------------------------------------------------

    @staticmethod
    async def _upsert_actions(
        conn: Any, dataset: Dataset, items: Sequence[Dividend] | Sequence[Split]
    ) -> WriteResult:
        """Upsert by vendor id, inside the caller's transaction; counts new/corrected/unchanged."""
        rows: dict[str, tuple[Any, ...]] = {}
        for item in items:  # the last of repeated ids wins
            rows[item.id] = action_values(item)
        sql = (
            _upsert_sql("dividends", DIVIDEND_COLUMNS, {})
            if dataset is Dataset.DIVIDENDS
            else _upsert_sql("splits", SPLIT_COLUMNS, {})
        )
        stmt = await conn.prepare(sql)
        inserted = updated = 0
        for row in rows.values():
            fresh = await stmt.fetchval(*row)
            if fresh is True:
                inserted += 1
            elif fresh is False:
                updated += 1
        return WriteResult(inserted=inserted, updated=updated, unchanged=len(rows) - inserted - updated)

    async def dividends(self, ticker: str) -> list[Dividend]:
        async with self._acquire("dividends") as conn:
            rows = await conn.fetch(
                f"SELECT {', '.join(DIVIDEND_COLUMNS)} FROM dividends WHERE ticker = $1"
                " ORDER BY ex_dividend_date, id",
                ticker,
            )
        return [dividend_from_row(r) for r in rows]

    async def splits(self, ticker: str) -> list[Split]:
        async with self._acquire("splits") as conn:
            rows = await conn.fetch(
                f"SELECT {', '.join(SPLIT_COLUMNS)} FROM splits WHERE ticker = $1"
                " ORDER BY execution_date, id",
                ticker,
            )
        return [split_from_row(r) for r in rows]

    # -- symbols --------------------------------------------------------------------------------

    async def upsert_symbol(self, info: SymbolInfo) -> None:
        start = date.fromisoformat(info.start_date) if info.start_date else None
        async with self._acquire("upsert_symbol") as conn:
            await conn.execute(
                "INSERT INTO symbols (ticker, asset_class, name, active, timeframes, start_date)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ticker) DO UPDATE SET"
                " asset_class = EXCLUDED.asset_class, name = EXCLUDED.name, active = EXCLUDED.active,"
                " timeframes = EXCLUDED.timeframes, start_date = EXCLUDED.start_date",
                info.ticker,
                str(info.asset_class),
                info.name,
                info.active,
                list(info.timeframes),
                start,
            )

    async def symbols(self, *, active_only: bool = False) -> list[SymbolInfo]:
        where = " WHERE active" if active_only else ""
        async with self._acquire("symbols") as conn:
            rows = await conn.fetch(
                "SELECT ticker, asset_class, name, active, timeframes, start_date FROM symbols"
                + where
                + " ORDER BY ticker"
            )
        return [
            SymbolInfo(r[0], r[1], r[2], r[3], tuple(r[4]), r[5].isoformat() if r[5] else None) for r in rows
        ]

    async def delete_symbol(self, ticker: str, *, purge: bool = False) -> bool:
        async with self._acquire("delete_symbol") as conn, conn.transaction():
            status = await conn.execute("UPDATE symbols SET active = FALSE WHERE ticker = $1", ticker)
            found: bool = status != "UPDATE 0"
            if purge:
                for table in ("bars", "dividends", "splits", "coverage", "quarantine", "symbols"):
                    status = await conn.execute(f"DELETE FROM {table} WHERE ticker = $1", ticker)
                    found = found or status != "DELETE 0"
        return found

    # -- runs -----------------------------------------------------------------------------------

    async def save_run(self, run: RunRecord) -> None:
        async with self._acquire("save_run") as conn:
            await conn.execute(
                "INSERT INTO runs (id, kind, status, started_at_ms, finished_at_ms, params, report)"
                " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb) ON CONFLICT (id) DO UPDATE SET"
                " kind = EXCLUDED.kind, status = EXCLUDED.status, started_at_ms = EXCLUDED.started_at_ms,"
                " finished_at_ms = EXCLUDED.finished_at_ms, params = EXCLUDED.params,"
                " report = EXCLUDED.report",
                *run_values(run),
            )

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self._acquire("get_run") as conn:
            row = await conn.fetchrow(f"SELECT {_RUN_COLS} FROM runs WHERE id = $1", run_id)
        return None if row is None else run_from_row(row)

    async def runs(self, limit: int = 50) -> list[RunRecord]:
        async with self._acquire("runs") as conn:
            rows = await conn.fetch(
                f"SELECT {_RUN_COLS} FROM runs ORDER BY started_at_ms DESC, id DESC LIMIT $1", int(limit)
            )
        return [run_from_row(r) for r in rows]

    # -- API keys and audit ---------------------------------------------------------------------

    async def add_api_key(self, key: ApiKeyRecord) -> None:
        async with self._acquire("add_api_key") as conn:
            await conn.execute(
                f"INSERT INTO api_keys ({', '.join(API_KEY_COLUMNS)}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                *(getattr(key, c) for c in API_KEY_COLUMNS),
            )

    async def api_keys(self) -> list[ApiKeyRecord]:
        async with self._acquire("api_keys") as conn:
            rows = await conn.fetch(
                f"SELECT {', '.join(API_KEY_COLUMNS)} FROM api_keys ORDER BY created_at_ms, id"
            )
        return [ApiKeyRecord(*r) for r in rows]

    async def revoke_api_key(self, key_id: str) -> bool:
        async with self._acquire("revoke_api_key") as conn:
            status = await conn.execute(
                "UPDATE api_keys SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
                now_ms(),
                key_id,
            )
        return bool(status != "UPDATE 0")

    async def audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        async with self._acquire("audit") as conn:
            await conn.execute(
                "INSERT INTO audit_log (at_ms, actor, action, detail) VALUES ($1, $2, $3, $4::jsonb)",
                now_ms(),
                actor,
                action,
                dump_json(detail),
            )

    async def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        async with self._acquire("audit_log") as conn:
            rows = await conn.fetch(
                "SELECT id, at_ms, actor, action, detail::text FROM audit_log ORDER BY id DESC LIMIT $1",
                int(limit),
            )
        return [audit_entry(r) for r in rows]

    # -- quarantine -----------------------------------------------------------------------------

    async def quarantine(self, entries: Sequence[QuarantinedBar]) -> int:
        rows = [quarantine_values(e) for e in entries]
        if not rows:
            return 0
        async with self._acquire("quarantine") as conn, conn.transaction():
            await conn.executemany(_QUARANTINE_INSERT, rows)
        return len(rows)

    async def quarantined(self, ticker: str | None = None, limit: int = 1000) -> list[QuarantinedBar]:
        where, args = (" WHERE ticker = $2", [ticker]) if ticker is not None else ("", [])
        async with self._acquire("quarantined") as conn:
            rows = await conn.fetch(
                f"SELECT {', '.join(QUARANTINE_COLUMNS)} FROM quarantine{where}"
                " ORDER BY quarantined_at_ms DESC, ticker, timeframe, t, id LIMIT $1",
                int(limit), *args,
            )
        return [quarantined_from_row(r) for r in rows]

    # -- summaries ------------------------------------------------------------------------------

    async def series_stats(self) -> list[SeriesStats]:
        async with self._acquire("series_stats") as conn:
            rows = await conn.fetch(
                "SELECT ticker, timeframe, count(*), min(t), max(t) FROM bars"
                " GROUP BY ticker, timeframe ORDER BY ticker, timeframe"
            )
        return [SeriesStats(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def coverage_entries(self, ticker: str | None = None) -> list[CoverageEntry]:
        where, args = (" WHERE ticker = $1", [ticker]) if ticker is not None else ("", [])
        async with self._acquire("coverage_entries") as conn:
            rows = await conn.fetch(
                "SELECT ticker, dataset, timeframe, start_ms, end_ms, fetched_at_ms"
                " FROM coverage" + where + " ORDER BY ticker, dataset, timeframe, start_ms",
                *args,
            )
        return [CoverageEntry(r[0], Dataset(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

