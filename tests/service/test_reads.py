"""``GET /v1/bars`` and ``POST /v1/symbols`` say what they could not answer (#21)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mdw.simulator.server import SimServer

ServiceFactory = Callable[..., Awaitable[Any]]


async def test_reads_unknown_ticker_answers_404_with_did_you_mean_when_a_close_one_is_held(
    service_factory: ServiceFactory, sim: SimServer
) -> None:
    """/v1/bars/AAPLL is a 404 naming AAPL; a timeframe never stored is a 404 naming the stored ones."""
    svc = await service_factory(sim)
    await svc.backfill({"symbols": ["AAPL"], "timeframes": ["1d"], "start": "2024-03-04",
                        "end": "2024-03-08"})
    status, body, _ = await svc.get("/v1/bars/AAPLL?start=2024-03-04&end=2024-03-08")
    assert status == 404 and "Did you mean AAPL" in body["error"]["message"]
    status, body, _ = await svc.get("/v1/bars/AAPL?timeframe=1h&start=2024-03-04&end=2024-03-08")
    assert status == 404 and "stored timeframes: 1d" in body["error"]["message"]
    status, body, _ = await svc.get("/v1/bars/AAPL?start=2024-03-04&end=2024-03-15&strict=true")
    assert status == 409 and body["error"]["code"] == "incomplete"
    status, body, _ = await svc.get("/v1/bars/AAPL?start=2024-03-04&end=2024-03-08&strict=true")
    assert status == 200 and body["count"] == 5


async def test_reads_adjusted_answers_409_when_actions_were_never_fetched(
    service_factory: ServiceFactory, sim: SimServer
) -> None:
    """adjust=splits over a range whose splits were never fetched is a 409 that says how to fetch them."""
    svc = await service_factory(sim)
    await svc.backfill({"symbols": ["AAPL"], "timeframes": ["1d"], "start": "2025-06-02", "end": "2025-06-13",
                        "corporate_actions": False})
    status, body, _ = await svc.get("/v1/bars/AAPL?start=2025-06-02&end=2025-06-13&adjust=splits")
    assert status == 409 and "mdw corporate-actions -s AAPL" in body["error"]["message"]


async def test_reads_track_symbol_answers_409_when_the_server_has_no_vendor_key(
    service_factory: ServiceFactory,
) -> None:
    """POST /v1/symbols asking for a backfill on a keyless server is a 409; backfill=false tracks it."""
    svc = await service_factory(None)
    status, body = await svc.send("POST", "/v1/symbols", json={"ticker": "AAPL"}, headers=svc.admin)
    assert status == 409 and body["error"]["code"] == "no_vendor_key"
    assert (await svc.get("/v1/symbols/AAPL"))[0] == 404  # nothing was tracked by the refusal
    status, body = await svc.send("POST", "/v1/symbols", json={"ticker": "AAPL", "backfill": False},
                                  headers=svc.admin)
    assert status == 201 and body["run_id"] is None
