"""The transport seam: the client sends through any implementation of the one-method protocol."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date

import pytest
import stamina
import stamina.instrumentation
from transports import ScriptedTransport, bars_body, down

from mdw.domain import AssetClass, Timeframe, local_midnight_ms
from mdw.errors import VendorNotFound, VendorTransientError
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
from mdw.polygon import decode as dec
from mdw.polygon.client import DECODE_IN_THREAD_BYTES
from mdw.polygon.events import RetryEvent
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


@pytest.fixture
def retry_hook() -> Iterator[list[stamina.instrumentation.RetryDetails]]:
    """stamina's on-retry instrumentation, recorded for the test (the process's hooks restored)."""
    seen: list[stamina.instrumentation.RetryDetails] = []
    before = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks([seen.append])
    try:
        yield seen
    finally:
        stamina.instrumentation.set_on_retry_hooks(before)


async def test_a_failed_first_attempt_is_judged_counted_and_instrumented_by_stamina(
    retry_hook: list[stamina.instrumentation.RetryDetails],
) -> None:
    """The first attempt runs before stamina's retry context; when it fails, stamina still sees it as
    its first attempt: one retry decided, instrumented and announced, then the answer (2 requests)."""
    transport = ScriptedTransport(down(), Response(200, bars_body(START)))
    events: list[object] = []
    async with _client(transport, attempts=2) as client:
        client.subscribe(events.append)
        got = await client.aggregates("AAPL", D1, START, END)
        stats = client.stats()
    assert got.t.tolist() == [START]
    assert len(transport.sent) == 2 and (stats.total_requests, stats.retries) == (2, 1)
    [details] = retry_hook
    assert details.retry_num == 1 and isinstance(details.caused_by, VendorTransientError)
    [event] = events
    assert isinstance(event, RetryEvent) and event.attempt == 1


async def test_a_first_attempt_counts_against_the_attempts(
    retry_hook: list[stamina.instrumentation.RetryDetails],
) -> None:
    """Two attempts are two requests in all, the first one included; a 404 is never retried."""
    transport = ScriptedTransport(then=down())
    async with _client(transport, attempts=2) as client:
        with pytest.raises(VendorTransientError) as info:
            await client.aggregates("AAPL", D1, START, END)
    assert len(transport.sent) == 2 and len(retry_hook) == 1
    assert "gave up after 2 attempts" in (info.value.__notes__ or [])
    missing = ScriptedTransport(then=Response(404, b'{"status":"NOT_FOUND","message":"no such path"}'))
    async with _client(missing) as client:
        with pytest.raises(VendorNotFound):
            await client.aggregates("AAPL", D1, START, END)
    assert len(missing.sent) == 1 and len(retry_hook) == 1


async def test_a_request_answered_at_once_enters_no_retry_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """The usual request (answered at the first attempt) builds no stamina retry context: that cost
    about 100 us of CPU per request; a request that failed once enters one."""
    entered: list[int] = []
    real = stamina.retry_context

    def counting(*args: object, **kwargs: object) -> object:
        entered.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(stamina, "retry_context", counting)
    transport = ScriptedTransport(Response(200, bars_body(START)), down(), Response(200, bars_body(START)))
    async with _client(transport) as client:
        await client.aggregates("AAPL", D1, START, END)
        assert entered == []
        await client.aggregates("AAPL", D1, START, END)
    assert entered == [1] and len(transport.sent) == 3


@pytest.mark.parametrize("off_loop", [False, True])
async def test_big_pages_are_decoded_on_the_clients_thread_only_when_asked(
    off_loop: bool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``decode_off_loop`` (mdw serve, the stream) decodes a page of 256 KiB or more on the client's
    one worker thread, so the loop goes on meanwhile; by default (a backfill) it is decoded on the
    loop, which costs less CPU. Same bars."""
    stamps = [START + i * 60_000 for i in range(4_000)]
    body = bars_body(*stamps)
    assert len(body) >= DECODE_IN_THREAD_BYTES
    threads: list[str] = []
    check = dec.check_bars

    def recording(*args: object, **kwargs: object) -> object:
        threads.append(threading.current_thread().name)
        return check(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dec, "check_bars", recording)
    transport = ScriptedTransport(Response(200, body), Response(200, bars_body(START)))
    async with PolygonClient("sk-transport-1234", "https://vendor.test", pacing=Pacing("unlimited"),
                             transport=transport, decode_off_loop=off_loop) as client:
        got = await client.aggregates("AAPL", "1m", START, END)
        await client.aggregates("AAPL", "1m", START, END)  # a small page: on the loop either way
    assert got.t.tolist() == stamps
    loop_thread = threading.current_thread().name
    assert threads[1] == loop_thread
    if off_loop:
        assert threads[0].startswith("mdw-vendor-decode")
    else:
        assert threads[0] == loop_thread


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
