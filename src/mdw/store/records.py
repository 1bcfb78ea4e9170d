"""The small record stores (symbols, runs, API keys, audit log, quarantine), written once.

Each is a handful of statements over the backend's :class:`~mdw.store.primitives.Database`, in
the shared ``?`` SQL; what a row holds and how it becomes a record is in :mod:`mdw.store.rows`.
Writes of more than one statement use the database's transaction, never a hand-rolled BEGIN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Generic

from mdw.clock import now_ms
from mdw.store.base import ApiKeyRecord, AuditEntry, QuarantinedBar, RunRecord, SymbolInfo
from mdw.store.market_days import punch_all
from mdw.store.primitives import BarTable, Database, Tx, TxT, placeholders
from mdw.store.rows import (
    API_KEY_COLUMNS,
    AUDIT_COLUMNS,
    QUARANTINE_COLUMNS,
    RUN_COLUMNS,
    SYMBOL_COLUMNS,
    audit_from_row,
    dump_json,
    key_from_row,
    key_values,
    quarantine_values,
    quarantined_from_row,
    run_from_row,
    run_values,
    symbol_from_row,
)


def _cols(columns: tuple[str, ...]) -> str:
    return ", ".join(columns)


def _upsert(table: str, columns: tuple[str, ...], key: str) -> str:
    """An insert that overwrites every other column of the row with the same ``key``."""
    rest = [c for c in columns if c != key]
    return (
        f"INSERT INTO {table} ({_cols(columns)}) VALUES ({placeholders(len(columns))})"
        f" ON CONFLICT ({key}) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in rest)}"
    )


# Tables that hold a ticker's data, emptied (with its bars) when a symbol is purged; symbols last.
_PURGED = ("dividends", "splits", "coverage", "quarantine", "symbols")


class SqlSymbols(Generic[TxT]):
    """:class:`~mdw.store.base.SymbolStore` over a database (and the bar table, for purges)."""

    _UPSERT = _upsert("symbols", SYMBOL_COLUMNS, "ticker")
    _SELECT = f"SELECT {_cols(SYMBOL_COLUMNS)} FROM symbols"

    def __init__(self, db: Database[TxT], bars: BarTable[TxT]) -> None:
        self._db = db
        self._bars = bars

    async def upsert(self, info: SymbolInfo) -> None:
        d = self._db.dialect
        start = date.fromisoformat(info.start_date) if info.start_date else None
        await self._db.execute("upsert_symbol", self._UPSERT, info.ticker, str(info.asset_class), info.name,
                               info.active, d.text_list(info.timeframes), d.date(start))

    async def get(self, ticker: str) -> SymbolInfo | None:
        rows = await self._db.fetch("symbol", self._SELECT + " WHERE ticker = ?", ticker)
        return symbol_from_row(rows[0]) if rows else None

    async def all(self, *, active_only: bool = False) -> list[SymbolInfo]:
        where = " WHERE active" if active_only else ""
        rows = await self._db.fetch("symbols", self._SELECT + where + " ORDER BY ticker")
        return [symbol_from_row(r) for r in rows]

    async def delete(self, ticker: str, *, purge: bool = False) -> bool:
        async with self._db.transaction("delete_symbol") as tx:
            found = await tx.execute("UPDATE symbols SET active = ? WHERE ticker = ?", False, ticker) > 0
            if purge:
                found = await self._bars.delete(tx, ticker, None, None) > 0 or found
                await punch_all(tx, ticker)  # its share of whole-market days goes with its bars
                for table in _PURGED:
                    found = await tx.execute(f"DELETE FROM {table} WHERE ticker = ?", ticker) > 0 or found
        return found


class SqlRuns:
    """:class:`~mdw.store.base.RunStore` over a database."""

    _UPSERT = _upsert("runs", RUN_COLUMNS, "id")
    _SELECT = f"SELECT {_cols(RUN_COLUMNS)} FROM runs"

    def __init__(self, db: Database[Tx]) -> None:
        self._db = db

    async def save(self, run: RunRecord) -> None:
        await self._db.execute("save_run", self._UPSERT, *run_values(run))

    async def get(self, run_id: str) -> RunRecord | None:
        rows = await self._db.fetch("get_run", self._SELECT + " WHERE id = ?", run_id)
        return run_from_row(rows[0]) if rows else None

    async def recent(self, limit: int = 50) -> list[RunRecord]:
        rows = await self._db.fetch(
            "runs", self._SELECT + " ORDER BY started_at_ms DESC, id DESC LIMIT ?", int(limit)
        )
        return [run_from_row(r) for r in rows]


class SqlKeys:
    """:class:`~mdw.store.base.KeyStore` over a database."""

    _SELECT = f"SELECT {_cols(API_KEY_COLUMNS)} FROM api_keys"

    def __init__(self, db: Database[Tx]) -> None:
        self._db = db

    async def add(self, key: ApiKeyRecord) -> None:
        sql = f"INSERT INTO api_keys ({_cols(API_KEY_COLUMNS)}) VALUES ({placeholders(len(API_KEY_COLUMNS))})"
        await self._db.execute("add_api_key", sql, *key_values(key))

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        rows = await self._db.fetch("api_key", self._SELECT + " WHERE id = ?", key_id)
        return key_from_row(rows[0]) if rows else None

    async def all(self) -> list[ApiKeyRecord]:
        rows = await self._db.fetch("api_keys", self._SELECT + " ORDER BY created_at_ms, id")
        return [key_from_row(r) for r in rows]

    async def revoke(self, key_id: str) -> bool:
        changed = await self._db.execute(
            "revoke_api_key", "UPDATE api_keys SET revoked_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL",
            now_ms(), key_id,
        )
        return changed > 0


class SqlAudit:
    """:class:`~mdw.store.base.AuditLog` over a database."""

    def __init__(self, db: Database[Tx]) -> None:
        self._db = db

    async def append(self, actor: str, action: str, detail: Mapping[str, object]) -> None:
        await self._db.execute(
            "audit", "INSERT INTO audit_log (at_ms, actor, action, detail) VALUES (?, ?, ?, ?)",
            now_ms(), actor, action, dump_json(detail),
        )

    async def recent(self, limit: int = 100) -> list[AuditEntry]:
        rows = await self._db.fetch(
            "audit_log", f"SELECT {_cols(AUDIT_COLUMNS)} FROM audit_log ORDER BY id DESC LIMIT ?", int(limit)
        )
        return [audit_from_row(r) for r in rows]


class SqlQuarantine:
    """:class:`~mdw.store.base.QuarantineStore` over a database."""

    _INSERT = (
        f"INSERT INTO quarantine ({_cols(QUARANTINE_COLUMNS)})"
        f" VALUES ({placeholders(len(QUARANTINE_COLUMNS))})"
    )

    def __init__(self, db: Database[Tx]) -> None:
        self._db = db

    async def add(self, entries: Sequence[QuarantinedBar]) -> int:
        rows = [quarantine_values(e) for e in entries]
        if rows:
            async with self._db.transaction("quarantine") as tx:
                await tx.executemany(self._INSERT, rows)
        return len(rows)

    async def recent(self, ticker: str | None = None, limit: int = 1000) -> list[QuarantinedBar]:
        where, args = (" WHERE ticker = ?", (ticker,)) if ticker is not None else ("", ())
        rows = await self._db.fetch(
            "quarantined",
            f"SELECT {_cols(QUARANTINE_COLUMNS)} FROM quarantine{where}"
            " ORDER BY quarantined_at_ms DESC, ticker, timeframe, t, id LIMIT ?",
            *args, int(limit),
        )
        return [quarantined_from_row(r) for r in rows]
