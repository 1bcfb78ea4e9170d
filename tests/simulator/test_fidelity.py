"""The official vendor client (`massive`) against the simulator: results equal the ground truth."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
import urllib3
from massive import RESTClient
from massive.exceptions import BadResponse

from mdw.domain import NEW_YORK, AssetClass, BarBatch, Timeframe, local_midnight_ms
from mdw.simulator import SimServer
from mdw.simulator.testing import SimFactory


def _client(sim: SimServer, key: str | None = None, **kwargs: Any) -> RESTClient:
    return RESTClient(api_key=key or sim.key, base=sim.base_url, **kwargs)


def _range(first: date, last: date) -> tuple[int, int]:
    return local_midnight_ms(first, NEW_YORK), local_midnight_ms(last + timedelta(days=1), NEW_YORK)


def _assert_same(aggs: list[Any], truth: BarBatch) -> None:
    assert len(aggs) == len(truth)
    assert [a.timestamp for a in aggs] == truth.t.tolist()
    for field, col in (
        ("open", "o"),
        ("high", "h"),
        ("low", "l"),
        ("close", "c"),
        ("volume", "v"),
        ("vwap", "vw"),
        ("transactions", "n"),
    ):
        assert np.array_equal(np.array([getattr(a, field) for a in aggs]), getattr(truth, col)), field


@pytest.mark.parametrize("adjusted", [False, True])
async def test_client_list_aggs_pages_minute_bars_when_the_range_needs_many_pages(
    sim: SimServer, adjusted: bool
) -> None:
    """A month of NVDA minute bars (across its 2024 split) over several 2000-minute pages."""
    client = _client(sim)
    aggs = await asyncio.to_thread(
        lambda: list(
            client.list_aggs("NVDA", 1, "minute", "2024-06-01", "2024-06-30", adjusted=adjusted, limit=2000)
        )
    )
    truth = sim.market.aggregates(
        "NVDA", Timeframe(1, "m"), *_range(date(2024, 6, 1), date(2024, 6, 30)), adjusted=adjusted
    )
    _assert_same(aggs, truth)
    assert sim.stats()["pages_served"] >= 6


@pytest.mark.parametrize("adjusted", [False, True])
async def test_client_list_aggs_pages_daily_bars_when_the_range_needs_many_pages(
    sim: SimServer, adjusted: bool
) -> None:
    """Three years of AAPL daily bars, 100 days a page, adjusted and not."""
    client = _client(sim)
    aggs = await asyncio.to_thread(
        lambda: list(
            client.list_aggs("AAPL", 1, "day", "2023-01-01", "2025-12-31", adjusted=adjusted, limit=100)
        )
    )
    truth = sim.market.aggregates(
        "AAPL", Timeframe(1, "d"), *_range(date(2023, 1, 1), date(2025, 12, 31)), adjusted=adjusted
    )
    _assert_same(aggs, truth)
    assert sim.stats()["pages_served"] == -(-len(truth) // 100)


async def test_client_list_aggs_returns_an_empty_list_when_the_range_is_a_weekend(sim: SimServer) -> None:
    """A weekend holds no stock bars; the envelope without `results` yields no items."""
    client = _client(sim)
    aggs = await asyncio.to_thread(
        lambda: list(client.list_aggs("AAPL", 1, "minute", "2024-06-08", "2024-06-09"))
    )
    assert aggs == []


async def test_client_list_dividends_pages_when_limit_is_smaller_than_the_history(sim: SimServer) -> None:
    """v3 dividends for one ticker, three a page, newest first, equal the market's dividends."""
    client = _client(sim)
    got = await asyncio.to_thread(lambda: list(client.list_dividends(ticker="KO", limit=3)))
    truth = sorted(sim.market.dividends("KO"), key=lambda d: d.ex_dividend_date, reverse=True)
    assert [(d.id, d.ex_dividend_date, d.cash_amount) for d in got] == [
        (d.id, d.ex_dividend_date.isoformat(), d.cash_amount) for d in truth
    ]
    assert sim.stats()["requests_by_endpoint"]["dividends_v3"] == -(-len(truth) // 3)


async def test_client_list_dividends_filters_the_universe_when_given_a_date_range(sim: SimServer) -> None:
    """`ex_dividend_date.gte/.lte` across every listed stock, paged 50 at a time, ascending."""
    client = _client(sim)
    got = await asyncio.to_thread(
        lambda: list(
            client.list_dividends(
                ex_dividend_date_gte="2024-03-01", ex_dividend_date_lte="2024-03-31", order="asc", limit=50
            )
        )
    )
    truth = [
        d
        for t in sim.market.universe(AssetClass.STOCKS)
        for d in sim.market.dividends(t)
        if date(2024, 3, 1) <= d.ex_dividend_date <= date(2024, 3, 31)
    ]
    assert sorted(d.id for d in got) == sorted(d.id for d in truth)
    assert [d.ex_dividend_date for d in got] == sorted(d.ex_dividend_date for d in got)


async def test_client_list_splits_pages_when_limit_is_one(sim: SimServer) -> None:
    """NVDA's splits, one a page, newest first."""
    client = _client(sim)
    got = await asyncio.to_thread(lambda: list(client.list_splits(ticker="NVDA", limit=1)))
    truth = sorted(sim.market.splits("NVDA"), key=lambda s: s.execution_date, reverse=True)
    assert [(s.execution_date, s.split_from, s.split_to) for s in got] == [
        (s.execution_date.isoformat(), s.split_from, s.split_to) for s in truth
    ]
    assert len(got) == 3


async def test_client_grouped_daily_equals_each_tickers_daily_bar_when_mapped_to_midnight(
    sim: SimServer,
) -> None:
    """Grouped daily rows (t at 16:00 ET) equal the daily bars (t at 00:00 ET) of every listed stock."""
    client = _client(sim)
    day = date(2024, 3, 5)
    rows = await asyncio.to_thread(lambda: client.get_grouped_daily_aggs(day.isoformat()))
    truth = sim.market.grouped_daily(day, AssetClass.STOCKS, adjusted=True)
    assert sorted(r.ticker for r in rows) == sorted(truth) and len(rows) == 300
    for row in rows:
        bar = truth[row.ticker]
        assert row.timestamp == int(bar.t[0]) + 16 * 3_600_000
        assert (row.open, row.high, row.low, row.close, row.volume) == (
            bar.o[0],
            bar.h[0],
            bar.l[0],
            bar.c[0],
            bar.v[0],
        )


async def test_client_raises_bad_response_when_the_range_is_in_the_future(sim: SimServer) -> None:
    """A start after the data clock is a 403 NOT_AUTHORIZED, which the client raises."""
    client = _client(sim)
    later = (date.today() + timedelta(days=30)).isoformat()
    with pytest.raises(BadResponse, match="NOT_AUTHORIZED"):
        await asyncio.to_thread(lambda: list(client.list_aggs("AAPL", 1, "day", later, later)))


async def test_client_raises_bad_response_when_the_ticker_is_not_found(sim_factory: SimFactory) -> None:
    """A ticker configured as unknown gets the vendor's 404 body."""
    sim = await sim_factory(not_found_tickers=frozenset({"GONE"}))
    client = _client(sim)
    with pytest.raises(BadResponse, match="Ticker not found"):
        await asyncio.to_thread(lambda: list(client.list_aggs("GONE", 1, "day", "2024-01-02", "2024-01-05")))


async def test_client_raises_bad_response_when_the_key_is_unknown(sim: SimServer) -> None:
    """An unknown key gets 401 "Unknown API Key"."""
    client = _client(sim, key="not-a-key")
    with pytest.raises(BadResponse, match="Unknown API Key"):
        await asyncio.to_thread(lambda: list(client.list_aggs("AAPL", 1, "day", "2024-01-02", "2024-01-05")))


async def test_client_gives_up_after_its_retries_when_the_rate_limit_is_exceeded(
    sim_factory: SimFactory,
) -> None:
    """On a free key the sixth request in a minute gets 429s until urllib3 stops retrying."""
    sim = await sim_factory(keys={"free-key": "free"})
    client = _client(sim, retries=3)
    day = (date.today() - timedelta(days=40)).isoformat()

    def calls() -> int:
        done = 0
        for _ in range(6):
            client.get_aggs("AAPL", 1, "day", day, day)
            done += 1
        return done

    with pytest.raises(urllib3.exceptions.MaxRetryError, match="too many 429"):
        await asyncio.to_thread(calls)
    stats = sim.stats()
    assert stats["rate_limited"] == 4  # the sixth call and its three retries
    assert stats["max_served_60s_by_key"] == {"free-key": 5}


async def test_client_list_aggs_keeps_mixed_case_tickers_apart_and_reads_revised_bars(
    sim_factory: SimFactory,
) -> None:
    """KIMpL and KIMPL are two series for the official client too; ABBV's daily bar of 2025-03-04
    is the preliminary one at 21:00 ET and the ground truth from 09:00 ET the next day."""
    evening = local_midnight_ms(date(2025, 3, 4), NEW_YORK) + 21 * 3_600_000
    sim = await sim_factory(n_stocks=400, now_ms=evening)
    client = _client(sim)
    first, last = date(2024, 1, 2), date(2024, 1, 31)
    for ticker in ("KIMpL", "KIMPL"):
        aggs = await asyncio.to_thread(lambda t=ticker: list(client.list_aggs(t, 1, "day", first, last)))
        _assert_same(aggs, sim.market.aggregates(ticker, Timeframe(1, "d"), *_range(first, last)))
    day = date(2025, 3, 4)
    truth = sim.market.aggregates("ABBV", Timeframe(1, "d"), *_range(day, day))
    early = await asyncio.to_thread(lambda: list(client.list_aggs("ABBV", 1, "day", day, day)))
    assert len(early) == 1 and early[0].volume < truth.v[0] and early[0].close == truth.c[0]
    sim.clock.set(evening + 12 * 3_600_000)
    _assert_same(await asyncio.to_thread(lambda: list(client.list_aggs("ABBV", 1, "day", day, day))), truth)
