"""The ``Store`` seam: a bar-and-ledger store with small record stores hanging off it.

``Store`` holds what every backend must do fast and atomically: write bars with the ranges they
cover in one transaction, read them back (as a batch, an Arrow table or in chunks), answer what is
covered, and cut a range out. Everything else (symbols, runs, API keys, the audit log, quarantined
bars, corporate actions and the inventory of what is held) is a small store of its own, reached as
an attribute (``store.symbols.get("AAPL")``), in the way litestar keeps one small ``Store`` per job.

The invariants behind these Protocols (batch checks, the ledger merge rule, one transaction for
bars and coverage, counted corrections) are written once in :mod:`mdw.store.sqlstore` and friends,
over the per-backend primitives of :mod:`mdw.store.primitives`. One conformance suite checks them
on every backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypedDict

from mdw.domain import BarBatch, Dividend, MarketBars, RangeSet, Split, Timeframe, TimeRange
from mdw.store.refdata import ReferenceStore, UniverseStore

if TYPE_CHECKING:  # pyarrow is loaded only when a table is asked for
    import pyarrow as pa


class Dataset(StrEnum):
    """What a coverage entry is about."""

    BARS = "bars"
    DIVIDENDS = "dividends"
    SPLITS = "splits"


class RunStatus(StrEnum):
    """Where a run stands; stored as its value."""

    RUNNING = "running"
    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class RunKind(StrEnum):
    """What started a run; stored as its value."""

    BACKFILL = "backfill"
    UPDATE = "update"
    SCHEDULED = "scheduled"
    DISTRIBUTED = "distributed"
    CORPORATE_ACTIONS = "corporate-actions"
    DEMO = "demo"
    RECONCILE = "reconcile"  # the REST pass that confirms or corrects streamed bars


@dataclass(frozen=True, slots=True)
class WriteSize:
    """How a store likes a backfill's fetched pages grouped into :meth:`Store.write_bars` calls.

    The backfill writer takes what is queued, up to ``rows`` bars and ``writes`` pages per
    transaction, with at most ``queued`` pages waiting for it. A store whose commit has a large
    fixed cost (the columnar store writes files and table metadata per commit) asks for
    ``min_rows``: while fetches still run the writer waits for that many bars, up to
    ``max_wait_s`` after it took the group's first page, so it commits fewer, larger groups.
    The row stores keep the defaults (what is queued, when the writer is free). 16 queued pages
    let the writer commit the standard workload in ~37 transactions instead of ~150 (with 4): its
    wall time 0.98x instead of 1.21x of ``0878bd5``'s on PostgreSQL, whose writer shares the event
    loop with the fetches, and ~3 % less on SQLite (docs/benchmarks.md).
    """

    rows: int = 250_000
    writes: int = 256
    queued: int = 16
    min_rows: int = 0
    max_wait_s: float = 0.0


@dataclass(frozen=True, slots=True)
class BarWrite:
    """One unit of work for :meth:`Store.write_bars`: bars plus the range they fully cover.

    ``covered`` may extend beyond the bars: the vendor confirmed it holds nothing else there.
    """

    batch: BarBatch
    covered: RangeSet


@dataclass(frozen=True, slots=True)
class ActionWrite:
    """One ticker's corporate actions for :meth:`ActionStore.write_many`: the kinds fetched (None:
    not fetched) and the range each fetched kind now covers."""

    ticker: str
    dividends: Sequence[Dividend] | None
    splits: Sequence[Split] | None
    covered: TimeRange


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a write changed: new rows, rows whose values the vendor corrected, unchanged rows."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(self.inserted + other.inserted, self.updated + other.updated,
                           self.unchanged + other.unchanged)

    @property
    def written(self) -> int:
        return self.inserted + self.updated


@dataclass(frozen=True, slots=True)
class CoverageEntry:
    """One merged range of the ledger, with when it was last fetched (epoch ms)."""

    ticker: str
    dataset: Dataset
    timeframe: str  # "" for corporate actions
    start_ms: int
    end_ms: int
    fetched_at_ms: int


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """A tracked symbol."""

    ticker: str
    asset_class: str
    name: str = ""
    active: bool = True
    timeframes: tuple[str, ...] = ()
    start_date: str | None = None  # ISO date the tracking starts from


@dataclass(slots=True)
class RunRecord:
    """A backfill run: its parameters, timings, counts and JSON report (JSON documents as dicts)."""

    id: str
    kind: RunKind
    status: RunStatus
    started_at_ms: int
    finished_at_ms: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Accept the stored spellings too ("ok"), so a record always carries the enums.
        self.kind = RunKind(self.kind)
        self.status = RunStatus(self.status)


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An mdw HTTP API key: only a salted hash of the secret is ever stored."""

    id: str  # public key id, also the key's prefix
    scope: str  # read | admin
    salt: str
    hash: str  # hex digest of (salt + secret)
    created_at_ms: int
    name: str = ""
    revoked_at_ms: int | None = None


class AuditEntry(TypedDict):
    """One line of the audit log of admin actions."""

    id: int
    at_ms: int
    actor: str
    action: str
    detail: dict[str, object]


@dataclass(frozen=True, slots=True)
class SeriesStats:
    """A stored series at a glance."""

    ticker: str
    timeframe: str
    bars: int
    first_t: int | None
    last_t: int | None


@dataclass(frozen=True, slots=True)
class QuarantinedBar:
    """A bar the vendor served that breaks an invariant: kept for inspection, never served as data.

    Prices and volumes are NaN where the vendor sent a non-number or omitted them (``n`` is 0 then).
    """

    ticker: str
    timeframe: str
    t: int
    o: float
    h: float
    l: float  # noqa: E741 - the vendor's field name
    c: float
    v: float
    vw: float
    n: int
    reason: str  # why it is invalid, e.g. "high is below low"
    run_id: str  # the run that refused it ("" outside a run)
    url: str  # the request that served it, redacted
    quarantined_at_ms: int


@dataclass(frozen=True, slots=True)
class MarketDay:
    """One day held for every ticker of an asset class at one timeframe, from one flat file.

    Tickers absent from the file are confirmed empty that day. ``etag``, ``size`` and
    ``last_modified_ms`` are the file's, so a later replacement of it can be found.
    """

    asset: str  # AssetClass value
    timeframe: str
    start_ms: int
    end_ms: int
    dataset: str  # the file's key prefix, e.g. us_stocks_sip/minute_aggs_v1
    etag: str
    size: int
    last_modified_ms: int
    fetched_at_ms: int


class SchemaVersion(NamedTuple):
    """The schema version in the database, and the one this code expects."""

    database: int
    code: int


# -- the record stores ------------------------------------------------------------------------


class SymbolStore(Protocol):
    """The tracked symbols, by ticker."""

    async def upsert(self, info: SymbolInfo) -> None: ...

    async def get(self, ticker: str) -> SymbolInfo | None: ...

    async def all(self, *, active_only: bool = False) -> list[SymbolInfo]:
        """Sorted by ticker."""

    async def delete(self, ticker: str, *, purge: bool = False) -> bool:
        """Stop tracking (``active = false``); with ``purge`` also delete its bars, actions, coverage
        and quarantine, in one transaction. False when the ticker was unknown."""


class RunStore(Protocol):
    """Backfill runs, by id."""

    async def save(self, run: RunRecord) -> None:
        """Insert or update by id."""

    async def get(self, run_id: str) -> RunRecord | None: ...

    async def recent(self, limit: int = 50) -> list[RunRecord]:
        """Most recently started first."""


class KeyStore(Protocol):
    """mdw's own HTTP API keys (salted hashes only)."""

    async def add(self, key: ApiKeyRecord) -> None: ...

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        """The key with this public id, revoked or not."""

    async def all(self) -> list[ApiKeyRecord]:
        """Oldest first."""

    async def revoke(self, key_id: str) -> bool:
        """Mark a live key revoked; False when unknown or already revoked."""


class AuditLog(Protocol):
    """An append-only log of admin actions."""

    async def append(self, actor: str, action: str, detail: Mapping[str, object]) -> None: ...

    async def recent(self, limit: int = 100) -> list[AuditEntry]:
        """Newest first."""


class QuarantineStore(Protocol):
    """Invalid vendor bars a run refused to store, kept for inspection."""

    async def add(self, entries: Sequence[QuarantinedBar]) -> int:
        """Append the entries (one transaction); returns how many were added."""

    async def recent(self, ticker: str | None = None, limit: int = 1000) -> list[QuarantinedBar]:
        """Most recently quarantined first (then by ticker, timeframe, t)."""


class ActionStore(Protocol):
    """Dividends and splits, keyed by the vendor's id, with their own coverage."""

    async def write(
        self, ticker: str, dividends: Sequence[Dividend] | None, splits: Sequence[Split] | None,
        covered: TimeRange, *, fetched_at_ms: int | None = None,
    ) -> WriteResult:
        """Upsert the kinds given (None: not fetched) and record ``covered`` for each, in one transaction
        (fetched now, or at ``fetched_at_ms``: a copy keeps the source's time)."""

    async def write_many(
        self, writes: Sequence[ActionWrite], *, fetched_at_ms: int | None = None,
    ) -> WriteResult:
        """:meth:`write` for many tickers in ONE transaction: every ticker's actions and coverage
        commit together or not at all (a market-wide listing commits in a few transactions)."""

    async def dividends(self, ticker: str) -> list[Dividend]:
        """By ex-dividend date."""

    async def splits(self, ticker: str) -> list[Split]:
        """By execution date."""


class MarketDayStore(Protocol):
    """Whole-market days held from flat files (a compact coverage, read by :meth:`Store.coverage`)."""

    async def record(self, days: Sequence[MarketDay]) -> None:
        """Upsert the days, in one transaction; a day recorded again holds every ticker again."""

    async def recorded(self, dataset: str, start_ms: int, end_ms: int) -> list[MarketDay]:
        """The days of ``dataset`` starting in ``[start_ms, end_ms)``, by start and timeframe."""


@dataclass(frozen=True, slots=True)
class PlanFact:
    """One thing learned about the key's plan under the plan setting ``plan`` (its spec).

    ``fact`` is ``history`` (``value``: the depth the vendor answered within, e.g. ``2y``);
    ``message`` and ``request_id`` are the vendor's refusal it was learned from.
    """

    plan: str
    fact: str
    value: str
    message: str
    request_id: str
    learned_at_ms: int


class PlanFactStore(Protocol):
    """What mdw learned about the key's plan, and the windows the settle pass re-fetched."""

    async def learned(self, plan: str) -> dict[str, PlanFact]:
        """The facts learned under the plan setting ``plan``, by fact."""

    async def learn(self, fact: PlanFact) -> None:
        """Record (or replace) one fact."""

    async def settled(self, ticker: str, timeframe: str, rng: TimeRange) -> RangeSet:
        """The settled windows of one series that overlap ``rng``."""

    async def mark_settled(self, ticker: str, timeframe: str, windows: Sequence[TimeRange], at_ms: int,
                           bars_updated: int) -> None:
        """Record windows as settled (each is re-fetched once), in one transaction."""


class Catalog(Protocol):
    """What the warehouse holds, across series (for status, metrics and the dashboard)."""

    async def series(self, ticker: str | None = None) -> list[SeriesStats]:
        """Per (ticker, timeframe): bar count, first and last t; sorted."""

    async def ledger(self, ticker: str | None = None) -> list[CoverageEntry]:
        """Every coverage range (bars and corporate actions), by ticker, dataset, timeframe, start."""


# -- the bar-and-ledger store -----------------------------------------------------------------


class Store(Protocol):
    """An async warehouse of bars and their coverage, with the record stores as attributes."""

    url: str
    write_size: WriteSize  # how the backfill writer should group pages for this store

    @property
    def symbols(self) -> SymbolStore: ...

    @property
    def runs(self) -> RunStore: ...

    @property
    def keys(self) -> KeyStore: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def quarantine(self) -> QuarantineStore: ...

    @property
    def actions(self) -> ActionStore: ...

    @property
    def catalog(self) -> Catalog: ...

    @property
    def market_days(self) -> MarketDayStore: ...

    @property
    def plan_facts(self) -> PlanFactStore: ...

    @property
    def reference(self) -> ReferenceStore: ...

    @property
    def universes(self) -> UniverseStore: ...

    async def open(self) -> None:
        """Connect and apply pending migrations.

        Raises:
            SchemaVersionError: the database was written by a newer mdw.
            StoreError: the database cannot be reached or migrated.
        """

    async def close(self) -> None:
        """Release connections and threads (idempotent)."""

    async def checkpoint(self) -> bool:
        """Give back the space of the write-ahead log after a big run (SQLite: a TRUNCATE checkpoint
        that waits briefly for readers; PostgreSQL: nothing). False when readers kept part of it."""

    async def ping(self) -> SchemaVersion:
        """The readiness check: one round trip that also reports the schema versions.

        Raises:
            StoreError: the database is unreachable.
        """

    async def write_bars(
        self, writes: Sequence[BarWrite], *, fetched_at_ms: int | None = None
    ) -> WriteResult:
        """Validate every batch, then commit all bars and their coverage in one transaction.

        Rewriting identical bars changes nothing; bars with other values are corrections, counted
        as updated.

        Raises:
            ValidationError: a batch breaks an invariant; nothing was written.
            StoreError: the database failed; nothing was written.
        """

    async def write_market(
        self, bars: MarketBars, *, days: Sequence[MarketDay] = ()
    ) -> WriteResult:
        """Write many tickers' bars of one timeframe, and record ``days`` held, in one transaction.

        The bulk form of :meth:`write_bars` for a market's day (a flat file): the rows are checked
        and diffed against what is stored as whole columns, and inserted in one statement. It
        writes no per-ticker coverage: ``days`` (market days) say what the bars cover. Identical
        bars change nothing; bars with other values are corrections, counted as updated.

        Raises:
            ValidationError: a row breaks an invariant; nothing was written.
            StoreError: the database failed; nothing was written.
        """

    async def bars(self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int) -> BarBatch:
        """Bars with ``start_ms <= t < end_ms``, sorted by ``t``."""

    def iter_bars(
        self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int, chunk: int = 100_000
    ) -> AsyncIterator[BarBatch]:
        """The same rows as :meth:`bars`, in chunks (keyset reads), so memory stays flat."""

    async def bars_arrow(self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int) -> pa.Table:
        """The rows of :meth:`bars` as columns t, o, h, l, c, v, vw, n (v and vw null where omitted)."""

    async def coverage_many(self, tickers: Sequence[str], dataset: Dataset, timeframe: str = ""
                            ) -> dict[str, RangeSet]:
        """:meth:`coverage` of many tickers at once, in a few queries (a universe's plan reads
        thousands of series: one query each would be most of its planning time)."""

    async def coverage(self, ticker: str, dataset: Dataset, timeframe: str = "") -> RangeSet:
        """The merged ranges held (including ranges the vendor confirmed empty): the ticker's own
        ledger and, for bars, the market days of its asset class (less its holes)."""

    async def delete_range(self, ticker: str, timeframe: Timeframe | str, start_ms: int, end_ms: int) -> int:
        """Delete bars with ``start_ms <= t < end_ms`` and cut that range out of their coverage
        (their ledger, and their share of any market days).

        Both happen in one transaction; returns the number of bars deleted.
        """

    async def __aenter__(self) -> Store: ...

    async def __aexit__(self, *exc: object) -> None:
        """Close the store."""
