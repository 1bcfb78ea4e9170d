"""The HTTP surface: envelopes, next_url, auth, 400/403, rate limiting and its switches."""

from __future__ import annotations

import base64
import re
from datetime import date, timedelta
from typing import Any

import aiohttp
import pytest

from mdw.simulator import SimServer
from mdw.simulator.testing import SimFactory

AGGS = "/v2/aggs/ticker/{t}/range/{m}/{span}/{frm}/{to}"


async def _get(
    sim: SimServer, path: str, key: str | None = "default", **headers: str
) -> tuple[int, Any, Any]:
    params = {}
    if key == "default":
        headers.setdefault("Authorization", f"Bearer {sim.key}")
    elif key is not None:
        params["apiKey"] = key
    async with (
        aiohttp.ClientSession() as http,
        http.get(sim.base_url + path, params=params, headers=headers) as r,
    ):
        body = await r.json(content_type=None)
        return r.status, body, r.headers


def _cursor(next_url: str) -> str:
    token = next_url.split("cursor=", 1)[1]
    assert "=" not in token  # unpadded
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()


async def test_aggs_envelope_has_the_vendor_fields_when_bars_exist(sim: SimServer) -> None:
    """ticker, queryCount, resultsCount, adjusted, results, status, request_id (32 hex), count."""
    status, body, headers = await _get(
        sim, AGGS.format(t="AAPL", m=1, span="day", frm="2024-01-02", to="2024-01-05")
    )
    assert status == 200
    assert list(body) == [
        "ticker",
        "queryCount",
        "resultsCount",
        "adjusted",
        "results",
        "status",
        "request_id",
        "count",
    ]
    assert body["adjusted"] is True and body["status"] == "OK" and body["count"] == 4
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"]) and "X-Request-Id" in headers
    assert set(body["results"][0]) == {"v", "vw", "o", "c", "h", "l", "t", "n"}
    assert isinstance(body["results"][0]["v"], float)


async def test_aggs_envelope_omits_results_when_the_range_is_empty(sim: SimServer) -> None:
    """An empty range is a 200 without `results` (and without `count` or `next_url`)."""
    status, body, _ = await _get(
        sim, AGGS.format(t="AAPL", m=1, span="minute", frm="2024-12-25", to="2024-12-25") + "?adjusted=false"
    )
    assert status == 200
    assert "results" not in body and "next_url" not in body
    assert (body["queryCount"], body["resultsCount"], body["adjusted"]) == (0, 0, False)


async def test_aggs_next_url_replaces_from_and_keeps_to_when_a_page_is_full(sim: SimServer) -> None:
    """next_url: same path, from = next window start in ms, to as sent, cursor=limit&sort, no key."""
    path = AGGS.format(t="AAPL", m=1, span="day", frm="2020-01-01", to="2020-01-10")
    status, body, _ = await _get(sim, path + "?limit=2&sort=asc", key=sim.key)
    assert status == 200 and len(body["results"]) == 2
    nxt = body["next_url"]
    last = body["results"][-1]["t"]
    assert nxt.startswith(f"{sim.base_url}/v2/aggs/ticker/AAPL/range/1/day/{last + 86_400_000}/2020-01-10?")
    assert _cursor(nxt) == "limit=2&sort=asc" and sim.key not in nxt
    status, body2, _ = await _get(sim, nxt.removeprefix(sim.base_url))
    assert body2["results"][0]["t"] > last


async def test_aggs_next_url_uses_the_host_header_when_called_under_another_name(sim: SimServer) -> None:
    """The next_url host follows the Host header the client used."""
    path = AGGS.format(t="AAPL", m=1, span="day", frm="2020-01-01", to="2020-01-10") + "?limit=2"
    _, body, _ = await _get(sim, path, Host="api.massive.com")
    assert body["next_url"].startswith("http://api.massive.com/v2/aggs/ticker/AAPL/")


async def test_aggs_cursor_carries_adjusted_false_only_when_the_switch_is_on(sim_factory: SimFactory) -> None:
    """By default adjusted=false survives into the cursor; switched off, pages revert to adjusted."""
    path = AGGS.format(t="NVDA", m=1, span="day", frm="2024-06-01", to="2024-06-30")
    on = await sim_factory()
    _, body, _ = await _get(on, path + "?adjusted=false&limit=3")
    assert _cursor(body["next_url"]) == "adjusted=false&limit=3&sort=asc"
    off = await sim_factory(cursor_adjusted=False)
    _, body, _ = await _get(off, path + "?adjusted=false&limit=3")
    assert _cursor(body["next_url"]) == "limit=3&sort=asc"
    _, page2, _ = await _get(off, body["next_url"].removeprefix(off.base_url))
    assert page2["adjusted"] is True
    _, page2, _ = await _get(off, body["next_url"].removeprefix(off.base_url) + "&adjusted=false")
    assert page2["adjusted"] is False


async def test_aggs_accepts_ms_bounds_when_to_is_inclusive(sim: SimServer) -> None:
    """ms from/to: windows with snapped(from) <= t <= to; a from inside a minute snaps to its start."""
    start = sim.market.minute_bars("AAPL", 1709647200000, 1709650800000)  # 2024-03-05 09:00-10:00 ET
    t0, t5 = int(start.t[0]), int(start.t[5])
    _, body, _ = await _get(sim, AGGS.format(t="AAPL", m=1, span="minute", frm=t0 + 30_000, to=t5))
    assert [r["t"] for r in body["results"]] == start.t[:6].tolist()


async def test_aggs_sort_desc_returns_newest_first_when_asked(sim: SimServer) -> None:
    """sort=desc reverses the order; its next_url moves `to` back instead of `from`."""
    path = AGGS.format(t="AAPL", m=1, span="day", frm="2024-01-01", to="2024-01-31")
    _, body, _ = await _get(sim, path + "?sort=desc&limit=5")
    ts = [r["t"] for r in body["results"]]
    assert ts == sorted(ts, reverse=True) and len(ts) == 5
    assert "/2024-01-01/" in body["next_url"] and _cursor(body["next_url"]) == "limit=5&sort=desc"


async def test_aggs_rejects_to_before_from_with_the_vendor_400_body(sim: SimServer) -> None:
    """`to` before `from` is a 400 whose `error` is the vendor's text."""
    status, body, _ = await _get(
        sim, AGGS.format(t="AAPL", m=1, span="day", frm="2024-01-10", to="2024-01-02")
    )
    assert status == 400
    assert body == {
        "status": "ERROR",
        "request_id": body["request_id"],
        "error": "The parameter 'to' cannot be a time that occurs before 'from'",
    }


async def test_aggs_refuses_history_beyond_the_free_plan_when_the_key_is_free(
    sim_factory: SimFactory,
) -> None:
    """A free key gets 403 NOT_AUTHORIZED (`message`) before its ~2 years of history."""
    sim = await sim_factory(keys={"free-key": "free"})
    old = (date.today() - timedelta(days=800)).isoformat()
    status, body, _ = await _get(sim, AGGS.format(t="AAPL", m=1, span="day", frm=old, to=old))
    assert status == 403 and body["status"] == "NOT_AUTHORIZED"
    assert body["message"].startswith("Your plan doesn't include this data timeframe")
    recent = (date.today() - timedelta(days=300)).isoformat()
    status, _, _ = await _get(sim, AGGS.format(t="AAPL", m=1, span="day", frm=recent, to=recent))
    assert status == 200


async def test_auth_accepts_the_query_key_when_no_header_is_sent(sim: SimServer) -> None:
    """`apiKey` in the query authenticates like the Bearer header."""
    status, _, _ = await _get(sim, "/v1/marketstatus/now", key=sim.key)
    assert status == 200


@pytest.mark.parametrize("code", [401, 400])
async def test_auth_rejects_a_missing_key_with_the_configured_status(
    sim_factory: SimFactory, code: int
) -> None:
    """No key: "API Key was not provided", 401 by default or 400 when switched."""
    sim = await sim_factory(missing_key_status=code)
    status, body, _ = await _get(sim, "/v1/marketstatus/now", key=None)
    assert status == code and body["error"] == "API Key was not provided"


async def test_rate_limit_answers_429_with_retry_after_only_when_switched_on(sim_factory: SimFactory) -> None:
    """Over the limit: 429 with the vendor's text; Retry-After appears only with the switch."""
    for retry_after in (False, True):
        sim = await sim_factory(rate_limit="2/min", retry_after=retry_after)
        codes = [(await _get(sim, "/v1/marketstatus/now"))[0] for _ in range(2)]
        status, body, headers = await _get(sim, "/v1/marketstatus/now")
        assert codes == [200, 200] and status == 429
        assert body["error"].startswith("You've exceeded the maximum requests per minute")
        assert ("Retry-After" in headers) is retry_after
        if retry_after:
            assert 1 <= int(headers["Retry-After"]) <= 60


async def test_sim_endpoints_need_no_key_when_reading_stats_and_setting_faults(sim: SimServer) -> None:
    """/_sim/stats and /_sim/faults work without a key; posting faults changes them at runtime."""
    await _get(sim, "/v1/marketstatus/now")
    status, stats, _ = await _get(sim, "/_sim/stats", key=None)
    assert status == 200 and stats["requests_by_endpoint"] == {"marketstatus_now": 1}
    async with aiohttp.ClientSession() as http:
        async with http.post(sim.base_url + "/_sim/faults", json={"outage": True}) as r:
            assert r.status == 200 and (await r.json())["outage"] is True
        async with http.get(sim.base_url + "/v1/marketstatus/now") as r:
            assert r.status in (500, 502, 503, 504) and r.content_type == "text/html"
        async with http.post(sim.base_url + "/_sim/faults", json={"outage": False, "bogus": 1}) as r:
            assert r.status == 400
    assert sim.faults.outage is True
    sim.set_faults(sim.faults.__class__())
    assert (await _get(sim, "/v1/marketstatus/now"))[0] == 200
    assert sim.stats()["faults"] == {"outage": 1}
