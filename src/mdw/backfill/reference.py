"""Refresh the store's reference data from the vendor: tickers over time, renames, option chains.

A refresh of the whole market costs a handful of requests: the listed tickers and the delisted
ones, 1,000 a page (about 9 pages for the simulator's 8,000 securities), plus one ticker-events
request per security that appears under more than one ticker (a shared composite FIGI), which is
how a rename shows in the lists. Nothing is written until every page is in, and the listings are
then replaced in one transaction.

What a listing's days are, when the vendor leaves them out:

- no ``list_date`` (the official list rows carry none): listed since before any bar
  (:data:`~mdw.store.refdata.NO_LIST_DATE`). A backfill then asks for days before the listing
  and gets no bars for them: more requests at worst, never a wrong bar.
- inactive without ``delisted_utc``: listed until the day of the refresh, for the same reason.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

import structlog

from mdw.polygon.reference import ContractRow, TickerEvents, TickerRow
from mdw.store.base import Store
from mdw.store.refdata import NO_LIST_DATE, OptionContract, TickerChange, TickerListing

log = structlog.get_logger(__name__)
_EVENTS_IN_FLIGHT = 8


class ReferenceSource(Protocol):
    """The vendor calls a refresh makes (:class:`~mdw.polygon.PolygonClient` has them)."""

    async def ticker_listings(
        self, *, active: bool, as_of: date | None = None, market: str | None = None
    ) -> list[TickerRow]: ...

    async def ticker_events(self, ident: str) -> TickerEvents | None: ...

    async def options_contracts(
        self, underlying: str, *, first: date | None = None, last: date | None = None,
        expired: bool = False, as_of: date | None = None,
    ) -> list[ContractRow]: ...


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What a refresh stored and what it cost."""

    listings: int
    listed_today: int
    changes: int
    requests: int


def _day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def build_listings(
    rows: Iterable[TickerRow], changes: Sequence[TickerChange], today: date
) -> list[TickerListing]:
    """Listings with their validity ranges from the vendor's rows and ticker changes.

    A ticker a security took in a change is listed from the change's date (the row's
    ``list_date`` is the security's, not the ticker's). Two listings of one ticker never
    overlap: a later one starts the day after the earlier one ends.
    """
    took: dict[tuple[str, str], list[date]] = defaultdict(list)
    for c in changes:
        took[(c.composite_figi, c.ticker)].append(c.date)
    out: list[TickerListing] = []
    for r in rows:
        ended = None if r.active else (_day(r.delisted_utc) or today)
        start = _day(r.list_date) or NO_LIST_DATE
        if r.composite_figi:
            starts = [d for d in took.get((r.composite_figi, r.ticker), []) if ended is None or d <= ended]
            if starts:
                start = max(starts)
        if ended is not None and ended < start:
            ended = start  # a vendor row that ends before it starts: keep the one day, lose nothing
        out.append(TickerListing(
            ticker=r.ticker, valid_from=start, valid_to=ended, name=r.name, market=r.market,
            locale=r.locale, primary_exchange=r.primary_exchange, type=r.type, active=r.active,
            currency=r.currency_name, cik=r.cik, composite_figi=r.composite_figi,
            share_class_figi=r.share_class_figi, list_date=_day(r.list_date),
            delisted_date=_day(r.delisted_utc),
        ))
    return _disjoint(out)


def _disjoint(listings: list[TickerListing]) -> list[TickerListing]:
    by_ticker: dict[str, list[TickerListing]] = defaultdict(list)
    for x in listings:
        by_ticker[x.ticker].append(x)
    out: list[TickerListing] = []
    for ticker in sorted(by_ticker):
        rows = sorted(by_ticker[ticker], key=lambda x: (x.valid_from, x.valid_to or date.max))
        prev_end: date | None = None
        for x in rows:
            if prev_end is not None and x.valid_from <= prev_end:
                x = _replace_start(x, prev_end + timedelta(days=1))
            out.append(x)
            prev_end = x.valid_to if x.valid_to is not None else date.max - timedelta(days=1)
    return out


def _replace_start(x: TickerListing, start: date) -> TickerListing:
    from dataclasses import replace

    end = x.valid_to if x.valid_to is None or x.valid_to >= start else start
    return replace(x, valid_from=start, valid_to=end)


def renamed_figis(rows: Iterable[TickerRow]) -> list[str]:
    """Composite FIGIs that appear under more than one ticker: the securities that changed ticker."""
    tickers: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r.composite_figi:
            tickers[r.composite_figi].add(r.ticker)
    return sorted(f for f, names in tickers.items() if len(names) > 1)


async def refresh_tickers(store: Store, client: ReferenceSource, *, today: date) -> RefreshResult:
    """Fetch every listed and delisted ticker and the renamed ones' changes; replace the store's."""
    listed = await client.ticker_listings(active=True)
    delisted = await client.ticker_listings(active=False)
    pages = max(1, -(-len(listed) // 1000)) + max(1, -(-len(delisted) // 1000))
    figis = renamed_figis([*listed, *delisted])
    gate = asyncio.Semaphore(_EVENTS_IN_FLIGHT)

    async def events_of(figi: str) -> list[TickerChange]:
        async with gate:
            found = await client.ticker_events(figi)
        if found is None:
            return []
        return [TickerChange(figi, day, ticker, found.cik) for day, ticker in found.ticker_changes()]

    changes = [c for group in await asyncio.gather(*(events_of(f) for f in figis)) for c in group]
    listings = build_listings([*listed, *delisted], changes, today)
    requests = pages + len(figis)
    await store.reference.replace_tickers(listings, changes, requests=requests)
    log.info("reference.tickers", action="reference.refresh", listings=len(listings),
             listed=len(listed), renamed=len(figis), requests=requests)
    return RefreshResult(len(listings), len(listed), len(changes), requests)


def _contract(row: ContractRow, as_of: date) -> OptionContract | None:
    expiry = _day(row.expiration_date)
    if expiry is None or row.contract_type not in ("call", "put"):
        return None
    return OptionContract(row.ticker, row.underlying_ticker, expiry, row.contract_type,
                          float(row.strike_price), as_of, row.shares_per_contract, row.exercise_style,
                          row.primary_exchange)


async def refresh_contracts(
    store: Store, client: ReferenceSource, underlying: str, first: date, last: date, *, today: date
) -> list[OptionContract]:
    """Fetch the underlying's contracts expiring in ``[first, last]`` and store them.

    The vendor lists live contracts (expiring today or later) and expired ones in separate
    queries; only the ones the range can hold are asked.
    """
    rows: list[ContractRow] = []
    requests = 0
    if last >= today:
        rows += await client.options_contracts(underlying, first=max(first, today), last=last)
        requests += 1
    if first < today:
        before = min(last, today - timedelta(days=1))
        rows += await client.options_contracts(underlying, first=first, last=before, expired=True)
        requests += 1
    found = [c for c in (_contract(r, today) for r in rows) if c is not None]
    requests = max(requests, -(-len(rows) // 1000))
    await store.reference.upsert_contracts(f"options:{underlying}", found, requests=requests)
    log.info("reference.options", action="reference.refresh", underlying=underlying, contracts=len(found))
    return sorted(found, key=lambda c: c.ticker)
