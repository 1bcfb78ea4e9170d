"""Tickers as the vendor spells them: an empty answer for a ticker the reference data does not
know is unknown_ticker (never covered); a mixed-case typo is refused with a did-you-mean."""

from __future__ import annotations

from datetime import date

import pytest

from mdw.backfill import run_backfill
from mdw.backfill.answer import did_you_mean
from mdw.backfill.tickers import check_tickers
from mdw.domain import SeriesKey, Timeframe, parse_tickers
from mdw.errors import UsageError
from mdw.polygon import Pacing, PolygonClient
from mdw.simulator.testing import SimFactory
from mdw.store import Dataset, Store
from mdw.store.refdata import TickerListing

from .helpers import make_spec

D1 = Timeframe(1, "d")


def test_did_you_mean_names_every_spelling_that_differs_only_in_case() -> None:
    """kimpl: both KIMPL and KIMpL are offered (two securities), the name itself never."""
    assert did_you_mean("kimpl", ["KIM", "KIMpL", "KIMPL", "kimpl"]) == " Did you mean KIMPL, KIMpL, KIM?"
    assert did_you_mean("APPL", ["AAPL", "MSFT"]) == " Did you mean AAPL?"
    assert did_you_mean("ZZZZ", ["AAPL"]) == ""


async def test_empty_answer_for_a_ticker_the_reference_does_not_know_is_unknown_ticker(
    store: Store, sim_factory: SimFactory,
) -> None:
    """`kimpl` asked for as is: the vendor answers empty, its details are a 404, so the series fails
    as unknown_ticker and nothing is covered; KIMpL before its listing is empty too, and covered."""
    sim = await sim_factory(n_stocks=400)
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as client:
        report = await run_backfill(store, client, make_spec("kimpl", "1d", "2024-01-02", "2024-01-31"))
        outcome = report.series[SeriesKey("kimpl", D1)]
        assert report.exit_code == 1 and outcome.status == "failed" and "unknown_ticker" in outcome.reason
        assert not await store.coverage("kimpl", Dataset.BARS, "1d")
        before = await run_backfill(store, client, make_spec("KIMpL", "1d", "2017-01-03", "2017-01-31"))
        assert before.exit_code == 0 and before.bars_fetched == 0
        assert await store.coverage("KIMpL", Dataset.BARS, "1d")
        details = sim.stats()["requests"]
        await run_backfill(store, client, make_spec("KIMpL", "1d", "2017-02-01", "2017-02-28"))
        assert sim.stats()["requests"] == details + 1  # known: no second details request


async def test_check_tickers_trusts_stored_listings_and_asks_the_vendor_otherwise(
    store: Store, sim_factory: SimFactory,
) -> None:
    """A mixed-case ticker in the stored reference data needs no request; an unknown one is refused
    naming the vendor's spellings; capitalised tickers are never looked up in advance."""
    sim = await sim_factory(n_stocks=400)
    listing = TickerListing("KIMpL", date(2017, 8, 14), None, "Kim pref L", "stocks", "us", "XNYS", "PFD",
                            True)
    await store.reference.replace_tickers([listing], [], requests=1)
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as client:
        await check_tickers(parse_tickers("KIMpL,AAPL,NOSUCH"), store, client)
        assert sim.stats()["requests"] == 0
        with pytest.raises(UsageError, match=r"unknown ticker 'kimpl'.*Did you mean KIMPL, KIMpL\?"):
            await check_tickers(parse_tickers("kimpl"), store, client)
        await check_tickers(parse_tickers("kimpl"), store, None)  # no vendor: only stored data can refuse
