"""The transport seam: the client sends through any implementation of the one-method protocol."""

from __future__ import annotations

from datetime import date

import pytest
from transports import ScriptedTransport, bars_body, down

from mdw.domain import AssetClass, Timeframe, local_midnight_ms
from mdw.errors import VendorTransientError
from mdw.polygon import (
    AiohttpTransport,
    BreakerPolicy,
    BreakerState,
    Pacing,
    PolygonClient,
    Response,
    RetryPolicy,
    Transport,
)
from mdw.simulator import FaultConfig, SimConfig, start_simulator

D1 = Timeframe.parse("1d")
TZ = AssetClass.STOCKS.tz
START = local_midnight_ms(date(2024, 3, 4), TZ)
END = local_midnight_ms(date(2024, 3, 8), TZ)
DAY = 86_400_000


def _client(transport: Transport, attempts: int = 5) -> PolygonClient:
    return PolygonClient("sk-transport-1234", "https://vendor.test", pacing=Pacing("unlimited"),
                         retry=RetryPolicy(attempts=attempts), transport=transport)


async def test_client_sends_the_key_only_in_the_authorization_header_through_a_transport() -> None:
    """The request a transport receives has the key in one header and nowhere in its URL."""
    transport = ScriptedTransport(Response(200, bars_body(START, START + DAY)))
    async with _client(transport) as client:
        got = await client.aggregates("AAPL", D1, START, END)
    [sent] = transport.sent
    assert sent.headers["Authorization"] == "Bearer sk-transport-1234"
    assert "sk-transport-1234" not in str(sent.url) and "sk-transport-1234" not in sent.shown
    assert sent.url.path == f"/v2/aggs/ticker/AAPL/range/1/day/{START}/{END - 1}"
    assert got.t.tolist() == [START, START + DAY]


async def test_transport_failures_and_5xx_are_retried_and_counted_then_answered() -> None:
    """An unreachable vendor, then a 503, then the bars: two retries, three requests, one page."""
    transport = ScriptedTransport(down(), Response(503, b'{"status":"ERROR"}'),
                                  Response(200, bars_body(START)))
    async with _client(transport) as client:
        got = await client.aggregates("AAPL", D1, START, END)
        stats = client.stats()
    assert got.t.tolist() == [START]
    assert (stats.total_requests, stats.retries, stats.pages) == (3, 2, 1)
    assert stats.failures_by_class == {"VendorTransientError": 2}
    assert stats.breaker_state is BreakerState.CLOSED


async def test_headers_from_the_transport_are_read_in_any_case() -> None:
    """A 503's ``retry-after`` and ``x-request-id`` headers (lower case) reach the error."""
    transport = ScriptedTransport(then=Response(503, b"{}", {"retry-after": "7", "x-request-id": "r-1"}))
    async with _client(transport, attempts=1) as client:
        with pytest.raises(VendorTransientError) as info:
            await client.aggregates("AAPL", D1, START, END)
    assert info.value.retry_after == 7.0 and info.value.request_id == "r-1"


async def test_aiohttp_transport_never_resends_a_request_on_its_own_when_connections_reset() -> None:
    """With resets on reused keep-alive connections, the vendor sees exactly the requests the client
    counted: aiohttp's silent resend is cut off, so every resend goes through the retry and limiter."""
    config = SimConfig(seed=7, faults=FaultConfig(reset_rate=0.3))
    async with start_simulator(config, port=0) as sim, PolygonClient(
        sim.key, sim.base_url, pacing=Pacing("unlimited", 1), retry=RetryPolicy(attempts=20),
        breaker=BreakerPolicy(threshold=100),
    ) as client:
        assert isinstance(client.transport, AiohttpTransport)
        for i in range(12):
            await client.aggregates("AAPL", D1, START + i * DAY, END + i * DAY)
        stats = client.stats()
        served = sim.stats()
    assert served["faults"]["reset"] > 0
    assert served["requests"] == stats.total_requests == stats.pages + stats.retries
