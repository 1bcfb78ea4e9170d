"""Record <-> row mapping shared by both backends: column orders and value conversions, written once.

The SQL around these rows stays per dialect (parameter style, upsert guards, JSON casts); what a row
holds, in which order, and how it becomes a record again is the same for SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import math
from datetime import date
from typing import Any

from mdw.domain import Dividend, Split
from mdw.errors import UsageError
from mdw.store.base import QuarantinedBar, RunRecord

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
RUN_COLUMNS = ("id", "kind", "status", "started_at_ms", "finished_at_ms", "params", "report")
API_KEY_COLUMNS = ("id", "scope", "salt", "hash", "created_at_ms", "name", "revoked_at_ms")
QUARANTINE_COLUMNS = (
    "ticker", "timeframe", "t", "o", "h", "l", "c", "v", "vw", "n", "reason", "run_id", "url",
    "quarantined_at_ms",
)
_QUARANTINE_FLOATS = frozenset({3, 4, 5, 6, 7, 8})  # o h l c v vw: NULL -> NaN on read


def action_values(item: Dividend | Split) -> tuple[Any, ...]:
    """A dividend's or split's values in :data:`DIVIDEND_COLUMNS`/:data:`SPLIT_COLUMNS` order."""
    cols = DIVIDEND_COLUMNS if isinstance(item, Dividend) else SPLIT_COLUMNS
    return tuple(getattr(item, c) for c in cols)


def dividend_from_row(r: Any) -> Dividend:
    """A dividend from a row in :data:`DIVIDEND_COLUMNS` order (dates as ``date`` or ISO text)."""
    return Dividend(
        id=r[0],
        ticker=r[1],
        ex_dividend_date=to_date(r[2]),
        cash_amount=r[3],
        currency=r[4],
        declaration_date=from_iso(r[5]),
        record_date=from_iso(r[6]),
        pay_date=from_iso(r[7]),
        frequency=r[8],
        dividend_type=r[9],
    )


def split_from_row(r: Any) -> Split:
    """A split from a row in :data:`SPLIT_COLUMNS` order (the date as ``date`` or ISO text)."""
    return Split(id=r[0], ticker=r[1], execution_date=to_date(r[2]), split_from=r[3], split_to=r[4])


def run_values(run: RunRecord) -> tuple[Any, ...]:
    """A run's values in :data:`RUN_COLUMNS` order, params and report as JSON text."""
    return (
        run.id,
        run.kind,
        run.status,
        run.started_at_ms,
        run.finished_at_ms,
        dump_json(run.params),
        dump_json(run.report),
    )


def run_from_row(r: Any) -> RunRecord:
    """A run from a row in :data:`RUN_COLUMNS` order, params and report as JSON text."""
    return RunRecord(
        id=r[0],
        kind=r[1],
        status=r[2],
        started_at_ms=r[3],
        finished_at_ms=r[4],
        params=json.loads(r[5]),
        report=json.loads(r[6]),
    )


def quarantine_values(entry: QuarantinedBar) -> tuple[Any, ...]:
    """An entry's values in :data:`QUARANTINE_COLUMNS` order, NaN as None (NULL in both backends)."""
    values = tuple(getattr(entry, c) for c in QUARANTINE_COLUMNS)
    return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in values)


def quarantined_from_row(r: Any) -> QuarantinedBar:
    """An entry from a row in :data:`QUARANTINE_COLUMNS` order (NULL prices or volumes become NaN)."""
    values: list[Any] = [math.nan if i in _QUARANTINE_FLOATS and x is None else x for i, x in enumerate(r)]
    return QuarantinedBar(*values)


def audit_entry(r: Any) -> dict[str, Any]:
    """An audit-log entry from a row (id, at_ms, actor, action, detail as JSON text)."""
    return {"id": r[0], "at_ms": r[1], "actor": r[2], "action": r[3], "detail": json.loads(r[4])}


def dump_json(value: dict[str, Any]) -> str:
    """JSON text of a run's params/report or an audit detail (dates as ISO strings)."""
    return json.dumps(value, default=_default, separators=(",", ":"), sort_keys=True)


def _default(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise UsageError(f"cannot store a {type(value).__name__} as JSON")


def to_date(value: str | date) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def from_iso(value: str | date | None) -> date | None:
    return None if value is None else to_date(value)
