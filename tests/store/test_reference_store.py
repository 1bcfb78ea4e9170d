"""Reference records on every backend: listings as validity ranges, changes, contracts, universes."""

from __future__ import annotations

from datetime import date

from mdw.store import Store
from mdw.store.refdata import ListingFilter, OptionContract, TickerChange, TickerListing

FIGI = "BBG000ALFA01"
LISTINGS = [
    TickerListing("ALFA", date(2010, 1, 4), date(2022, 6, 10), "Alfa", "stocks", "us", "XNAS", "CS", False,
                  "usd", "0000001", FIGI, None, date(2010, 1, 4), date(2022, 6, 10)),
    TickerListing("ALPH", date(2022, 6, 13), None, "Alfa", "stocks", "us", "XNAS", "CS", True,
                  "usd", "0000001", FIGI, None, date(2010, 1, 4), None),
    TickerListing("GONE", date(2005, 5, 2), date(2019, 3, 29), "Gone", "stocks", "us", "XNYS", "CS", False),
    TickerListing("SPY", date(1993, 1, 29), None, "SPDR", "stocks", "us", "ARCX", "ETF", True),
    TickerListing("KIMpL", date(2017, 8, 14), None, "Kim pref L", "stocks", "us", "XNYS", "PFD", True),
    TickerListing("KIMPL", date(2021, 3, 1), None, "Kimpl Inc", "stocks", "us", "XNAS", "CS", True),
]
CHANGES = [TickerChange(FIGI, date(2010, 1, 4), "ALFA", "0000001"),
           TickerChange(FIGI, date(2022, 6, 13), "ALPH", "0000001")]


async def test_reference_listed_on_answers_exactly_when_ranges_touch_the_day(store: Store) -> None:
    """A listing counts on its first and last day and not a day outside; case is kept."""
    await store.reference.replace_tickers(LISTINGS, CHANGES, requests=3)

    async def on(day: date) -> list[str]:
        return [x.ticker for x in await store.reference.listings(ListingFilter(first=day, last=day))]

    assert await on(date(2019, 3, 29)) == ["ALFA", "GONE", "KIMpL", "SPY"]
    assert await on(date(2019, 3, 30)) == ["ALFA", "KIMpL", "SPY"]
    assert await on(date(2022, 6, 10)) == ["ALFA", "KIMPL", "KIMpL", "SPY"]
    assert await on(date(2022, 6, 13)) == ["ALPH", "KIMPL", "KIMpL", "SPY"]
    etf_or_cs = ListingFilter(types=("CS", "ETF"), exchanges=("XNAS",), first=date(2019, 1, 1),
                              last=date(2024, 1, 1))
    assert [x.ticker for x in await store.reference.listings(etf_or_cs)] == ["ALFA", "ALPH", "KIMPL"]
    again = await store.reference.listings(ListingFilter(tickers=("ALFA",)))
    assert again == [LISTINGS[0]]


async def test_reference_history_follows_the_figi_when_asked_by_today_ticker(store: Store) -> None:
    """A ticker, its FIGI or its CIK give the security's listings oldest first, and its changes."""
    await store.reference.replace_tickers(LISTINGS, CHANGES, requests=3)
    by_ticker = [x.ticker for x in await store.reference.history("ALPH")]
    assert by_ticker == ["ALFA", "ALPH"]
    assert [x.ticker for x in await store.reference.history(FIGI)] == by_ticker
    assert [x.ticker for x in await store.reference.history("0000001")] == by_ticker
    assert [x.ticker for x in await store.reference.history("GONE")] == ["GONE"]
    assert await store.reference.history("NOPE") == []
    assert await store.reference.changes(FIGI) == CHANGES


async def test_reference_replace_leaves_no_old_rows_when_refreshed_again(store: Store) -> None:
    """A second refresh replaces the first entirely and records its cost."""
    await store.reference.replace_tickers(LISTINGS, CHANGES, requests=3)
    await store.reference.replace_tickers(LISTINGS[2:4], [], requests=2)
    assert [x.ticker for x in await store.reference.listings()] == ["GONE", "SPY"]
    assert await store.reference.changes(FIGI) == []
    (refresh,) = await store.reference.refreshes()
    assert (refresh.kind, refresh.row_count, refresh.requests) == ("tickers", 2, 2)


async def test_reference_contracts_filter_by_expiry_when_upserted_twice(store: Store) -> None:
    """Contracts are keyed by ticker (a second sighting updates) and chosen by expiry range."""
    dec = OptionContract("O:SPY241220C00500000", "SPY", date(2024, 12, 20), "call", 500.0, date(2024, 6, 3),
                         100.0)
    nov = OptionContract("O:SPY241115P00450000", "SPY", date(2024, 11, 15), "put", 450.0, date(2024, 6, 3))
    await store.reference.upsert_contracts("options:SPY", [dec, nov], requests=1)
    seen_later = OptionContract(dec.ticker, "SPY", dec.expiration_date, "call", 500.0, date(2024, 7, 1),
                                100.0)
    await store.reference.upsert_contracts("options:SPY", [seen_later], requests=1)
    assert await store.reference.contracts("SPY", date(2024, 12, 1), date(2024, 12, 31)) == [seen_later]
    assert [c.ticker for c in await store.reference.contracts("SPY")] == [nov.ticker, dec.ticker]
    assert await store.reference.contracts("QQQ") == []


async def test_universes_keep_creation_time_when_redefined(store: Store) -> None:
    """Saving a universe again replaces its definition but not its creation time; rm reports."""
    first = await store.universes.save("us", {"market": "stocks", "types": ["CS", "ETF"]})
    second = await store.universes.save("us", {"market": "stocks", "types": ["CS"]})
    assert second.created_at_ms == first.created_at_ms
    assert second.spec == {"market": "stocks", "types": ["CS"]}
    await store.universes.save("chain", {"options": {"underlying": "SPY"}})
    assert [u.name for u in await store.universes.all()] == ["chain", "us"]
    assert await store.universes.delete("us") is True
    assert await store.universes.delete("us") is False
    assert await store.universes.get("us") is None
