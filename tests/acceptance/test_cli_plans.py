"""Real plans and exact tickers through the ``mdw`` CLI, against the simulator (issue #15).

The simulator runs on the wall clock here, as the CLI does, so both agree on "today".
"""

from __future__ import annotations

from datetime import date
from typing import Any

from mdw.domain import NEW_YORK, Timeframe, local_midnight_ms
from mdw.simulator.testing import SimFactory
from mdw.store import Dataset

from .conftest import cli_env, mdw

D1 = Timeframe(1, "d")


def _refused(sim: Any) -> int:
    return int(sim.stats()["responses_by_status"].get("403", 0))


async def test_cli_free_key_backfill_from_2015_stores_exactly_the_last_two_years(
    sqlite_url: str, sim_factory: SimFactory, opened: Any,
) -> None:
    """A free key, the plan unset: exit 0, exactly the last two years of each series, at most one
    refused request per series, and a re-run spends none (the boundary is remembered)."""
    sim = await sim_factory(keys={"free": "free"}, rate_limit="unlimited")
    env = cli_env(sim, sqlite_url, POLYGON_API_KEY="free")
    args = ("backfill", "--symbols", "AAPL,MSFT", "--timeframes", "1d,1h", "--start", "2015-01-01")
    result = await mdw(*args, env=env, limit_s=300)
    assert result.code == 0, result.stderr
    refused = _refused(sim)
    assert 0 < refused <= 4
    today = sim.market.today()
    first = local_midnight_ms(today.replace(year=today.year - 2), NEW_YORK)
    end = local_midnight_ms(today, NEW_YORK)  # a free key is end-of-day: today is not published
    store = await opened(sqlite_url)
    for ticker in ("AAPL", "MSFT"):
        for tf in (D1, Timeframe(1, "h")):
            got = await store.bars(ticker, tf, 0, end + 86_400_000)
            assert got.equals(sim.market.aggregates(ticker, tf, first, end)), f"{ticker} {tf}"
    again = await mdw(*args, env=env, limit_s=300)
    assert again.code == 0, again.stderr
    assert _refused(sim) == refused


async def test_cli_lower_case_ticker_exits_2_with_the_vendors_spellings(
    sqlite_url: str, sim_factory: SimFactory, opened: Any,
) -> None:
    """``kimpl`` is neither KIMpL (a preferred) nor KIMPL: exit 2, one line naming both, nothing stored."""
    sim = await sim_factory(n_stocks=400)  # the market's first securities: KIMpL, KIMPL ...
    args = ("backfill", "--symbols", "kimpl", "--start", "2024-01-02", "--end", "2024-01-31")
    result = await mdw(*args, env=cli_env(sim, sqlite_url))
    assert result.code == 2, result.stderr
    assert "unknown ticker 'kimpl'" in result.stderr and "Did you mean KIMPL, KIMpL?" in result.stderr
    said = [line for line in result.stderr_lines if not line.startswith("{")]  # not the JSON log lines
    assert len(said) == 1 and "Traceback" not in result.stderr
    assert sim.stats()["requests"] == 2  # the ticker's details (404) and one search
    store = await opened(sqlite_url)
    assert not await store.coverage("kimpl", Dataset.BARS, "1d") and not await store.catalog.series()


async def test_cli_kimpl_and_kimpl_upper_are_two_series_with_their_own_data(
    sqlite_url: str, sim_factory: SimFactory, opened: Any,
) -> None:
    """KIMpL and KIMPL are backfilled as two series, each exactly the vendor's own bars."""
    sim = await sim_factory(n_stocks=400)
    args = ("backfill", "--symbols", "KIMpL,KIMPL", "--start", "2024-01-02", "--end", "2024-01-31")
    result = await mdw(*args, env=cli_env(sim, sqlite_url))
    assert result.code == 0, result.stderr
    store = await opened(sqlite_url)
    rng = (local_midnight_ms(date(2024, 1, 2), NEW_YORK), local_midnight_ms(date(2024, 2, 1), NEW_YORK))
    pref, common = [await store.bars(t, D1, *rng) for t in ("KIMpL", "KIMPL")]
    assert len(pref) > 15 and pref.equals(sim.market.aggregates("KIMpL", D1, *rng))
    assert len(common) > 15 and common.equals(sim.market.aggregates("KIMPL", D1, *rng))
    assert not pref.equals(common)
    assert {s.ticker for s in await store.catalog.series()} == {"KIMpL", "KIMPL"}
