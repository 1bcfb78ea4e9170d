"""SQLite: the small tables (symbols, corporate actions, runs, API keys, audit) and summaries.

A mixin of :class:`mdw.store.sqlite.SqliteStore`, split out so each module keeps one job.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, TypeVar

from mdw.domain import Dividend, Split
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
    RUN_COLUMNS,
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

T = TypeVar("T")
_RUN_COLS = ", ".join(RUN_COLUMNS)
_QUARANTINE_INSERT = (
    f"INSERT INTO quarantine ({', '.join(QUARANTINE_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(QUARANTINE_COLUMNS))})"
)


def _upsert_sql(table: str, cols: tuple[str, ...]) -> str:
    rest = cols[1:]
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        f" ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in rest)}"
        f" WHERE ({', '.join(rest)}) IS NOT ({', '.join('excluded.' + c for c in rest)})"
    )


def _sqlite_values(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Dates as ISO text, the way SQLite stores them."""
    return tuple(v.isoformat() if isinstance(v, date) else v for v in values)


class SqliteRecords(ABC):
    """Everything but bars and the ledger, on top of the backend's ``_read``/``_write``."""

    @abstractmethod
    async def _read(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    @abstractmethod
    async def _write(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    # -- corporate actions ----------------------------------------------------------------------

    @staticmethod
    def _upsert_actions(
        conn: sqlite3.Connection, dataset: Dataset, items: Sequence[Dividend] | Sequence[Split]
    ) -> WriteResult:
        """Upsert by vendor id; counts new, corrected and unchanged rows (inside the caller's txn)."""
        if not items:
            return WriteResult()
        cols: tuple[str, ...]
        if dataset is Dataset.DIVIDENDS:
            table, cols = "dividends", DIVIDEND_COLUMNS
            rows = [_sqlite_values(action_values(d)) for d in items if isinstance(d, Dividend)]
        else:
            table, cols = "splits", SPLIT_COLUMNS
            rows = [_sqlite_values(action_values(s)) for s in items if isinstance(s, Split)]
        ids = sorted({r[0] for r in rows})
        if len(ids) != len(rows):
            rows = list({r[0]: r for r in rows}.values())  # the last of repeated ids wins
        known = 0
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            known += conn.execute(
                f"SELECT count(*) FROM {table} WHERE id IN ({','.join('?' * len(part))})", part
            ).fetchone()[0]
        changed = conn.executemany(_upsert_sql(table, cols), rows).rowcount
        inserted = len(rows) - known
        return WriteResult(inserted=inserted, updated=changed - inserted, unchanged=len(rows) - changed)

    async def dividends(self, ticker: str) -> list[Dividend]:
        rows = await self._read(
            "dividends",
            lambda c: c.execute(
                f"SELECT {', '.join(DIVIDEND_COLUMNS)} FROM dividends WHERE ticker = ?"
                " ORDER BY ex_dividend_date, id",
                (ticker,),
            ).fetchall(),
        )
        return [dividend_from_row(r) for r in rows]

    async def splits(self, ticker: str) -> list[Split]:
        rows = await self._read(
            "splits",
            lambda c: c.execute(
                f"SELECT {', '.join(SPLIT_COLUMNS)} FROM splits WHERE ticker = ?"
                " ORDER BY execution_date, id",
                (ticker,),
            ).fetchall(),
        )
        return [split_from_row(r) for r in rows]

    # -- symbols --------------------------------------------------------------------------------

    async def upsert_symbol(self, info: SymbolInfo) -> None:
        await self._write(
            "upsert_symbol",
            lambda c: c.execute(
                "INSERT INTO symbols (ticker, asset_class, name, active, timeframes, start_date)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ticker) DO UPDATE SET"
                " asset_class = excluded.asset_class,"
                " name = excluded.name, active = excluded.active, timeframes = excluded.timeframes,"
                " start_date = excluded.start_date",
                (
                    info.ticker,
                    str(info.asset_class),
                    info.name,
                    int(info.active),
                    ",".join(info.timeframes),
                    info.start_date,
                ),
            ),
        )

    async def symbols(self, *, active_only: bool = False) -> list[SymbolInfo]:
        where = " WHERE active = 1" if active_only else ""
        rows = await self._read(
            "symbols",
            lambda c: c.execute(
                "SELECT ticker, asset_class, name, active, timeframes, start_date FROM symbols"
                + where
                + " ORDER BY ticker"
            ).fetchall(),
        )
        return [
            SymbolInfo(r[0], r[1], r[2], bool(r[3]), tuple(x for x in r[4].split(",") if x), r[5])
            for r in rows
        ]

    async def delete_symbol(self, ticker: str, *, purge: bool = False) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            try:
                found = conn.execute("UPDATE symbols SET active = 0 WHERE ticker = ?", (ticker,)).rowcount > 0
                if purge:
                    for table in ("bars", "dividends", "splits", "coverage", "quarantine", "symbols"):
                        found = (
                            conn.execute(f"DELETE FROM {table} WHERE ticker = ?", (ticker,)).rowcount > 0
                            or found
                        )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return found

        return await self._write("delete_symbol", work)

    # -- runs -----------------------------------------------------------------------------------

    async def save_run(self, run: RunRecord) -> None:
        await self._write(
            "save_run",
            lambda c: c.execute(
                "INSERT INTO runs (id, kind, status, started_at_ms, finished_at_ms, params, report)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET kind = excluded.kind,"
                " status = excluded.status, started_at_ms = excluded.started_at_ms,"
                " finished_at_ms = excluded.finished_at_ms, params = excluded.params,"
                " report = excluded.report",
                run_values(run),
            ),
        )

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._read(
            "get_run",
            lambda c: c.execute(
                f"SELECT {_RUN_COLS} FROM runs WHERE id = ?",
                (run_id,),
            ).fetchall(),
        )
        return run_from_row(rows[0]) if rows else None

    async def runs(self, limit: int = 50) -> list[RunRecord]:
        rows = await self._read(
            "runs",
            lambda c: c.execute(
                f"SELECT {_RUN_COLS} FROM runs ORDER BY started_at_ms DESC, id DESC LIMIT ?",
                (int(limit),),
            ).fetchall(),
        )
        return [run_from_row(r) for r in rows]

    # -- API keys and audit ---------------------------------------------------------------------

    async def add_api_key(self, key: ApiKeyRecord) -> None:
        await self._write(
            "add_api_key",
            lambda c: c.execute(
                f"INSERT INTO api_keys ({', '.join(API_KEY_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                tuple(getattr(key, c) for c in API_KEY_COLUMNS),
            ),
        )

    async def api_keys(self) -> list[ApiKeyRecord]:
        rows = await self._read(
            "api_keys",
            lambda c: c.execute(
                f"SELECT {', '.join(API_KEY_COLUMNS)} FROM api_keys ORDER BY created_at_ms, id"
            ).fetchall(),
        )
        return [ApiKeyRecord(*r) for r in rows]

    async def revoke_api_key(self, key_id: str) -> bool:
        return await self._write(
            "revoke_api_key",
            lambda c: (
                c.execute(
                    "UPDATE api_keys SET revoked_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL",
                    (now_ms(), key_id),
                ).rowcount
                > 0
            ),
        )

    async def audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        await self._write(
            "audit",
            lambda c: c.execute(
                "INSERT INTO audit_log (at_ms, actor, action, detail) VALUES (?, ?, ?, ?)",
                (now_ms(), actor, action, dump_json(detail)),
            ),
        )

    async def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self._read(
            "audit_log",
            lambda c: c.execute(
                "SELECT id, at_ms, actor, action, detail FROM audit_log ORDER BY id DESC LIMIT ?",
                (int(limit),),
            ).fetchall(),
        )
        return [audit_entry(r) for r in rows]

    # -- quarantine -----------------------------------------------------------------------------

    async def quarantine(self, entries: Sequence[QuarantinedBar]) -> int:
        rows = [quarantine_values(e) for e in entries]
        if not rows:
            return 0

        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_QUARANTINE_INSERT, rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return len(rows)

        return await self._write("quarantine", work)

    async def quarantined(self, ticker: str | None = None, limit: int = 1000) -> list[QuarantinedBar]:
        where, args = (" WHERE ticker = ?", (ticker,)) if ticker is not None else ("", ())
        rows = await self._read(
            "quarantined",
            lambda c: c.execute(
                f"SELECT {', '.join(QUARANTINE_COLUMNS)} FROM quarantine{where}"
                " ORDER BY quarantined_at_ms DESC, ticker, timeframe, t, id LIMIT ?",
                (*args, int(limit)),
            ).fetchall(),
        )
        return [quarantined_from_row(r) for r in rows]

    # -- summaries ------------------------------------------------------------------------------

    async def series_stats(self) -> list[SeriesStats]:
        rows = await self._read(
            "series_stats",
            lambda c: c.execute(
                "SELECT ticker, timeframe, count(*), min(t), max(t) FROM bars GROUP BY ticker, timeframe"
                " ORDER BY ticker, timeframe"
            ).fetchall(),
        )
        return [SeriesStats(*r) for r in rows]

    async def coverage_entries(self, ticker: str | None = None) -> list[CoverageEntry]:
        where, args = (" WHERE ticker = ?", (ticker,)) if ticker is not None else ("", ())
        rows = await self._read(
            "coverage_entries",
            lambda c: c.execute(
                "SELECT ticker, dataset, timeframe, start_ms, end_ms, fetched_at_ms FROM coverage"
                + where
                + " ORDER BY ticker, dataset, timeframe, start_ms",
                args,
            ).fetchall(),
        )
        return [CoverageEntry(r[0], Dataset(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

