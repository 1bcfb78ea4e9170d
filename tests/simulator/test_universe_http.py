"""The market over HTTP: tickers as of a date, ticker events, options contracts, market-wide actions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import aiohttp

from mdw.domain import NEW_YORK, AssetClass, Timeframe, from_ms, local_midnight_ms, to_ms
from mdw.simulator import SimServer
from mdw.simulator.options import chain, expirations
from mdw.simulator.testing import SimFactory

NOW = to_ms(datetime(2026, 11, 20, 12, 0))


async def _json(sim: SimServer, path: str, **params: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(sim.base_url + path, params=params, headers={"Authorization": f"Bearer {sim.key}"}) as r,
    ):
        return r.status, await r.json()


async def _pages(sim: SimServer, path: str, **params: str) -> tuple[list[dict[str, Any]], int]:
    status, body = await _json(sim, path, **params)
    assert status == 200, body
    rows, pages = list(body["results"]), 1
    while "next_url" in body:
        status, body = await _json(sim, body["next_url"].removeprefix(sim.base_url))
        assert status == 200, body
        rows.extend(body["results"])
        pages += 1
    return rows, pages


async def test_tickers_list_is_the_universe_as_of_a_date_when_date_and_active_are_given(
        sim_factory: SimFactory) -> None:
    """`date` pins the listing: GONE is active in 2015 and delisted (with delisted_utc) today."""
    sim = await sim_factory(n_stocks=1000, now_ms=NOW)
    rows, pages = await _pages(sim, "/v3/reference/tickers", market="stocks", limit="1000")
    listed_now = sorted(r.ticker for r in sim.market.listings() if r.listed_on(date(2026, 11, 20))
                        and r.market == "stocks")
    assert [r["ticker"] for r in rows] == listed_now and pages == 1
    assert set(rows[0]) >= {"ticker", "name", "market", "locale", "primary_exchange", "type", "active",
                            "currency_name", "cik", "composite_figi", "share_class_figi", "list_date",
                            "last_updated_utc"}
    then, _ = await _pages(sim, "/v3/reference/tickers", date="2015-06-01", limit="1000",
                           **{"ticker.gte": "GONE", "ticker.lte": "GONE"})
    assert [(r["ticker"], r["active"]) for r in then] == [("GONE", True)]
    gone, _ = await _pages(sim, "/v3/reference/tickers", active="false", ticker="GONE")
    assert gone[0]["delisted_utc"] == "2019-03-29T00:00:00Z" and gone[0]["active"] is False
    status, body = await _json(sim, "/v3/reference/tickers/ALFA")
    assert status == 200 and body["results"]["active"] is False


async def test_tickers_list_filters_market_type_and_exchange_when_asked(sim_factory: SimFactory) -> None:
    """market=otc gives OTC names only; type and exchange narrow; paging carries the filters."""
    sim = await sim_factory(n_stocks=1000, now_ms=NOW)
    otc, _ = await _pages(sim, "/v3/reference/tickers", market="otc", limit="100")
    assert otc and all(r["market"] == "otc" and "primary_exchange" not in r for r in otc)
    etfs, pages = await _pages(sim, "/v3/reference/tickers", type="ETF", exchange="ARCX", limit="20")
    assert pages > 1 and all(r["type"] == "ETF" and r["primary_exchange"] == "ARCX" for r in etfs)
    assert len({r["ticker"] for r in etfs}) == len(etfs)
    status, body = await _json(sim, "/v3/reference/tickers", market="bonds")
    assert status == 400 and "market" in body["error"]


async def test_ticker_details_tell_kimpl_from_kimpl_when_the_case_differs(sim_factory: SimFactory) -> None:
    """KIMpL (preferred) and KIMPL (common) are two securities; aggregates serve both."""
    sim = await sim_factory(n_stocks=400, now_ms=NOW)
    _, pref = await _json(sim, "/v3/reference/tickers/KIMpL")
    _, common = await _json(sim, "/v3/reference/tickers/KIMPL")
    assert (pref["results"]["type"], common["results"]["type"]) == ("PFD", "CS")
    assert pref["results"]["composite_figi"] != common["results"]["composite_figi"]
    status, body = await _json(sim, "/v2/aggs/ticker/KIMpL/range/1/day/2024-01-02/2024-03-29")
    truth = sim.market.aggregates("KIMpL", Timeframe(1, "d"), local_midnight_ms(date(2024, 1, 2), NEW_YORK),
                                  local_midnight_ms(date(2024, 3, 30), NEW_YORK), adjusted=True)
    assert status == 200 and [b["c"] for b in body["results"]] == truth.c.tolist()


async def test_ticker_events_list_the_rename_newest_first_when_asked_by_ticker_or_figi(
        sim_factory: SimFactory) -> None:
    """ALPH's events: ALPH on 2022-06-13, ALFA at listing; the old ticker no longer names it (404)."""
    sim = await sim_factory(n_stocks=400, now_ms=NOW)
    status, body = await _json(sim, "/vX/reference/tickers/ALPH/events", types="ticker_change")
    assert status == 200
    events = body["results"]["events"]
    assert events == [{"ticker_change": {"ticker": "ALPH"}, "type": "ticker_change", "date": "2022-06-13"},
                      {"ticker_change": {"ticker": "ALFA"}, "type": "ticker_change", "date": "2010-03-01"}]
    figi = body["results"]["composite_figi"]
    _, by_figi = await _json(sim, f"/vX/reference/tickers/{figi}/events")
    assert by_figi["results"]["events"] == events
    status, _ = await _json(sim, "/vX/reference/tickers/ALFA/events")
    assert status == 404
    other = await sim_factory(n_stocks=400, now_ms=NOW, ticker_event_key="event_type")
    _, body = await _json(other, "/vX/reference/tickers/KIM/events")
    assert body["results"]["events"][0]["event_type"] == "ticker_change"


async def test_options_contracts_page_a_chain_when_filtered_by_underlying_and_expiry(
        sim_factory: SimFactory) -> None:
    """SPY's 2024-12-20 chain, as of 2024-11-01, pages by 10 through exactly the simulated chain."""
    sim = await sim_factory(n_stocks=300, now_ms=NOW)
    rows, pages = await _pages(sim, "/v3/reference/options/contracts", underlying_ticker="SPY",
                               expiration_date="2024-12-20", as_of="2024-11-01", limit="10")
    (exp, weekly), = [e for e in expirations(42, "SPY", date(2024, 12, 20), date(2024, 12, 20))]
    expected = [c.ticker for c in chain(42, "SPY", exp, weekly)]
    assert [r["ticker"] for r in rows] == expected and pages == -(-len(expected) // 10)
    assert rows[0]["ticker"].startswith("O:SPY241220C") and rows[0]["shares_per_contract"] == 100
    live, _ = await _pages(sim, "/v3/reference/options/contracts", underlying_ticker="SPY", limit="1000",
                           as_of="2024-11-01", contract_type="put", **{"strike_price.gte": "500"})
    assert live and all(r["contract_type"] == "put" and r["strike_price"] >= 500
                        and r["expiration_date"] >= "2024-11-01" for r in live)
    old, _ = await _pages(sim, "/v3/reference/options/contracts", underlying_ticker="SPY", expired="true",
                          as_of="2024-11-01", limit="1000", **{"expiration_date.gte": "2024-10-01"})
    assert old and all("2024-10-01" <= r["expiration_date"] < "2024-11-01" for r in old)
    status, body = await _json(sim, f"/v3/reference/options/contracts/{expected[3]}")
    assert status == 200 and body["results"]["ticker"] == expected[3]


async def test_option_contract_has_sparse_regular_hours_bars_only_until_expiry_when_served(
        sim_factory: SimFactory) -> None:
    """A contract trades from its listing day to its expiration, in regular hours, in some minutes."""
    sim = await sim_factory(n_stocks=300, now_ms=NOW)
    (exp, weekly), = expirations(42, "SPY", date(2024, 12, 20), date(2024, 12, 20))
    contract = chain(42, "SPY", exp, weekly)[10]
    truth = sim.market.minute_bars(contract.ticker, local_midnight_ms(date(2024, 1, 1), NEW_YORK),
                                   local_midnight_ms(date(2025, 3, 1), NEW_YORK))
    days = sorted({from_ms(int(t)).astimezone(NEW_YORK).date() for t in truth.t})
    assert days[0] >= contract.listed and days[-1] <= contract.expiration
    minutes = [from_ms(int(t)).astimezone(NEW_YORK).time() for t in truth.t]
    assert all(m.hour * 60 + m.minute >= 570 and m.hour < 16 for m in minutes)
    assert len(truth) < 390 * len(days) * 0.9 and truth.problems() == [] and (truth.c >= 0.01).all()
    rows, pages = await _pages(sim, f"/v2/aggs/ticker/{contract.ticker}/range/1/minute/2024-01-01/2025-03-01",
                               limit="50000", adjusted="false")
    assert [r["t"] for r in rows] == truth.t.tolist() and pages == -(-len(truth) // 50000)
    status, body = await _json(sim, "/v2/aggs/ticker/O:SPY241220C00000500/range/1/day/2024-01-01/2024-12-31")
    assert status == 200 and "results" not in body


async def test_stocks_v1_actions_serve_the_whole_market_when_a_date_range_is_asked(
        sim_factory: SimFactory) -> None:
    """A year of every ticker's dividends pages at limit 5000; splits include stock dividends."""
    sim = await sim_factory(n_stocks=1000, now_ms=NOW)
    rows, pages = await _pages(sim, "/stocks/v1/dividends", limit="5000",
                               **{"ex_dividend_date.gte": "2023-01-01", "ex_dividend_date.lte": "2023-12-31"})
    tickers = {r.ticker for r in sim.market.listings()}
    truth = [d for t in tickers for d in sim.market.dividends(t)
             if date(2023, 1, 1) <= d.ex_dividend_date <= date(2023, 12, 31)]
    assert sorted(r["id"] for r in rows) == sorted(d.id for d in truth)
    assert pages == -(-len(truth) // 5000) and len(truth) > 200
    assert [r["ticker"] for r in rows] == sorted(r["ticker"] for r in rows)
    assert {r["distribution_type"] for r in rows} <= {"recurring", "special"}
    assert all(0 < r["historical_adjustment_factor"] <= 1 for r in rows)
    splits, _ = await _pages(sim, "/stocks/v1/splits", limit="5000", **{"adjustment_type": "stock_dividend"})
    assert splits and all(1 < r["split_to"] / r["split_from"] < 1.25 for r in splits)
    status, body = await _json(sim, "/stocks/v1/splits",
                               **{"adjustment_type.any_of": "forward_split,reverse_split"})
    assert status == 200 and {r["adjustment_type"] for r in body["results"]} <= {"forward_split",
                                                                                  "reverse_split"}


async def test_grouped_daily_omits_otc_names_unless_include_otc_is_true(sim_factory: SimFactory) -> None:
    """The vendor's include_otc (default false) decides whether OTC names are in grouped daily."""
    sim = await sim_factory(n_stocks=600, now_ms=NOW)
    day = date(2024, 3, 5)
    _, plain = await _json(sim, f"/v2/aggs/grouped/locale/us/market/stocks/{day}")
    _, full = await _json(sim, f"/v2/aggs/grouped/locale/us/market/stocks/{day}", include_otc="true")
    otc = {r.ticker for r in sim.market.listings() if r.market == "otc"}
    plain_tickers = {r["T"] for r in plain["results"]}
    full_tickers = {r["T"] for r in full["results"]}
    assert not plain_tickers & otc and full_tickers & otc and plain_tickers < full_tickers
    assert full_tickers == set(sim.market.grouped_daily(day, AssetClass.STOCKS, include_otc=True))
