"""Reference data records and the two small stores that hold them: tickers over time, universes.

A ticker is not an identity: the same symbol may name two securities over the years, and a
security may change its symbol. So a :class:`TickerListing` is one ticker's *listing*, a
validity range of days (``valid_from`` .. ``valid_to``, inclusive, open while still listed),
keyed by ``(ticker, valid_from)``. "What was listed on day D" is then an exact question, and a
security's history is its listings under one composite FIGI (or CIK), in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

NO_LIST_DATE = date(1900, 1, 1)
"""``valid_from`` of a listing the vendor gives no list date for: listed before any bar exists."""


@dataclass(frozen=True, slots=True)
class TickerListing:
    """One ticker's listing as one security, with the vendor's attributes."""

    ticker: str
    valid_from: date  # the first day listed under this ticker
    valid_to: date | None  # the last day listed (inclusive); None while still listed
    name: str = ""
    market: str = ""
    locale: str = ""
    primary_exchange: str | None = None
    type: str | None = None
    active: bool = True
    currency: str | None = None
    cik: str | None = None
    composite_figi: str | None = None
    share_class_figi: str | None = None
    list_date: date | None = None  # the vendor's list date (the security's, for a renamed one)
    delisted_date: date | None = None

    def listed_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def overlaps(self, first: date, last: date) -> bool:
        """Whether the ticker was listed on any day of ``[first, last]``."""
        return self.valid_from <= last and (self.valid_to is None or self.valid_to >= first)

    def clip(self, first: date, last: date) -> tuple[date, date] | None:
        """The days of ``[first, last]`` this listing covers, or None when it covers none."""
        lo = max(first, self.valid_from)
        hi = last if self.valid_to is None else min(last, self.valid_to)
        return (lo, hi) if lo <= hi else None


@dataclass(frozen=True, slots=True)
class TickerChange:
    """The vendor's ticker event: the security used ``ticker`` from ``date`` on."""

    composite_figi: str
    date: date
    ticker: str
    cik: str | None = None


@dataclass(frozen=True, slots=True)
class OptionContract:
    """One option contract of ``/v3/reference/options/contracts``, as last seen on ``as_of``."""

    ticker: str
    underlying: str
    expiration_date: date
    contract_type: str  # "call" or "put"
    strike_price: float
    as_of: date
    shares_per_contract: float | None = None
    exercise_style: str | None = None
    primary_exchange: str | None = None


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    """When one kind of reference data was last refreshed, what it holds and what it cost."""

    kind: str  # "tickers", or "options:<underlying>"
    refreshed_at_ms: int
    row_count: int
    requests: int


@dataclass(frozen=True, slots=True)
class UniverseRecord:
    """A named universe: its definition (a JSON object) and when it was written."""

    name: str
    spec: dict[str, Any] = field(default_factory=dict)
    created_at_ms: int = 0
    updated_at_ms: int = 0


@dataclass(frozen=True, slots=True)
class ListingFilter:
    """Which listings a query wants; every field left empty matches everything."""

    markets: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    exchanges: tuple[str, ...] = ()
    tickers: tuple[str, ...] = ()
    first: date | None = None  # listed on some day of [first, last]
    last: date | None = None


class ReferenceStore(Protocol):
    """Tickers over time, their changes, and option contracts."""

    async def replace_tickers(
        self, listings: Sequence[TickerListing], changes: Sequence[TickerChange], *, requests: int
    ) -> None:
        """Replace every listing and change at once (one transaction: never half a refresh)."""

    async def listings(self, where: ListingFilter = ListingFilter()) -> list[TickerListing]:
        """Listings matching ``where``, sorted by ticker then ``valid_from``."""

    async def history(self, ident: str) -> list[TickerListing]:
        """The listings of the security a ticker, composite FIGI or CIK names, oldest first.

        A ticker names the security of its latest listing. Empty when nothing matches.
        """

    async def changes(self, composite_figi: str) -> list[TickerChange]:
        """The security's ticker changes, oldest first."""

    async def upsert_contracts(
        self, kind: str, contracts: Sequence[OptionContract], *, requests: int
    ) -> None:
        """Add or update option contracts and record the refresh as ``kind``."""

    async def contracts(
        self, underlying: str, first: date | None = None, last: date | None = None
    ) -> list[OptionContract]:
        """The underlying's contracts expiring in ``[first, last]``, sorted by ticker."""

    async def refreshes(self) -> list[RefreshRecord]:
        """Every kind's last refresh, sorted by kind."""


class UniverseStore(Protocol):
    """Named universe definitions."""

    async def save(self, name: str, spec: dict[str, Any]) -> UniverseRecord:
        """Create or replace ``name`` (its creation time is kept on replace)."""

    async def get(self, name: str) -> UniverseRecord | None: ...

    async def all(self) -> list[UniverseRecord]:
        """Every universe, sorted by name."""

    async def delete(self, name: str) -> bool:
        """Remove ``name``; False when there was none."""
