"""The shared rate budget's storage: one row per API-key digest, rewritten under a lock.

The limiter's logic (:mod:`mdw.budget`) is the same for every backend; each backend contributes one
primitive, :meth:`BudgetStore.update`: lock the row, read the clock *after* the lock is held (time
read before waiting would be stale by the wait), hand state and time to a pure step function, and
write back what it returns, in one transaction. PostgreSQL reads its own clock (one clock for
every machine); SQLite, which only one host can share, reads the host's wall clock.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from mdw.errors import ConfigError, StoreError

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")
State = dict[str, Any]
Step = Callable[[State, float], tuple[State, T]]


@dataclass(frozen=True, slots=True)
class BudgetPlan:
    """The plan a budget row enforces: ``configured`` requests per ``period_s`` seconds."""

    configured: float
    period_s: float

    def describe(self) -> str:
        return f"{self.configured:g} per {self.period_s:g} s"


class BudgetStore(Protocol):
    """Where processes sharing one API key keep its budget."""

    async def register(self, name: str, plan: BudgetPlan, holder: str, *, idle_s: float) -> Joined:
        """Create the row or join it as ``holder``; a row with another plan is taken over when free.

        See :func:`join`, which both backends run on the locked row.

        Raises:
            ConfigError: a live process uses the key with a different plan.
            StoreError: the database failed or lacks the table.
        """
        ...

    async def update(self, name: str, step: Step[T]) -> T:
        """Run ``step(state, now)`` on the locked row and store the state it returns.

        Raises:
            StoreError: the database failed or the row is missing.
        """
        ...

    async def close(self) -> None: ...


def _mismatch(name: str, held: BudgetPlan, wanted: BudgetPlan) -> ConfigError:
    return ConfigError(
        f"rate limit mismatch on the shared budget {name}: processes using this API key run with "
        f"{held.describe()}, this one with {wanted.describe()}; give every process (workers, serve, "
        "backfills) the same MDW_RATE_LIMIT, or stop the others first")


@dataclass(frozen=True, slots=True)
class Joined:
    """What registering did: ``previous`` is the plan this process replaced (None: none, or the same)."""

    previous: BudgetPlan | None = None


def _plan_of(entry: list[Any]) -> BudgetPlan:
    return BudgetPlan(float(entry[0]), float(entry[1]))


def join(state: State, held: BudgetPlan | None, wanted: BudgetPlan, holder: str, now: float,
         idle_s: float, name: str) -> tuple[State, Joined]:
    """Register ``holder`` on a budget row: the rule behind a plan change.

    ``state["holders"]`` maps each process using the row to ``[configured, period_s, last_seen]``;
    a process refreshes its entry with every reservation and removes it on close, and an entry
    unseen for ``idle_s`` (a crashed or long-idle process) is dropped. A process with another plan
    is refused only while a holder with the old plan remains; otherwise it takes the row over
    (``Joined.previous`` says from what, for a loud warning). The row's request slots are kept
    across a plan change, so requests the vendor still counts stay counted under the new plan;
    only the adaptive rate starts again from the new plan.

    Raises:
        ConfigError: a live holder uses another plan.
    """
    holders = {h: list(v) for h, v in dict(state.get("holders", {})).items() if now - float(v[2]) < idle_s}
    for entry in holders.values():
        if _plan_of(entry) != wanted:
            raise _mismatch(name, _plan_of(entry), wanted)
    st = dict(state)
    previous = None
    if held is not None and held != wanted:
        previous = held
        for key in ("rate", "successes", "last_cut"):
            st.pop(key, None)
    holders[holder] = [wanted.configured, wanted.period_s, now]
    st["holders"] = holders
    st["plan"] = [wanted.configured, wanted.period_s]
    return st, Joined(previous)


def touch(state: State, holder: str, plan: BudgetPlan, now: float, name: str, idle_s: float) -> State:
    """Refresh ``holder``'s entry before a reservation, and refuse to run under a plan not its own.

    A process idle for longer than the row's ``idle_s`` may find its entry dropped and the row
    taken over by a process with another plan: it then stops with :class:`ConfigError` rather than
    pace requests by a plan the others no longer share.
    """
    if "plan" in state and _plan_of(state["plan"]) != plan:
        raise _mismatch(name, _plan_of(state["plan"]), plan)
    holders = {h: v for h, v in dict(state.get("holders", {})).items() if now - float(v[2]) < idle_s}
    holders[holder] = [plan.configured, plan.period_s, now]
    return dict(state, holders=holders)


def leave(state: State, holder: str) -> State:
    """Remove ``holder``'s entry (a clean close), so the next process may bring another plan at once."""
    holders = dict(state.get("holders", {}))
    holders.pop(holder, None)
    return dict(state, holders=holders)


# The budget file beside a SQLite warehouse holds this one table and nothing else.
SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_budget (
    name           TEXT PRIMARY KEY,
    configured     REAL NOT NULL,
    period_s       REAL NOT NULL,
    state          TEXT NOT NULL DEFAULT '{}',
    updated_at_ms  INTEGER NOT NULL DEFAULT 0
)
"""


def budget_path(warehouse: str) -> str:
    """The budget file of the SQLite warehouse at ``warehouse`` (beside it)."""
    return warehouse + "-budget"


class SqliteBudget:
    """The budget in a small SQLite file beside the warehouse, one connection per process.

    ``BEGIN IMMEDIATE`` takes that file's write lock, which serialises every process on the host.
    A file of its own, not a table in the warehouse: a grant must not wait behind a bar write's
    transaction, which holds the warehouse's one write lock for up to a second (``bench/budget.py``
    under back-to-back bar writes: p99 680 ms inside the warehouse, 4.9 ms beside it).

    """

    def __init__(self, path: str) -> None:
        from mdw.store.sqlite import connect

        self._conn = connect(path)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute(SQLITE_SCHEMA)
        self._lock = asyncio.Lock()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return out

        async with self._lock:
            try:
                return await asyncio.to_thread(locked)
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite rate budget failed: {exc}") from exc

    async def register(self, name: str, plan: BudgetPlan, holder: str, *, idle_s: float) -> Joined:
        def fn(conn: sqlite3.Connection) -> Joined:
            now = time.time()
            row = conn.execute("SELECT configured, period_s, state FROM rate_budget WHERE name = ?",
                               (name,)).fetchone()
            held = None if row is None else BudgetPlan(float(row[0]), float(row[1]))
            state, joined = join({} if row is None else json.loads(row[2]), held, plan, holder, now, idle_s,
                                 name)
            conn.execute(
                "INSERT INTO rate_budget (name, configured, period_s, state, updated_at_ms)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET configured = excluded.configured,"
                " period_s = excluded.period_s, state = excluded.state,"
                " updated_at_ms = excluded.updated_at_ms",
                (name, plan.configured, plan.period_s, json.dumps(state, separators=(",", ":")),
                 int(now * 1000)))
            return joined

        return await self._run(fn)

    async def update(self, name: str, step: Step[T]) -> T:
        def fn(conn: sqlite3.Connection) -> T:
            row = conn.execute("SELECT state FROM rate_budget WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise StoreError(f"rate budget {name} is not registered")
            now = time.time()  # after the write lock is ours
            state, out = step(json.loads(row[0]), now)
            conn.execute("UPDATE rate_budget SET state = ?, updated_at_ms = ? WHERE name = ?",
                         (json.dumps(state, separators=(",", ":")), int(now * 1000), name))
            return out

        return await self._run(fn)

    async def close(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._conn.close)


class PgBudget:
    """The budget table in PostgreSQL, on a pool of the caller's (or one connection of its own)."""

    def __init__(self, pool: asyncpg.Pool, *, owned: bool = False) -> None:
        self._pool = pool
        self._owned = owned

    @classmethod
    async def connect(cls, url: str) -> PgBudget:
        from mdw.store.pgqueue import create_pool

        return cls(await create_pool(url, max_size=1), owned=True)

    async def register(self, name: str, plan: BudgetPlan, holder: str, *, idle_s: float) -> Joined:
        from mdw.store.postgres import pg_errors

        async with pg_errors("rate budget register"), self._pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO rate_budget (name, configured, period_s) VALUES ($1, $2, $3)"
                               " ON CONFLICT (name) DO NOTHING", name, plan.configured, plan.period_s)
            row = await conn.fetchrow("SELECT configured, period_s, state::text AS state FROM rate_budget"
                                      " WHERE name = $1 FOR UPDATE", name)
            now = float(await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8"))
            held = BudgetPlan(float(row["configured"]), float(row["period_s"]))
            state, joined = join(json.loads(row["state"]), held, plan, holder, now, idle_s, name)
            await conn.execute("UPDATE rate_budget SET configured = $2, period_s = $3, state = $4::jsonb,"
                               " updated_at = now() WHERE name = $1", name, plan.configured, plan.period_s,
                               json.dumps(state, separators=(",", ":")))
            return joined

    async def update(self, name: str, step: Step[T]) -> T:
        from mdw.store.postgres import pg_errors

        async with pg_errors("rate budget update"), self._pool.acquire() as conn, conn.transaction():
            raw = await conn.fetchval("SELECT state::text FROM rate_budget WHERE name = $1 FOR UPDATE", name)
            if raw is None:
                raise StoreError(f"rate budget {name} is not registered")
            # The clock is read in a statement of its own, after FOR UPDATE returned: the lock is ours.
            now = float(await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8"))
            state, out = step(json.loads(raw), now)
            await conn.execute("UPDATE rate_budget SET state = $2::jsonb, updated_at = now() WHERE name = $1",
                               name, json.dumps(state, separators=(",", ":")))
            return out

    async def close(self) -> None:
        if self._owned:
            await self._pool.close()


async def open_budget_store(url: str) -> BudgetStore | None:
    """The budget of the warehouse at ``url``; None for an in-memory SQLite.

    A columnar store (``iceberg+...``) keeps its budget with the database that holds its catalog.

    PostgreSQL: the ``rate_budget`` table (a migration, so open the store first). SQLite: the
    budget file beside the database (:func:`budget_path`).

    Raises:
        StoreError: the database is unreachable.
    """
    from mdw.store import sqlite_path

    if url.lower().startswith("iceberg+"):  # the columnar store's budget lives with its database
        from mdw.store.lake.url import split_url

        url = split_url(url)[0]
    if url.startswith(("postgresql://", "postgres://")):
        return await PgBudget.connect(url)
    path = sqlite_path(url)
    if path == ":memory:":
        return None  # nothing outside this process can see it: the in-process limiter is exact
    try:
        return SqliteBudget(budget_path(path))
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the rate budget in {path}: {exc}") from exc
