"""Record <-> row mapping, written once: column orders, value conversions and type checks.

Drivers hand back untyped values (and SQLite keeps dates and text lists as text, where
PostgreSQL has ``DATE`` and ``TEXT[]``). Every value read is checked here on its way into a
record, so a row of the wrong shape is a :class:`StoreError`, never a wrong record.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import Any, TypeVar

from mdw.domain import MISSING_N, Dividend, Split
from mdw.errors import StoreError, UsageError
from mdw.store.base import (
    ApiKeyRecord,
    AuditEntry,
    QuarantinedBar,
    RunKind,
    RunRecord,
    RunStatus,
    SymbolInfo,
)

DIVIDEND_COLUMNS = (
    "id",
    "ticker",
    "ex_dividend_date",
    "cash_amount",
    "currency",
    "declaration_date",
    "record_date",
    "pay_date",
    "frequency",
    "dividend_type",
)
SPLIT_COLUMNS = ("id", "ticker", "execution_date", "split_from", "split_to")
SYMBOL_COLUMNS = ("ticker", "asset_class", "name", "active", "timeframes", "start_date")
RUN_COLUMNS = ("id", "kind", "status", "started_at_ms", "finished_at_ms", "params", "report")
API_KEY_COLUMNS = ("id", "scope", "salt", "hash", "created_at_ms", "name", "revoked_at_ms")
AUDIT_COLUMNS = ("id", "at_ms", "actor", "action", "detail")
E = TypeVar("E", bound=StrEnum)
QUARANTINE_COLUMNS = (
    "ticker", "timeframe", "t", "o", "h", "l", "c", "v", "vw", "n", "reason", "run_id", "url",
    "quarantined_at_ms",
)


# -- checked values -------------------------------------------------------------------------


def _wrong(value: object, want: str) -> StoreError:
    return StoreError(f"the database returned {type(value).__name__} {value!r} where {want} belongs")


def as_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _wrong(value, "an integer")


def as_opt_int(value: object) -> int | None:
    return None if value is None else as_int(value)


def as_float(value: object) -> float:
    """A float; NULL (a missing price or volume) is NaN."""
    if value is None:
        return math.nan
    if isinstance(value, float | int) and not isinstance(value, bool):
        return float(value)
    raise _wrong(value, "a number")


def as_str(value: object) -> str:
    if isinstance(value, str):
        return value
    raise _wrong(value, "text")


def as_bool(value: object) -> bool:
    if isinstance(value, bool | int):
        return bool(value)
    raise _wrong(value, "a boolean")


def as_date(value: object) -> date:
    """A ``date`` from PostgreSQL or ISO text from SQLite."""
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value)
    raise _wrong(value, "a date")


def as_enum(kind: type[E], value: object) -> E:
    """A member of a string enum from its stored value."""
    try:
        return kind(as_str(value))
    except ValueError:
        raise _wrong(value, f"a {kind.__name__}") from None


def as_opt_date(value: object) -> date | None:
    return None if value is None else as_date(value)


def as_json(value: object) -> dict[str, Any]:
    """A JSON object stored as text (SQLite) or ``jsonb`` (PostgreSQL, read as text)."""
    loaded = json.loads(as_str(value))
    if not isinstance(loaded, dict):
        raise _wrong(loaded, "a JSON object")
    return loaded


def as_text_list(value: object) -> tuple[str, ...]:
    """A ``TEXT[]`` from PostgreSQL, or the comma-joined text SQLite keeps instead."""
    if isinstance(value, str):
        return tuple(x for x in value.split(",") if x)
    if isinstance(value, list | tuple):
        return tuple(as_str(x) for x in value)
    raise _wrong(value, "a list of text")


def dump_json(value: Mapping[str, object]) -> str:
    """JSON text of a run's params/report or an audit detail (dates as ISO strings)."""
    return json.dumps(value, default=_default, separators=(",", ":"), sort_keys=True)


def _default(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise UsageError(f"cannot store a {type(value).__name__} as JSON")


# -- records --------------------------------------------------------------------------------


def dividend_from_row(r: tuple[object, ...]) -> Dividend:
    """A dividend from a row in :data:`DIVIDEND_COLUMNS` order."""
    return Dividend(
        id=as_str(r[0]),
        ticker=as_str(r[1]),
        ex_dividend_date=as_date(r[2]),
        cash_amount=as_float(r[3]),
        currency=as_str(r[4]),
        declaration_date=as_opt_date(r[5]),
        record_date=as_opt_date(r[6]),
        pay_date=as_opt_date(r[7]),
        frequency=as_int(r[8]),
        dividend_type=as_str(r[9]),
    )


def split_from_row(r: tuple[object, ...]) -> Split:
    """A split from a row in :data:`SPLIT_COLUMNS` order."""
    return Split(id=as_str(r[0]), ticker=as_str(r[1]), execution_date=as_date(r[2]),
                 split_from=as_float(r[3]), split_to=as_float(r[4]))


def symbol_from_row(r: tuple[object, ...]) -> SymbolInfo:
    """A symbol from a row in :data:`SYMBOL_COLUMNS` order."""
    start = as_opt_date(r[5])
    return SymbolInfo(as_str(r[0]), as_str(r[1]), as_str(r[2]), as_bool(r[3]), as_text_list(r[4]),
                      start.isoformat() if start else None)


def run_values(run: RunRecord) -> tuple[str, str, str, int, int | None, str, str]:
    """A run's values in :data:`RUN_COLUMNS` order, params and report as JSON text."""
    return (run.id, run.kind.value, run.status.value, run.started_at_ms, run.finished_at_ms,
            dump_json(run.params), dump_json(run.report))


def run_from_row(r: tuple[object, ...]) -> RunRecord:
    """A run from a row in :data:`RUN_COLUMNS` order, params and report as JSON text."""
    return RunRecord(id=as_str(r[0]), kind=as_enum(RunKind, r[1]), status=as_enum(RunStatus, r[2]),
                     started_at_ms=as_int(r[3]), finished_at_ms=as_opt_int(r[4]),
                     params=as_json(r[5]), report=as_json(r[6]))


def key_values(key: ApiKeyRecord) -> tuple[str, str, str, str, int, str, int | None]:
    """A key's values in :data:`API_KEY_COLUMNS` order."""
    return key.id, key.scope, key.salt, key.hash, key.created_at_ms, key.name, key.revoked_at_ms


def key_from_row(r: tuple[object, ...]) -> ApiKeyRecord:
    """A key from a row in :data:`API_KEY_COLUMNS` order."""
    return ApiKeyRecord(as_str(r[0]), as_str(r[1]), as_str(r[2]), as_str(r[3]), as_int(r[4]),
                        as_str(r[5]), as_opt_int(r[6]))


def audit_from_row(r: tuple[object, ...]) -> AuditEntry:
    """An audit-log entry from a row in :data:`AUDIT_COLUMNS` order (detail as JSON text)."""
    return AuditEntry(id=as_int(r[0]), at_ms=as_int(r[1]), actor=as_str(r[2]), action=as_str(r[3]),
                      detail=as_json(r[4]))


def quarantine_values(entry: QuarantinedBar) -> tuple[str | int | float | None, ...]:
    """An entry's values in :data:`QUARANTINE_COLUMNS` order, NaN as None (NULL in both backends)."""
    values: tuple[str | int | float, ...] = tuple(getattr(entry, c) for c in QUARANTINE_COLUMNS)
    out = tuple(None if isinstance(v, float) and math.isnan(v) else v for v in values)
    return (*out[:9], None if entry.n < 0 else entry.n, *out[10:])  # n missing (MISSING_N): NULL


def quarantined_from_row(r: tuple[object, ...]) -> QuarantinedBar:
    """An entry from a row in :data:`QUARANTINE_COLUMNS` order (NULL prices or volumes become NaN)."""
    return QuarantinedBar(
        ticker=as_str(r[0]), timeframe=as_str(r[1]), t=as_int(r[2]), o=as_float(r[3]), h=as_float(r[4]),
        l=as_float(r[5]), c=as_float(r[6]), v=as_float(r[7]), vw=as_float(r[8]),
        n=MISSING_N if r[9] is None else as_int(r[9]),
        reason=as_str(r[10]), run_id=as_str(r[11]), url=as_str(r[12]), quarantined_at_ms=as_int(r[13]),
    )
