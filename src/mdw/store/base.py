"""The ``Store`` seam: what the backfill engine, the service and the Python API need of a database.

Backends implement primitives; the invariants (batch validation, sorting, "bars and their ledger
entry commit in one transaction") are stated here and checked by one conformance suite that runs
unchanged against every backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from mdw.domain import AssetClass, BarBatch, Dividend, RangeSet, Split, Timeframe, TimeRange


class Dataset(StrEnum):
    """What a coverage entry is about."""

    BARS = "bars"
    DIVIDENDS = "dividends"
    SPLITS = "splits"


@dataclass(frozen=True, slots=True)
class BarWrite:
    """One unit of work for :meth:`Store.write_bars`: bars plus the range they fully cover.

    ``covered`` may extend beyond the bars: the vendor confirmed it holds nothing else there.
    """

    batch: BarBatch
    covered: RangeSet


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
    """A backfill run: its parameters, timings, counts and JSON report."""

    id: str
    kind: str  # backfill | update | scheduled | distributed
    status: str  # running | ok | partial | failed | interrupted
    started_at_ms: int
    finished_at_ms: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


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


class Store(Protocol):
    """An async warehouse of bars, corporate actions, coverage, symbols and runs."""

    url: str

    async def open(self) -> None:
        """Connect and apply pending migrations.

        Raises:
            SchemaVersionError: the database was written by a newer mdw.
        """

    async def close(self) -> None: ...

    async def write_bars(
        self, writes: Sequence[BarWrite], *, fetched_at_ms: int | None = None
    ) -> WriteResult:
        """Validate every batch, then commit all bars and their coverage in one transaction.

        Raises:
            ValidationError: a batch breaks an invariant; nothing was written.
        """

    async def bars(self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int) -> BarBatch:
        """Bars with ``start_ms <= t < end_ms``, sorted by ``t``."""

    def iter_bars(
        self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int, chunk: int = 100_000
    ) -> AsyncIterator[BarBatch]:
        """The same rows as :meth:`bars`, in chunks, so memory stays flat for long ranges."""

    async def coverage(self, ticker: str, dataset: Dataset, timeframe: str = "") -> RangeSet:
        """The merged ranges held (including ranges the vendor confirmed empty)."""

    async def coverage_entries(self, ticker: str | None = None) -> list[CoverageEntry]: ...

    async def write_corporate_actions(
        self, ticker: str, dividends: Sequence[Dividend] | None, splits: Sequence[Split] | None,
        covered: TimeRange,
    ) -> WriteResult:
        """Upsert dividends and/or splits and record their coverage, in one transaction."""

    async def dividends(self, ticker: str) -> list[Dividend]: ...

    async def splits(self, ticker: str) -> list[Split]: ...

    # -- symbols ------------------------------------------------------------------------------

    async def upsert_symbol(self, info: SymbolInfo) -> None: ...

    async def symbols(self, *, active_only: bool = False) -> list[SymbolInfo]: ...

    async def delete_symbol(self, ticker: str, *, purge: bool = False) -> bool:
        """Stop tracking (``active = false``); with ``purge`` also delete its bars, actions and coverage."""

    # -- runs ---------------------------------------------------------------------------------

    async def save_run(self, run: RunRecord) -> None:
        """Insert or update a run by id."""

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def runs(self, limit: int = 50) -> list[RunRecord]:
        """Most recent first."""

    # -- API keys of mdw's own HTTP API (hashes only) ----------------------------------------

    async def add_api_key(self, key: ApiKeyRecord) -> None: ...

    async def api_keys(self) -> list[ApiKeyRecord]: ...

    async def revoke_api_key(self, key_id: str) -> bool: ...

    async def audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        """Append an audit-log entry (admin actions)."""

    async def audit_log(self, limit: int = 100) -> list[dict[str, Any]]: ...

    # -- quarantine: invalid vendor bars a run refused to store ---------------------------------

    async def quarantine(self, entries: Sequence[QuarantinedBar]) -> int:
        """Append the entries (one transaction); returns how many were added."""

    async def quarantined(self, ticker: str | None = None, limit: int = 1000) -> list[QuarantinedBar]:
        """Quarantined bars, most recently quarantined first (then by ticker, timeframe, t)."""

    # -- summaries ----------------------------------------------------------------------------

    async def series_stats(self) -> list[SeriesStats]:
        """Per (ticker, timeframe): bar count, first and last t (for status, metrics, dashboard)."""

    async def ping(self) -> None:
        """Raise StoreError when the database is unreachable (the readiness check)."""

    async def schema_version(self) -> tuple[int, int]:
        """(version in the database, version this code expects)."""

    # -- added with the backends (issue 5) ----------------------------------------------------

    async def delete_range(self, ticker: str, timeframe: Timeframe | str, start_ms: int, end_ms: int) -> int:
        """Delete bars with ``start_ms <= t < end_ms`` and cut that range out of their coverage.

        Both happen in one transaction; returns the number of bars deleted.
        """

    async def gaps(
        self, ticker: str, timeframe: Timeframe, asset_class: AssetClass, rng: TimeRange
    ) -> RangeSet:
        """The tradable parts of ``rng`` (per the calendar) that the bars ledger does not cover."""

    async def bars_arrow(self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int) -> Any:
        """The rows of :meth:`bars` as a ``pyarrow.Table`` with columns t, o, h, l, c, v, vw, n.

        ``v`` and ``vw`` are null where the vendor omitted them.
        """

    async def __aenter__(self) -> Store: ...

    async def __aexit__(self, *exc: object) -> None:
        """Close the store."""
