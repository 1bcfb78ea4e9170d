"""Typed rows of the vendor's reference endpoints: tickers, ticker events, option contracts.

The list endpoint's rows are not all alike: the official client's ``Ticker`` has no
``list_date`` (only ticker details carries it) while the simulator sends one; crypto and forex
rows have no FIGI, CIK or exchange. Every such field is optional here, and the caller decides
what a missing one means. Ticker events name their type ``type`` (the official client's recorded
answer) or ``event_type`` (the OpenAPI spec): both are read.
"""

from __future__ import annotations

from datetime import date
from typing import TypeVar

import msgspec

from mdw.errors import VendorTransientError


class TickerRow(msgspec.Struct, kw_only=True, gc=False):
    """One result of ``/v3/reference/tickers``."""

    ticker: str
    name: str = ""
    market: str = ""
    locale: str = ""
    primary_exchange: str | None = None
    type: str | None = None
    active: bool = True
    currency_name: str | None = None
    cik: str | None = None
    composite_figi: str | None = None
    share_class_figi: str | None = None
    list_date: str | None = None
    delisted_utc: str | None = None


class ContractRow(msgspec.Struct, kw_only=True, gc=False):
    """One result of ``/v3/reference/options/contracts``."""

    ticker: str
    underlying_ticker: str
    expiration_date: str
    contract_type: str
    strike_price: float
    shares_per_contract: float | None = None
    exercise_style: str | None = None
    primary_exchange: str | None = None


class _Change(msgspec.Struct, gc=False):
    ticker: str


class _Event(msgspec.Struct, kw_only=True, gc=False):
    date: str
    type: str | None = None
    event_type: str | None = None
    ticker_change: _Change | None = None


class TickerEvents(msgspec.Struct, kw_only=True, gc=False):
    """The ``results`` of ``/vX/reference/tickers/{id}/events``."""

    name: str = ""
    composite_figi: str | None = None
    cik: str | None = None
    events: list[_Event] = []

    def ticker_changes(self) -> list[tuple[date, str]]:
        """``(date, ticker)`` of each ticker change, oldest first."""
        out = []
        for e in self.events:
            kind = e.type or e.event_type
            if kind == "ticker_change" and e.ticker_change is not None:
                out.append((date.fromisoformat(e.date[:10]), e.ticker_change.ticker))
        return sorted(out)


class _Page(msgspec.Struct, gc=False):
    status: str = ""
    next_url: str | None = None
    error: str | None = None
    message: str | None = None


class _TickersPage(_Page, gc=False):
    results: list[TickerRow] = []


class _ContractsPage(_Page, gc=False):
    results: list[ContractRow] = []


class _EventsBody(_Page, gc=False):
    results: TickerEvents | None = None


_TICKERS = msgspec.json.Decoder(_TickersPage)
_CONTRACTS = msgspec.json.Decoder(_ContractsPage)
_EVENTS = msgspec.json.Decoder(_EventsBody)
P = TypeVar("P", bound=_Page)
_ERRORS = frozenset({"ERROR", "NOT_AUTHORIZED", "NOT_FOUND"})


def _read(decoder: msgspec.json.Decoder[P], body: bytes, url: str) -> P:
    try:
        page = decoder.decode(body)
    except msgspec.DecodeError as exc:  # damaged in transit, or a shape we do not know: retry
        raise VendorTransientError(f"vendor returned an unreadable body ({len(body)} bytes): {exc}",
                                   status=200, url=url) from exc
    if page.status.upper() in _ERRORS:
        raise VendorTransientError(f"vendor answered 200 with status {page.status}: "
                                   f"{page.error or page.message or 'no detail'}", status=200, url=url)
    return page


def decode_tickers(body: bytes, url: str) -> tuple[list[TickerRow], str | None]:
    page = _read(_TICKERS, body, url)
    return page.results, page.next_url


def decode_contracts(body: bytes, url: str) -> tuple[list[ContractRow], str | None]:
    page = _read(_CONTRACTS, body, url)
    return page.results, page.next_url


def decode_events(body: bytes, url: str) -> TickerEvents:
    page = _read(_EVENTS, body, url)
    return page.results if page.results is not None else TickerEvents()
