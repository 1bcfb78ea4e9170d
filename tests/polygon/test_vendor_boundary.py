"""URLs, paging, status mapping, transport error mapping and retry policy (no sockets)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import aiohttp
import numpy as np
import pytest
from yarl import URL

from mdw.config import Settings
from mdw.domain import BarBatch, Timeframe
from mdw.errors import (
    ConfigError,
    NotEntitled,
    OutsidePlan,
    UnknownTicker,
    UsageError,
    VendorAuthError,
    VendorBadRequest,
    VendorError,
    VendorNotFound,
    VendorPlanError,
    VendorRateLimited,
    VendorRequestError,
    VendorTimeout,
    VendorTransientError,
    VendorUnavailable,
)
from mdw.polygon import BreakerState, PolygonClient, RetryPolicy, Tries, is_retryable, parse_retry_after
from mdw.polygon.http import status_error
from mdw.polygon.paging import PageGuard, aggs_path, clip, follow, join
from mdw.polygon.transport import transport_errors

BASE = URL("http://127.0.0.1:9999")


TIMEFRAME = ('{"status":"NOT_AUTHORIZED","request_id":"r9","message":"Your plan doesn\'t include this data '
             'timeframe. Please upgrade your plan at https://polygon.io/pricing"}')
ENTITLED = ('{"status":"NOT_AUTHORIZED","request_id":"r9","message":"You are not entitled to this data. '
            'Please upgrade your plan at https://polygon.io/pricing"}')

def test_aggs_path_sends_inclusive_to_when_range_is_half_open() -> None:
    """[start, end) becomes the vendor's inclusive to = end - 1, with crypto colons kept."""
    path = aggs_path("X:BTCUSD", Timeframe.parse("5m"), 1000, 61000)
    assert path == "/v2/aggs/ticker/X:BTCUSD/range/5/minute/1000/60999"
    url = join(BASE, path, {"adjusted": "false", "sort": "asc", "limit": "50000"})
    assert str(url) == "http://127.0.0.1:9999" + path + "?adjusted=false&sort=asc&limit=50000"


def test_follow_uses_our_base_and_strips_key_when_next_url_points_elsewhere() -> None:
    """next_url's host is replaced by the configured base; a stray apiKey never survives."""
    url = follow(BASE, "https://api.massive.com/v2/aggs/ticker/A/range/1/day/5/9?cursor=bGltaXQ9Mg&apiKey=K1")
    assert str(url) == "http://127.0.0.1:9999/v2/aggs/ticker/A/range/1/day/5/9?cursor=bGltaXQ9Mg"


def test_follow_adds_adjusted_only_when_cursor_lacks_it() -> None:
    """The adjusted flag is re-added if the cursor URL lost it, and a present one is kept."""
    assert follow(BASE, "/p?cursor=c", {"adjusted": "false"}).query["adjusted"] == "false"
    kept = follow(BASE, "/p?cursor=c&adjusted=true", {"adjusted": "false"})
    assert kept.query.getall("adjusted") == ["true"]


def test_follow_keeps_base_path_prefix_when_behind_a_proxy() -> None:
    """A base URL with a path prefix keeps it for follow-up pages."""
    assert str(follow(URL("http://h/pfx"), "https://v/v3/x?cursor=c")) == "http://h/pfx/v3/x?cursor=c"
    assert str(follow(URL("http://h/pfx"), "http://h/pfx/v3/x")) == "http://h/pfx/v3/x"


def test_page_guard_raises_when_a_cursor_repeats() -> None:
    """A repeated next_url is a pagination loop: a non-retryable error, not an endless fetch."""
    guard = PageGuard()
    guard.check(URL("http://h/a?cursor=1"))
    with pytest.raises(VendorError, match="pagination loop") as info:
        guard.check(URL("http://h/a?cursor=1"))
    assert not info.value.retryable


def _batch(ts: list[int]) -> BarBatch:
    f = np.ones(len(ts))
    return BarBatch("A", Timeframe.parse("1m"), np.array(ts), f, f, f, f, f, f, np.ones(len(ts)))


def test_clip_drops_bars_outside_range_and_already_seen() -> None:
    """Bars before the last seen t, at or after end, and duplicates are dropped; order is restored."""
    out = clip(_batch([60_000, 240_000, 120_000, 180_000, 180_000, 300_000]), 60_000, 300_000)
    assert out.t.tolist() == [120_000, 180_000, 240_000]
    same = _batch([120_000, 180_000])
    assert clip(same, 0, 10**9) is same


@pytest.mark.parametrize(
    ("status", "cls", "text"),
    [(400, VendorBadRequest, "could not read the request"), (401, VendorAuthError, "unknown API key"),
     (403, VendorPlanError, "plan does not include this data or range"), (404, VendorNotFound, "not found"),
     (429, VendorRateLimited, "rate limit"), (500, VendorTransientError, "HTTP 500"),
     (503, VendorTransientError, "HTTP 503"), (408, VendorTransientError, "HTTP 408"),
     (418, VendorRequestError, "HTTP 418")],
)
def test_status_error_maps_codes_to_classes_with_actionable_text(status: int, cls: type, text: str) -> None:
    """Each status maps to its class by code; 4xx (but 408/429) are not retryable."""
    err = status_error(status, b'{"status":"ERROR","error":"detail here"}', "http://h/x", None)
    assert type(err) is cls and text in str(err) and err.status == status and err.url == "http://h/x"
    assert err.retryable == (status in (408, 429) or status >= 500)


@pytest.mark.parametrize(
    ("status", "body", "cls", "kind"),
    [(403, TIMEFRAME, OutsidePlan, "outside_plan"), (403, ENTITLED, NotEntitled, "not_entitled"),
     (403, '{"status":"NOT_AUTHORIZED","message":"no"}', VendorPlanError, "plan_refused"),
     (404, '{"status":"NOT_FOUND","request_id":"r9","message":"Ticker not found."}', UnknownTicker,
      "unknown_ticker"),
     (404, '{"status":"NOT_FOUND","message":"Data not found."}', VendorNotFound, "not_found"),
     (400, '{"status":"ERROR","request_id":"r9","error":"bad from"}', VendorBadRequest, "bad_request")],
)
def test_status_error_tells_refusals_apart_with_request_id(
    status: int, body: str, cls: type, kind: str,
) -> None:
    """The vendor's words pick the refusal's class; its message and request_id ride in the error."""
    err = status_error(status, body.encode(), "http://h/x", None, "hdr-id")
    assert type(err) is cls and err.kind == kind and not err.retryable
    assert (kind in str(err)) == (kind not in ("plan_refused", "not_found"))
    assert err.vendor_message and err.vendor_message in str(err)
    rid = "r9" if '"r9"' in body else "hdr-id"
    assert err.request_id == rid and f"request_id {rid}" in str(err)


def test_status_error_never_echoes_the_key_when_body_contains_it() -> None:
    """Even a vendor body that repeats a key-bearing URL is redacted in the message."""
    err = status_error(400, b'{"error":"bad url /v2/x?apiKey=SeCrEtKeY123"}', "http://h/x", None)
    assert "SeCrEtKeY123" not in str(err)


def test_status_error_carries_retry_after_when_429_sends_one() -> None:
    """A 429 keeps the Retry-After seconds for the caller."""
    err = status_error(429, b"", "u", 3.0)
    assert err.retry_after == 3.0 and "wait 3s" in str(err)


@pytest.mark.parametrize(
    ("exc", "text"),
    [(aiohttp.ServerDisconnectedError(), "could not reach"), (TimeoutError(), "timed out"),
     (aiohttp.ClientPayloadError("cut"), "cut short"), (aiohttp.ClientOSError(), "could not reach")],
)
def test_transport_errors_map_aiohttp_failures_to_transient_with_cause(exc: Exception, text: str) -> None:
    """aiohttp and timeout exceptions become retryable vendor errors chained with from."""
    with pytest.raises(VendorTransientError, match=text) as info, transport_errors("http://h/x"):
        raise exc
    assert info.value.__cause__ is exc and info.value.url == "http://h/x"


@pytest.mark.parametrize(
    ("exc", "late_s"),
    [(TimeoutError(), 60.0), (aiohttp.SocketTimeoutError(), 60.0), (aiohttp.ConnectionTimeoutError(), None),
     (aiohttp.ClientOSError(), None)],
    ids=["total", "read", "connect", "reset"],
)
def test_transport_errors_say_how_late_a_sent_request_may_be_counted_when_it_timed_out(
        exc: Exception, late_s: float | None) -> None:
    """A request that timed out after it was sent is a VendorTimeout carrying the late bound; one that
    never left (no connection, or refused/reset) is a plain transient error the limiter frees at once."""
    with pytest.raises(VendorTransientError) as info, transport_errors("http://h/x", late_s=60.0):
        raise exc
    if late_s is None:
        assert not isinstance(info.value, VendorTimeout)
    else:
        assert isinstance(info.value, VendorTimeout) and info.value.late_s == late_s


def test_backoff_is_full_jitter_under_a_capped_exponential_ceiling() -> None:
    """Ceilings double from base to cap and every delay lies in [0, ceiling]."""
    policy = RetryPolicy(attempts=9, base_s=1.0, cap_s=10.0)
    assert [policy.ceiling(k) for k in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    tries = Tries(policy, rng=random.Random(7))
    delays = [tries.delay(3) for _ in range(500)]
    assert min(delays) >= 0.0 and max(delays) <= 4.0 and max(delays) > 3.0 and min(delays) < 1.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("0.5", 0.5), (None, None), ("soon", None), ("-4", 0.0),
     ("Wed, 01 Jan 2025 00:00:10 GMT", 10.0)],
)
def test_parse_retry_after_reads_seconds_and_http_dates(value: str | None, expected: float | None) -> None:
    """Delta-seconds and HTTP dates are understood; garbage is ignored."""
    assert parse_retry_after(value, now=datetime(2025, 1, 1, tzinfo=UTC)) == expected


def test_is_retryable_decides_by_class() -> None:
    """Retryability follows the error class, never its message."""
    assert is_retryable(VendorRateLimited("x")) and is_retryable(VendorTransientError("x"))
    assert not is_retryable(VendorAuthError("retry")) and not is_retryable(VendorUnavailable("x"))
    assert not is_retryable(ValueError("x"))


def test_tries_spend_attempts_429s_their_own_budget_and_honour_a_503s_retry_after() -> None:
    """The backoff hook: 4xx never retried; 429s spend 4 x attempts before they count; a 503's
    Retry-After lengthens the wait up to the cap; the attempts run out after the policy's count."""
    seen: list[tuple[int, float, str]] = []
    tries = Tries(RetryPolicy(attempts=2, base_s=1.0, cap_s=30.0),
                  lambda n, wait, e: seen.append((n, wait, type(e).__name__)), random.Random(1))
    assert tries(VendorAuthError("no")) is False and tries(ValueError("x")) is False
    assert tries(VendorUnavailable("open")) is False
    assert all(isinstance(tries(VendorRateLimited("429")), float) for _ in range(8))
    assert tries.spent == 0 and tries.most == 10
    wait = tries(VendorTransientError("503", status=503, retry_after=20.0))
    assert wait == 20.0 and tries.spent == 1
    assert tries(VendorTransientError("503", status=503)) is False  # the second counted failure
    assert len(seen) == 9 and seen[-1] == (9, 20.0, "VendorTransientError")


def test_client_refuses_construction_when_key_is_missing() -> None:
    """No key is a configuration error with the variable to set."""
    with pytest.raises(ConfigError, match="POLYGON_API_KEY"):
        PolygonClient("")
    with pytest.raises(ConfigError, match="POLYGON_API_KEY"):
        PolygonClient.from_settings(Settings())


def test_client_from_settings_takes_plan_and_policies() -> None:
    """from_settings wires rate, retries and breaker from Settings."""
    s = Settings(POLYGON_API_KEY="k-123456", POLYGON_BASE_URL="http://h:1", rate_limit="20/s",
                 breaker_threshold=2, retry_attempts=3)
    c = PolygonClient.from_settings(s)
    assert c.rate_limit.requests == 20 and c.breaker.threshold == 2 and str(c.base_url) == "http://h:1"
    st = c.stats()
    assert st.total_requests == 0 and st.breaker_state is BreakerState.CLOSED and st.limiter_rate == 20


async def test_client_rejects_markets_without_grouped_daily_and_use_after_close() -> None:
    """grouped_daily names the supported markets; a closed client refuses new work."""
    c = PolygonClient("k-123456", "http://127.0.0.1:1")
    with pytest.raises(UsageError, match="stocks, crypto or forex"):
        await c.grouped_daily(datetime(2024, 1, 2).date(), "indices")
    await c.aclose()
    with pytest.raises(UsageError, match="closed"):
        await c.market_status_upcoming()
