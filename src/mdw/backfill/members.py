"""A named universe turned into a backfill: its members over the range, each on its listed days.

Reference data is refreshed first when the store has never held any (a refresh of the whole
market is about ten requests). An options universe refreshes its chain's contracts each time
(one or two requests), since contracts list and expire daily.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Protocol

from mdw.backfill.plan import BackfillSpec
from mdw.backfill.reference import ReferenceSource, refresh_contracts, refresh_tickers
from mdw.backfill.universe import Member, Resolution, UniverseSpec, atm_strikes, check_name, resolve
from mdw.domain import AssetClass, BarBatch, Ticker, Timeframe, day_range_ms
from mdw.errors import UsageError
from mdw.store.base import RunKind, Store
from mdw.store.refdata import ListingFilter, TickerListing

ONE_DAY = Timeframe(1, "d")


class UniverseSource(ReferenceSource, Protocol):
    """The vendor calls a universe's resolution may make (reference data, one daily close)."""

    async def aggregates(self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int) -> BarBatch: ...


async def load_spec(store: Store, name: str) -> UniverseSpec:
    """The stored definition of ``name``.

    Raises:
        UsageError: no universe of that name (the message lists the known ones).
    """
    record = await store.universes.get(check_name(name))
    if record is None:
        known = [u.name for u in await store.universes.all()]
        hint = f"; known: {', '.join(known[:10])}" if known else "; define one with `mdw universe define`"
        raise UsageError(f"no universe named {name!r}{hint}")
    return UniverseSpec.from_json(record.spec)


async def ensure_reference(store: Store, client: ReferenceSource, today: date) -> None:
    """Refresh the tickers when the store has never held them."""
    if not any(r.kind == "tickers" for r in await store.reference.refreshes()):
        await refresh_tickers(store, client, today=today)


async def members(
    store: Store, client: UniverseSource, spec: UniverseSpec, first: date, last: date, today: date
) -> Resolution:
    """The universe's members over ``[first, last]`` (inclusive days)."""
    if spec.options is not None:
        return await _chain(store, client, spec, first, last, today)
    await ensure_reference(store, client, today)
    candidates = await store.reference.listings(spec.listing_filter(first, last))
    related: Sequence[TickerListing] = []
    if spec.tickers:
        related = await store.reference.listings(ListingFilter(first=first, last=last))
    out = resolve(spec, candidates, first, last, today, related=related)
    if spec.tickers and out.missing:
        shown = ", ".join(out.missing[:5]) + (" ..." if len(out.missing) > 5 else "")
        raise UsageError(f"{len(out.missing)} ticker(s) of the universe are not in the reference data "
                         f"(exact case): {shown}")
    return out


async def _chain(
    store: Store, client: UniverseSource, spec: UniverseSpec, first: date, last: date, today: date
) -> Resolution:
    opts = spec.options
    assert opts is not None  # the caller checked
    lo, hi = opts.expiry_days()
    found = await refresh_contracts(store, client, opts.underlying, lo, hi, today=today)
    if opts.strikes is not None and found:
        price = await _close_before(client, opts.underlying, first)
        found = atm_strikes(found, price, opts.strikes)
    out = Resolution()
    for c in found:
        stop = min(last, c.expiration_date)
        if first <= stop:
            out.members.append(Member(Ticker(c.ticker, AssetClass.OPTIONS), first, stop))
    return out


async def _close_before(client: UniverseSource, underlying: str, day: date) -> float:
    """The underlying's last daily close before ``day`` (looking back up to three weeks).

    Raises:
        UsageError: no close in that time (the underlying did not trade).
    """
    rng = day_range_ms(day - timedelta(days=21), day - timedelta(days=1), AssetClass.STOCKS.tz)
    bars = await client.aggregates(underlying, ONE_DAY, rng.start_ms, rng.end_ms)
    if not len(bars):
        raise UsageError(f"--strikes ATM±N needs {underlying}'s close before {day}, and it has none")
    return float(bars.c[-1])


async def universe_spec(
    store: Store, client: UniverseSource, name: str, timeframes: Sequence[Timeframe], start: date, end: date,
    *, today: date, kind: RunKind = RunKind.BACKFILL, grouped_daily: bool = True, derive: bool = False,
) -> BackfillSpec:
    """The backfill of universe ``name`` over ``[start, end]``: every member on its listed days.

    Raises:
        UsageError: unknown universe, an empty range, or a universe with no member in it.
    """
    if end < start:
        raise UsageError(f"--end {end} is before --start {start}")
    spec = await load_spec(store, name)
    last = min(end, today)
    found = await members(store, client, spec, start, last, today)
    if not found.members:
        raise UsageError(f"universe {name!r} has no member listed between {start} and {last}")
    tickers = tuple(dict.fromkeys(m.ticker.symbol for m in found.members))
    asset = {m.ticker.symbol: m.ticker for m in found.members}
    return BackfillSpec(tuple(asset[t] for t in tickers), tuple(timeframes), start, end, derive=derive,
                        grouped_daily=grouped_daily, kind=kind, spans=found.spans(), universe=name)
