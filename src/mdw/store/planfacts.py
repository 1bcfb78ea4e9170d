"""What mdw learned about the key's plan, and which windows the settle pass has re-fetched.

A plan refusal teaches mdw the key's history depth; it is kept per plan setting (the spec in force
when it was learned), so the next run plans within it without asking again, and changing the
setting starts afresh. Settled windows are recorded so each window is re-fetched once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic

from mdw.domain import RangeSet, TimeRange
from mdw.store.base import PlanFact
from mdw.store.primitives import Database, TxT, placeholders
from mdw.store.rows import as_int, as_str

_FACT_COLUMNS = ("plan", "fact", "value", "message", "request_id", "learned_at_ms")
_FACT_UPSERT = (
    f"INSERT INTO plan_facts ({', '.join(_FACT_COLUMNS)}) VALUES ({placeholders(len(_FACT_COLUMNS))})"
    " ON CONFLICT (plan, fact) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _FACT_COLUMNS[2:])
)
_FACT_SELECT = f"SELECT {', '.join(_FACT_COLUMNS)} FROM plan_facts WHERE plan = ? ORDER BY fact"
_SETTLED_UPSERT = (
    "INSERT INTO settled_windows (ticker, timeframe, start_ms, end_ms, settled_at_ms, bars_updated)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ticker, timeframe, start_ms) DO UPDATE SET"
    " end_ms = excluded.end_ms, settled_at_ms = excluded.settled_at_ms,"
    " bars_updated = excluded.bars_updated"
)
_SETTLED_SELECT = ("SELECT start_ms, end_ms FROM settled_windows WHERE ticker = ? AND timeframe = ?"
                   " AND start_ms < ? AND end_ms > ? ORDER BY start_ms")


class SqlPlanFacts(Generic[TxT]):
    """:class:`~mdw.store.base.PlanFactStore` over a database."""

    def __init__(self, db: Database[TxT]) -> None:
        self._db = db

    async def learned(self, plan: str) -> dict[str, PlanFact]:
        rows = await self._db.fetch("plan_facts", _FACT_SELECT, plan)
        facts = [PlanFact(as_str(r[0]), as_str(r[1]), as_str(r[2]), as_str(r[3]), as_str(r[4]), as_int(r[5]))
                 for r in rows]
        return {f.fact: f for f in facts}

    async def learn(self, fact: PlanFact) -> None:
        await self._db.execute("learn_plan_fact", _FACT_UPSERT, fact.plan, fact.fact, fact.value,
                               fact.message, fact.request_id, int(fact.learned_at_ms))

    async def settled(self, ticker: str, timeframe: str, rng: TimeRange) -> RangeSet:
        rows = await self._db.fetch("settled_windows", _SETTLED_SELECT, ticker, timeframe, int(rng.end_ms),
                                    int(rng.start_ms))
        return RangeSet.of(TimeRange(as_int(r[0]), as_int(r[1])) for r in rows)

    async def mark_settled(self, ticker: str, timeframe: str, windows: Sequence[TimeRange], at_ms: int,
                           bars_updated: int) -> None:
        async with self._db.transaction("mark_settled") as tx:
            for w in windows:
                await tx.execute(_SETTLED_UPSERT, ticker, timeframe, int(w.start_ms), int(w.end_ms),
                                 int(at_ms), int(bars_updated))
