"""The HTTP API keeps tickers exact: KIMpL is tracked as written, and kimpl is a 400 with a did-you-mean."""

from __future__ import annotations

from mdw.simulator.testing import SimFactory

from .conftest import ServiceFactory


async def test_http_mixed_case_typo_is_a_400_and_the_vendors_spelling_is_kept(
    sim_factory: SimFactory, service_factory: ServiceFactory,
) -> None:
    """POST /v1/backfills and /v1/symbols refuse `kimpl` naming KIMPL and KIMpL; KIMpL is tracked as is."""
    sim = await sim_factory(n_stocks=400)
    svc = await service_factory(sim)
    body = {"symbols": ["kimpl"], "timeframes": ["1d"], "start": "2024-01-02", "end": "2024-01-05"}
    status, err = await svc.send("POST", "/v1/backfills", json=body, headers=svc.admin)
    assert status == 400 and "Did you mean KIMPL, KIMpL?" in err["error"]["message"]
    status, err = await svc.send("POST", "/v1/symbols", json={"ticker": "kimpl", "backfill": False},
                                 headers=svc.admin)
    assert status == 400 and "unknown ticker 'kimpl'" in err["error"]["message"]
    status, made = await svc.send("POST", "/v1/symbols", json={"ticker": "KIMpL", "backfill": False},
                                  headers=svc.admin)
    assert status == 201 and made["symbol"]["ticker"] == "KIMpL"
    assert (await svc.get("/v1/symbols/KIMpL"))[0] == 200
    assert (await svc.get("/v1/symbols/KIMPL"))[0] == 404
