"""Reference endpoints: dividends/splits (v3 and /stocks/v1), tickers, market status; and the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime
from typing import Any

import aiohttp

from mdw.domain import AssetClass, to_ms
from mdw.simulator import SimServer
from mdw.simulator.testing import SimFactory


async def _json(sim: SimServer, path: str, **params: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(sim.base_url + path, params=params, headers={"Authorization": f"Bearer {sim.key}"}) as r,
    ):
        return r.status, await r.json()


async def _pages(sim: SimServer, path: str, **params: str) -> list[dict[str, Any]]:
    status, body = await _json(sim, path, **params)
    rows = list(body["results"])
    while "next_url" in body:
        assert status == 200 and "apiKey" not in body["next_url"]
        status, body = await _json(sim, body["next_url"].removeprefix(sim.base_url))
        rows.extend(body["results"])
    return rows


async def test_v3_splits_filters_and_sorts_when_given_operators(sim: SimServer) -> None:
    """`execution_date.gte`, `reverse_split`, `order=asc` and `sort=ticker` narrow and order the list."""
    rows = await _pages(sim, "/v3/reference/splits", **{"execution_date.gte": "2024-01-01", "limit": "2"})
    assert {"NVDA", "AAPL", "SIRI"} <= {r["ticker"] for r in rows}
    assert all(r["execution_date"] >= "2024-01-01" for r in rows)
    dates = [r["execution_date"] for r in rows]
    assert dates == sorted(dates, reverse=True)  # default order desc by execution_date
    reverse = await _pages(sim, "/v3/reference/splits", reverse_split="true", order="asc", sort="ticker")
    assert reverse and all(r["split_from"] > r["split_to"] for r in reverse)
    assert [r["ticker"] for r in reverse] == sorted(r["ticker"] for r in reverse)


async def test_stocks_v1_dividends_use_col_dir_sort_and_any_of_when_asked(sim: SimServer) -> None:
    """/stocks/v1/dividends: ticker.any_of, sort `ex_dividend_date.desc`, factor fields present."""
    rows = await _pages(
        sim,
        "/stocks/v1/dividends",
        **{"ticker.any_of": "KO,JNJ", "sort": "ex_dividend_date.desc", "limit": "40"},
    )
    truth = sim.market.dividends("KO") + sim.market.dividends("JNJ")
    assert sorted(r["id"] for r in rows) == sorted(d.id for d in truth)
    assert [r["ex_dividend_date"] for r in rows] == sorted(
        (r["ex_dividend_date"] for r in rows), reverse=True
    )
    factors = [r["historical_adjustment_factor"] for r in rows if r["ticker"] == "KO"]
    assert all(0 < f < 1 for f in factors) and factors == sorted(factors, reverse=True)
    assert rows[0]["distribution_type"] == "recurring" and "split_adjusted_cash_amount" in rows[0]


async def test_stocks_v1_splits_carry_adjustment_type_when_listed(sim: SimServer) -> None:
    """/stocks/v1/splits: default sort execution_date.desc; reverse splits are `reverse_split`."""
    status, body = await _json(sim, "/stocks/v1/splits", ticker="GME")
    assert status == 200
    assert [r["adjustment_type"] for r in body["results"]] == ["reverse_split", "forward_split"]
    assert body["results"][0]["historical_adjustment_factor"] == 5.0


async def test_reference_rejects_a_bad_limit_with_a_400_when_it_is_not_a_number(sim: SimServer) -> None:
    """A malformed parameter is a 400 with an `error` body."""
    status, body = await _json(sim, "/v3/reference/dividends", limit="many")
    assert status == 400 and body["status"] == "ERROR" and "limit" in body["error"]


async def test_tickers_list_pages_the_universe_when_limit_is_small(sim_factory: SimFactory) -> None:
    """/v3/reference/tickers pages through every listed stock; details 404 for unknown tickers."""
    sim = await sim_factory(n_stocks=1500)
    rows = await _pages(sim, "/v3/reference/tickers", limit="1000")
    stocks = [r["ticker"] for r in rows if r["market"] in ("stocks", "otc")]
    assert stocks == sim.market.universe(AssetClass.STOCKS)
    assert len(stocks) > 1000 and rows[0]["market"] == "stocks"
    status, body = await _json(sim, "/v3/reference/tickers/AAPL")
    assert status == 200 and body["results"]["ticker"] == "AAPL"
    status, body = await _json(sim, "/v3/reference/tickers/NOPE")
    assert status == 404 and body == {
        "status": "NOT_FOUND",
        "request_id": body["request_id"],
        "message": "Ticker not found.",
    }


async def test_marketstatus_upcoming_is_a_bare_array_when_holidays_are_ahead(sim_factory: SimFactory) -> None:
    """Thanksgiving 2024 is closed and the day after closes early at 13:00 ET (18:00Z)."""
    sim = await sim_factory(now_ms=to_ms(datetime(2024, 11, 20, 15, 0)))
    status, body = await _json(sim, "/v1/marketstatus/upcoming")
    assert status == 200 and isinstance(body, list)
    by_day = {(r["date"], r["exchange"]): r for r in body}
    assert by_day[("2024-11-28", "NYSE")]["status"] == "closed"
    early = by_day[("2024-11-29", "NASDAQ")]
    assert early["status"] == "early-close" and early["close"] == "2024-11-29T18:00:00.000Z"
    status, now = await _json(sim, "/v1/marketstatus/now")
    assert now["market"] == "open" and now["exchanges"]["nyse"] == "open"


async def test_prev_close_returns_the_last_completed_session_when_called(sim_factory: SimFactory) -> None:
    """Previous close: one row with T, at 16:00 ET of the last session before the data clock."""
    sim = await sim_factory(now_ms=to_ms(datetime(2024, 11, 20, 15, 0)))
    status, body = await _json(sim, "/v2/aggs/ticker/AAPL/prev")
    (row,) = body["results"]
    assert status == 200 and row["T"] == "AAPL" and row["t"] == to_ms(datetime(2024, 11, 19, 21, 0))


def test_cli_simulate_prints_url_and_key_then_exits_0_when_interrupted() -> None:
    """`mdw simulate --port 0` prints its base URL and key and exits 0 on SIGINT."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mdw.cli import main; main()", "simulate", "--port", "0", "--seed", "7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        second = proc.stdout.readline()
        assert first.startswith("mdw simulator listening on http://127.0.0.1:")
        assert second.startswith("test key: test-key")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_simulate_exits_2_with_one_line_when_a_flag_is_bad() -> None:
    """A bad flag value is one line on stderr and exit code 2."""
    done = subprocess.run(
        [sys.executable, "-c", "from mdw.cli import main; main()", "simulate", "--window", "weekly"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "mdw: error: invalid --window 'weekly'; expected sliding or fixed"
    ]
