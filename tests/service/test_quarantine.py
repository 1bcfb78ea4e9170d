"""GET /v1/quarantine: the invalid bars a backfill refused, as stored, through real HTTP on both backends."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from mdw.simulator import FaultConfig
from mdw.simulator.server import SimServer

ServiceFactory = Callable[..., Awaitable[Any]]


def _same(got: dict[str, Any], want: Any) -> bool:
    """A JSON entry equals a stored one (JSON null where the store holds NaN)."""
    for name, value in got.items():
        expected = getattr(want, name)
        if isinstance(expected, float) and math.isnan(expected):
            if value is not None:
                return False
        elif value != expected:
            return False
    return True


async def test_quarantine_route_lists_the_bars_a_backfill_refused(
    sim: SimServer, service_factory: ServiceFactory
) -> None:
    """A run fed h < l bars on every attempt quarantines them; the route lists, filters and limits them."""
    svc = await service_factory(sim, retry_attempts=2)
    sim.set_faults(FaultConfig(invalid_bar_rate=0.05))
    run = await svc.backfill({"symbols": ["AAPL", "MSFT"], "timeframes": ["1h"], "start": "2024-03-04",
                              "end": "2024-03-08"})
    stored = await svc.state.store.quarantine.recent()
    assert run["status"] in ("partial", "failed") and stored
    assert run["report"]["quarantined"] == len(stored)
    status, body, headers = await svc.get("/v1/quarantine")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert body["ticker"] is None and body["count"] == len(body["bars"]) == len(stored)
    assert all(_same(g, w) for g, w in zip(body["bars"], stored, strict=True))
    entry = body["bars"][0]
    assert entry["h"] < entry["l"] and entry["reason"] == "high is below low" and entry["run_id"] == run["id"]
    assert "/v2/aggs/ticker/" in entry["url"] and sim.key not in entry["url"]
    ticker = entry["ticker"]
    status, one, _ = await svc.get(f"/v1/quarantine?ticker={ticker}&limit=1",
                                   headers={"X-API-Key": svc.read_key})
    assert status == 200 and one["ticker"] == ticker and one["count"] == 1
    assert one["bars"][0]["ticker"] == ticker
    status, none, _ = await svc.get("/v1/quarantine?ticker=X:ETHUSD")
    assert status == 200 and none["bars"] == []


async def test_quarantine_route_answers_bad_input_with_a_json_400(service_factory: ServiceFactory) -> None:
    """A malformed ticker or an out-of-range limit is a 400 with the API's JSON error body."""
    svc = await service_factory(None)
    for query in ("ticker=%20bad%20ticker%3B", "limit=0", "limit=10001", "limit=many"):
        status, body, _ = await svc.get(f"/v1/quarantine?{query}")
        assert status == 400 and body["error"]["code"] in ("bad_ticker", "bad_request"), (query, body)
    status, spec, _ = await svc.get("/openapi.json")
    params = {p["name"] for p in spec["paths"]["/v1/quarantine"]["get"]["parameters"]}
    assert status == 200 and {"ticker", "limit"} <= params
