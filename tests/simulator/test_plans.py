"""Plan profiles per key: history depth, delay, entitlements, and the vendor's format edges."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp
import pytest

from mdw.domain import NEW_YORK
from mdw.simulator import SimServer
from mdw.simulator.testing import SimFactory

AGGS = "/v2/aggs/ticker/{t}/range/{m}/{span}/{frm}/{to}"
# Wednesday 2025-03-05, 14:30 New York: mid-session, so "today" has minutes to withhold.
NOW = datetime(2025, 3, 5, 14, 30, tzinfo=NEW_YORK)
NOW_MS = int(NOW.timestamp() * 1000)


async def _get(sim: SimServer, path: str, key: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(sim.base_url + path, headers={"Authorization": f"Bearer {key}"}) as r,
    ):
        return r.status, await r.json(content_type=None)


async def test_plan_history_refuses_a_straddling_range_whole_when_straddle_is_refuse(
    sim_factory: SimFactory,
) -> None:
    """A free key asking from before its two calendar years gets the vendor's timeframe 403."""
    sim = await sim_factory(keys={"free": "free"}, now_ms=NOW_MS)
    status, body = await _get(sim, AGGS.format(t="AAPL", m=1, span="day", frm="2023-03-01", to="2023-03-10"),
                              "free")
    assert status == 403 and body["status"] == "NOT_AUTHORIZED" and len(body["request_id"]) == 32
    assert body["message"].startswith("Your plan doesn't include this data timeframe")
    status, body = await _get(sim, AGGS.format(t="AAPL", m=1, span="day", frm="2023-03-06", to="2023-03-10"),
                              "free")
    assert status == 200 and body["resultsCount"] == 5


async def test_plan_history_serves_the_allowed_part_when_straddle_is_clip(sim_factory: SimFactory) -> None:
    """Under ``straddle="clip"`` the request is answered from the boundary on; all-before is still 403."""
    sim = await sim_factory(keys={"free": "free"}, now_ms=NOW_MS, straddle="clip")
    status, body = await _get(sim, AGGS.format(t="AAPL", m=1, span="day", frm="2023-03-01", to="2023-03-10"),
                              "free")
    first = datetime.fromtimestamp(body["results"][0]["t"] / 1000, tz=NEW_YORK).date().isoformat()
    assert status == 200 and body["resultsCount"] == 5 and first == "2023-03-06"
    status, _ = await _get(sim, AGGS.format(t="AAPL", m=1, span="day", frm="2023-03-01", to="2023-03-03"),
                           "free")
    assert status == 403


@pytest.mark.parametrize(("plan", "newest_minute"), [
    ("unlimited", "14:29"), ("starter", "14:14"), ("history=all,delay=1h,rate=unlimited", "13:29"),
])
async def test_plan_delay_withholds_minutes_newer_than_the_delay_when_the_plan_is_delayed(
    sim_factory: SimFactory, plan: str, newest_minute: str,
) -> None:
    """A key sees minutes up to its plan's delay before now, and no later."""
    day = "2025-03-05"
    sim = await sim_factory(keys={"k": plan}, now_ms=NOW_MS)
    status, body = await _get(sim, AGGS.format(t="AAPL", m=1, span="minute", frm=day, to=day), "k")
    last = datetime.fromtimestamp(body["results"][-1]["t"] / 1000, tz=NEW_YORK)
    assert status == 200 and last.strftime("%H:%M") == newest_minute


async def test_plan_delay_withholds_today_whole_when_the_plan_is_end_of_day(sim_factory: SimFactory) -> None:
    """A free (end-of-day) key sees yesterday's bars and nothing of today, minutes or day."""
    sim = await sim_factory(keys={"free": "free"}, now_ms=NOW_MS)
    status, body = await _get(sim, AGGS.format(t="AAPL", m=1, span="minute", frm="2025-03-05",
                                               to="2025-03-05"), "free")
    assert status == 200 and body["resultsCount"] == 0 and "results" not in body
    status, body = await _get(sim, AGGS.format(t="AAPL", m=1, span="day", frm="2025-03-03", to="2025-03-05"),
                              "free")
    assert status == 200 and body["resultsCount"] == 2


async def test_plan_delay_serves_everything_when_the_delay_switch_is_off(sim_factory: SimFactory) -> None:
    """``delay=False`` turns withholding off: a starter key sees the last completed minute."""
    sim = await sim_factory(keys={"k": "starter"}, now_ms=NOW_MS, delay=False)
    path = AGGS.format(t="AAPL", m=1, span="minute", frm="2025-03-05", to="2025-03-05")
    _, body = await _get(sim, path, "k")
    last = datetime.fromtimestamp(body["results"][-1]["t"] / 1000, tz=NEW_YORK)
    assert last.strftime("%H:%M") == "14:29"


async def test_entitlement_refuses_a_route_with_the_vendors_message_when_not_entitled(
    sim_factory: SimFactory,
) -> None:
    """A route named in ``not_entitled`` answers 403 "You are not entitled to this data", request_id too."""
    sim = await sim_factory(now_ms=NOW_MS, not_entitled=["grouped_stocks"])
    status, body = await _get(sim, "/v2/aggs/grouped/locale/us/market/stocks/2025-03-04", sim.key)
    assert status == 403 and body["status"] == "NOT_AUTHORIZED" and len(body["request_id"]) == 32
    assert body["message"].startswith("You are not entitled to this data")
    status, _ = await _get(sim, AGGS.format(t="AAPL", m=1, span="day", frm="2025-03-03", to="2025-03-04"),
                           sim.key)
    assert status == 200


async def test_format_edges_null_results_and_missing_vw_n_when_switched_on(
    sim_factory: SimFactory,
) -> None:
    """``null_results`` sends ``"results": null`` when empty; ``no_vw_n`` tickers' bars lack vw and n."""
    sim = await sim_factory(now_ms=NOW_MS, null_results=True, no_vw_n=["MSFT"])
    _, body = await _get(sim, AGGS.format(t="AAPL", m=1, span="day", frm="2025-03-01", to="2025-03-02"),
                         sim.key)
    assert "results" in body and body["results"] is None and body["resultsCount"] == 0
    _, body = await _get(sim, AGGS.format(t="MSFT", m=1, span="day", frm="2025-03-03", to="2025-03-04"),
                         sim.key)
    assert [set(bar) for bar in body["results"]] == [{"v", "o", "c", "h", "l", "t"}] * 2


async def test_format_edges_otc_bars_carry_the_flag_when_the_ticker_trades_otc(
    sim_factory: SimFactory,
) -> None:
    """Bars of an OTC-listed ticker carry ``otc: true``; an exchange-listed ticker's bars leave it off."""
    sim = await sim_factory(now_ms=NOW_MS, n_stocks=2000)
    otc = next(r.ticker for r in sim.state.market.listings()
               if r.market == "otc" and r.listed_on(NOW.date()) and len(
                   sim.state.market.aggregates(r.ticker, *_last_month())))
    _, body = await _get(sim, AGGS.format(t=otc, m=1, span="day", frm="2025-02-01", to="2025-03-04"),
                         sim.key)
    assert body["results"] and all(bar["otc"] is True for bar in body["results"])
    _, body = await _get(sim, AGGS.format(t="AAPL", m=1, span="day", frm="2025-03-03", to="2025-03-04"),
                         sim.key)
    assert all("otc" not in bar for bar in body["results"])


def _last_month() -> tuple[Any, int, int]:
    from mdw.domain import Timeframe

    start = int(datetime(2025, 2, 1, tzinfo=NEW_YORK).timestamp() * 1000)
    return Timeframe(1, "d"), start, int(datetime(2025, 3, 5, tzinfo=NEW_YORK).timestamp() * 1000)
