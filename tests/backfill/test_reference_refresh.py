"""Refreshing reference data from the simulator's 8,000-security market: exact ranges, few requests."""

from __future__ import annotations

from datetime import date, datetime

from mdw.backfill.reference import build_listings, refresh_contracts, refresh_tickers
from mdw.domain import to_ms
from mdw.polygon import Pacing, PolygonClient
from mdw.polygon.reference import TickerRow
from mdw.simulator.testing import SimFactory
from mdw.store import Store
from mdw.store.refdata import NO_LIST_DATE, ListingFilter, TickerChange

NOW = to_ms(datetime(2026, 11, 20, 21, 0))
TODAY = date(2026, 11, 20)


async def test_refresh_tickers_stores_every_listing_exactly_when_the_market_has_8000_securities(
    store: Store, sim_factory: SimFactory
) -> None:
    """Each simulated ticker's listed days are stored exactly (renames and delistings included) in
    one page per 1,000 rows plus one events request per renamed security."""
    sim = await sim_factory(keys={"k": "unlimited"}, n_stocks=8000, now_ms=NOW)
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as client:
        result = await refresh_tickers(store, client, today=TODAY)
    stored = {x.ticker: x for x in await store.reference.listings(ListingFilter(markets=("stocks", "otc")))}
    truth = [r for r in sim.market.listings() if r.start <= TODAY]
    assert len(stored) == len(truth)
    for r in truth:
        if r.end is not None and r.end <= r.start:
            continue  # the simulator's preferreds of a root delisted before they list: no bars at all
        x = stored[r.ticker]
        # a renamed-in ticker lists from its change; any other from the security's list date (a
        # legacy name's is before the simulated domain, which has no bars before 2000)
        assert x.valid_from == (r.start if r.previous else r.list_date) <= r.start, r.ticker
        ended = r.end is not None and r.end <= TODAY  # a delisting still to come is not known yet
        assert x.valid_to == (r.last_day if ended else None), r.ticker
        assert (x.composite_figi, x.type, x.primary_exchange) == (r.composite_figi, r.kind, r.exchange)
    renamed = {r.composite_figi for r in truth if r.following is not None and r.end is not None
               and r.end <= TODAY}
    listed = sum(1 for r in truth if r.listed_on(TODAY)) + 30  # and the crypto and forex pairs
    delisted = len(truth) - listed + 30
    pages = -(-listed // 1000) + -(-delisted // 1000)
    assert result.requests == pages + len(renamed) == sim.stats()["requests"]
    alph = await store.reference.history("ALPH")
    assert [(x.ticker, x.valid_from) for x in alph] == [("ALFA", alph[0].valid_from),
                                                         ("ALPH", date(2022, 6, 13))]
    assert alph[0].valid_to is not None and alph[0].valid_to < date(2022, 6, 13)


def test_build_listings_keeps_listings_disjoint_when_the_vendor_gives_no_dates() -> None:
    """Rows without list dates list from 1900; a reused ticker's later listing starts after the
    earlier one ends, and an inactive row without a delisting date runs to today."""
    rows = [TickerRow(ticker="OLD", active=False, delisted_utc="2015-03-02T00:00:00Z"),
            TickerRow(ticker="OLD", active=True),
            TickerRow(ticker="LOST", active=False)]
    out = {(x.ticker, x.valid_from): x.valid_to for x in build_listings(rows, [], TODAY)}
    assert out == {("LOST", NO_LIST_DATE): TODAY, ("OLD", NO_LIST_DATE): date(2015, 3, 2),
                   ("OLD", date(2015, 3, 3)): None}
    moved = [TickerRow(ticker="NEW", active=True, composite_figi="F", list_date="2001-01-02")]
    (new,) = build_listings(moved, [TickerChange("F", date(2020, 5, 1), "NEW")], TODAY)
    assert new.valid_from == date(2020, 5, 1) and new.list_date == date(2001, 1, 2)


async def test_refresh_contracts_stores_the_chain_when_its_expiry_is_past(
    store: Store, sim_factory: SimFactory
) -> None:
    """An expired month's contracts come from the expired listing, all of them, in one page each."""
    sim = await sim_factory(keys={"k": "unlimited"}, now_ms=NOW)
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as client:
        found = await refresh_contracts(store, client, "SPY", date(2024, 12, 1), date(2024, 12, 31),
                                        today=TODAY)
    truth = sorted(c["ticker"] for c in await _vendor_chain(sim.base_url, sim.key))
    assert [c.ticker for c in found] == truth and len(truth) > 10
    assert {c.expiration_date.month for c in found} == {12}
    assert await store.reference.contracts("SPY", date(2024, 12, 1), date(2024, 12, 31)) == found
    assert sim.stats()["requests"] == -(-len(truth) // 1000) + 1  # the expired pages, one more ask


async def _vendor_chain(base: str, key: str) -> list[dict[str, object]]:
    """Every contract the simulator lists for SPY's December 2024, read page by page independently."""
    import aiohttp

    out: list[dict[str, object]] = []
    url: str | None = (f"{base}/v3/reference/options/contracts?underlying_ticker=SPY&expired=true"
                       "&expiration_date.gte=2024-12-01&expiration_date.lte=2024-12-31&limit=1000")
    async with aiohttp.ClientSession() as http:
        while url:
            async with http.get(url, params={"apiKey": key}) as resp:
                body = await resp.json()
            out.extend(body.get("results", []))
            url = body.get("next_url")
    return out
