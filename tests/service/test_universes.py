"""/v1/universes and stitched /v1/bars over HTTP, against the simulator's market (a rename: PVQ -> PVQF)."""

from __future__ import annotations

import csv
import io
from datetime import date

from mdw.domain import NEW_YORK, BarBatch, Timeframe, day_range_ms, local_midnight_ms
from mdw.simulator.testing import SimFactory

from .conftest import ServiceFactory

SIM_TODAY = date(2025, 1, 15)
FIRST, LAST = date(2024, 11, 1), date(2024, 12, 31)


async def test_universe_routes_define_refresh_backfill_and_read_stitched_bars(
    sim_factory: SimFactory, service_factory: ServiceFactory,
) -> None:
    """PUT a universe, refresh, backfill it; a stitched read of PVQF is PVQ's bars then PVQF's, with
    the change in the headers and the body; reads are open, changes need the admin key."""
    sim = await sim_factory(n_stocks=1000, now_ms=local_midnight_ms(SIM_TODAY, NEW_YORK))
    svc = await service_factory(sim)
    status, body = await svc.send("PUT", "/v1/universes/pvq", json={"tickers": ["PVQF"]})
    assert status == 401, body
    status, body = await svc.send("PUT", "/v1/universes/pvq", json={"tickers": ["PVQF"]}, headers=svc.admin)
    assert status == 200 and body["definition"]["tickers"] == ["PVQF"]
    for bad, code in (({"market": ["bonds"]}, 400), ({"strikes": "ATM±5"}, 400),
                      ({"underlying": "SPY", "expiry": "2024-13"}, 400)):
        status, body = await svc.send("PUT", "/v1/universes/x", json=bad, headers=svc.admin)
        assert status == code and body["error"]["code"] == "bad_request", body
    status, body, _ = await svc.get("/v1/universes/pvq?on=2024-11-01")
    assert status == 400 and "mdw reference refresh" in body["error"]["message"]
    status, body = await svc.send("POST", "/v1/reference/refresh", headers=svc.admin)
    assert status == 200 and body["tickers"]["listings"] > 1000
    status, body, _ = await svc.get("/v1/universes/pvq?on=2024-11-01")
    assert status == 200 and body["members"] == ["PVQ"]
    status, body, _ = await svc.get("/v1/universes/pvq?on=2024-12-20")
    assert body["members"] == ["PVQF"]
    status, body, _ = await svc.get("/v1/universes/pvq/sizes?start=2024-11-01&end=2024-12-31&points=10")
    assert status == 200 and {s["members"] for s in body["sizes"]} == {1}

    status, started = await svc.send("POST", "/v1/universes/pvq/backfill", headers=svc.admin,
                                     json={"timeframes": ["1d"], "start": str(FIRST), "end": str(LAST)})
    assert status == 202 and started["tickers"] == 2, started
    await svc.state.runs.wait_idle()
    status, run, _ = await svc.get(started["url"])
    assert run["status"] == "ok", run

    rng = day_range_ms(FIRST, LAST, NEW_YORK)
    one_day = Timeframe(1, "d")
    want = BarBatch.concat([sim.market.aggregates(t, one_day, rng.start_ms, rng.end_ms)
                            for t in ("PVQ", "PVQF")])
    query = f"/v1/bars/PVQF?timeframe=1d&start={FIRST}&end={LAST}&stitch=true&names=vendor"
    status, body, headers = await svc.get(query + "&limit=5")  # pages across the change
    rows = list(body["bars"])
    while body["next_cursor"]:
        status, body, headers = await svc.get(query + f"&limit=5&cursor={body['next_cursor']}")
        rows.extend(body["bars"])
    assert status == 200 and [r["t"] for r in rows] == want.t.tolist()
    assert [r["c"] for r in rows] == want.c.tolist()
    assert body["stitch"]["changes"] == [{"date": "2024-12-06", "from": "PVQ", "to": "PVQF"}]
    assert headers["X-Stitch-Changes"] == "2024-12-06 PVQ>PVQF" and headers["X-Stitch-Tickers"] == "PVQ,PVQF"
    assert body["coverage"]["complete"] is True and body["ticker"] == "PVQF"
    status, text, _ = await svc.get(query + "&format=csv")
    table = list(csv.DictReader(io.StringIO(text.decode())))
    assert [int(r["t"]) for r in table] == want.t.tolist()
    status, body, _ = await svc.get(f"/v1/bars/PVQF?timeframe=1d&start={FIRST}&end={LAST}&names=vendor")
    assert len(body["bars"]) == len(sim.market.aggregates("PVQF", one_day, rng.start_ms, rng.end_ms))
    status, body, _ = await svc.get(query + "&adjust=splits")
    assert status == 400 and body["error"]["code"] == "bad_adjust"

    status, body, _ = await svc.get("/v1/universes/coverage")
    (cov,) = body["coverage"]
    assert cov["universe"] == "pvq" and cov["timeframe"] == "1d" and cov["members"] == 2
    status, body, _ = await svc.get("/v1/universes")
    assert [u["name"] for u in body["universes"]] == ["pvq"]
    async with svc.http.delete(svc.base + "/v1/universes/pvq", headers=svc.admin) as resp:
        assert resp.status == 204
    status, body, _ = await svc.get("/v1/universes/pvq")
    assert status == 404
