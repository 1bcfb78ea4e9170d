"""The simulator's flat files over real S3 (boto3, a second S3 client besides mdw's obstore one).

Checks the protocol (SigV4, ListObjectsV2 paging and delimiters, ranges, ETags, the error XML)
and the content (the same bars as REST, vw aside), on a small universe with a pinned data clock.
"""

from __future__ import annotations

import asyncio
import gzip
import io
from collections.abc import Callable
from datetime import date
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from mdw.domain import NEW_YORK, Timeframe, local_midnight_ms
from mdw.flatfiles.keys import dataset_named, published_at_ms
from mdw.simulator import SimServer
from mdw.simulator.testing import SimFactory

MINUTES = dataset_named("us_stocks_sip/minute_aggs_v1")
DAYS = dataset_named("us_stocks_sip/day_aggs_v1")
CRYPTO = dataset_named("global_crypto/minute_aggs_v1")
NOW = local_midnight_ms(date(2024, 4, 2), NEW_YORK)
DAY = date(2024, 3, 7)


def _s3(sim: SimServer, key_id: str | None = None, secret: str | None = None) -> Any:
    kid, sec = sim.flatfile_key
    return boto3.client("s3", endpoint_url=sim.base_url, aws_access_key_id=key_id or kid,
                        aws_secret_access_key=secret or sec, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


async def _call(fn: Callable[..., Any], **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, **kwargs)


async def _error(fn: Callable[..., Any], **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as info:
        await _call(fn, **kwargs)
    err = info.value.response
    return int(err["ResponseMetadata"]["HTTPStatusCode"]), str(err["Error"]["Code"])


@pytest.fixture
async def files_sim(sim_factory: SimFactory) -> SimServer:
    return await sim_factory(n_stocks=12, n_crypto=3, n_fx=2, now_ms=NOW)


async def test_flatfiles_list_pages_with_continuation_tokens_when_max_keys_is_small(
    files_sim: SimServer,
) -> None:
    """A month listed five keys at a time comes back whole, in key order, across continuation tokens."""
    s3 = _s3(files_sim)
    keys: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        kwargs: dict[str, Any] = {"Bucket": "flatfiles", "Prefix": DAYS.month_prefix(2024, 3), "MaxKeys": 5}
        if token:
            kwargs["ContinuationToken"] = token
        page = await _call(s3.list_objects_v2, **kwargs)
        pages += 1
        keys.extend(c["Key"] for c in page.get("Contents", []))
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    expected = [DAYS.key(d) for d in DAYS.days(date(2024, 3, 1), date(2024, 3, 31))]
    assert keys == expected and len(expected) == 20
    assert pages == 4


async def test_flatfiles_list_groups_common_prefixes_when_a_delimiter_is_given(files_sim: SimServer) -> None:
    """Delimiter '/' at the root lists one common prefix per market, and no objects."""
    page = await _call(_s3(files_sim).list_objects_v2, Bucket="flatfiles", Prefix="", Delimiter="/")
    prefixes = [p["Prefix"] for p in page["CommonPrefixes"]]
    assert prefixes == ["global_crypto/", "global_forex/", "us_stocks_sip/"]
    assert "Contents" not in page


async def test_flatfiles_list_shows_a_day_only_from_11_et_the_next_day(sim_factory: SimFactory) -> None:
    """With the clock at 10:59 ET on March 8 the 7th is not listed; at 11:00 it is."""
    for minutes, listed in ((-1, False), (0, True)):
        sim = await sim_factory(n_stocks=5, now_ms=published_at_ms(DAY) + minutes * 60_000)
        page = await _call(_s3(sim).list_objects_v2, Bucket="flatfiles", Prefix=DAYS.month_prefix(2024, 3))
        keys = [c["Key"] for c in page.get("Contents", [])]
        assert (DAYS.key(DAY) in keys) is listed
        assert keys[-1] == DAYS.key(DAY if listed else date(2024, 3, 6))


async def test_flatfiles_get_serves_a_byte_range_with_the_listed_etag(files_sim: SimServer) -> None:
    """A ranged GET returns those bytes of the same object, whose size and ETag the listing gave."""
    s3 = _s3(files_sim)
    listing = await _call(s3.list_objects_v2, Bucket="flatfiles", Prefix=MINUTES.key(DAY))
    entry = listing["Contents"][0]
    whole = await _call(s3.get_object, Bucket="flatfiles", Key=MINUTES.key(DAY))
    body = whole["Body"].read()
    assert len(body) == entry["Size"] and whole["ETag"] == entry["ETag"]
    part = await _call(s3.get_object, Bucket="flatfiles", Key=MINUTES.key(DAY), Range="bytes=100-1099")
    assert part["ContentRange"] == f"bytes 100-1099/{len(body)}"
    assert part["Body"].read() == body[100:1100]
    head = await _call(s3.head_object, Bucket="flatfiles", Key=MINUTES.key(DAY))
    assert head["ContentLength"] == len(body) and head["ETag"] == entry["ETag"]
    assert head["LastModified"].timestamp() * 1000 == published_at_ms(DAY)


async def test_flatfiles_errors_are_s3_error_documents_when_a_request_fails(files_sim: SimServer) -> None:
    """Missing key 404 NoSuchKey; unknown key id and wrong secret 403 with their codes; a stale ETag 412."""
    s3 = _s3(files_sim)
    missing = MINUTES.key(date(2024, 3, 9))
    assert await _error(s3.get_object, Bucket="flatfiles", Key=missing) == (404, "NoSuchKey")
    bad_id = _s3(files_sim, key_id="nobody")
    assert await _error(bad_id.list_objects_v2, Bucket="flatfiles", Prefix="") == (403, "InvalidAccessKeyId")
    bad_secret = _s3(files_sim, secret="wrong-secret")
    assert await _error(bad_secret.get_object, Bucket="flatfiles", Key=MINUTES.key(DAY)) == (
        403, "SignatureDoesNotMatch")
    assert await _error(s3.get_object, Bucket="flatfiles", Key=MINUTES.key(DAY), IfMatch='"stale"') == (
        412, "PreconditionFailed")
    assert await _error(s3.get_object, Bucket="flatfiles", Key=MINUTES.key(DAY), Range="bytes=99999999-") == (
        416, "InvalidRange")


async def test_flatfiles_refuse_unpublished_and_unentitled_files_with_403(files_sim: SimServer) -> None:
    """A day not yet published and a market the key may not read both answer 403 AccessDenied."""
    s3 = _s3(files_sim)
    assert await _error(s3.get_object, Bucket="flatfiles", Key=MINUTES.key(date(2024, 4, 2))) == (
        403, "AccessDenied")
    files_sim.flatfiles.deny(["us_stocks_sip"])
    assert await _error(s3.get_object, Bucket="flatfiles", Key=MINUTES.key(DAY)) == (403, "AccessDenied")
    listing = await _call(s3.list_objects_v2, Bucket="flatfiles", Prefix=DAYS.month_prefix(2024, 3))
    assert listing["KeyCount"] == 20  # listing stays allowed, as on the vendor
    assert (await _call(s3.head_object, Bucket="flatfiles", Key=CRYPTO.key(DAY)))["ContentLength"] > 0


def _rows(body: bytes) -> list[list[str]]:
    lines = gzip.decompress(body).decode().splitlines()
    return [line.split(",") for line in lines]


async def test_flatfiles_hold_the_rest_bars_without_vw_when_read_as_csv(files_sim: SimServer) -> None:
    """Every ticker's minute bars in the file equal the aggregates endpoint's (ns times, no vw)."""
    body = (await _call(_s3(files_sim).get_object, Bucket="flatfiles", Key=MINUTES.key(DAY)))["Body"].read()
    rows = _rows(body)
    assert rows[0] == ["ticker", "volume", "open", "close", "high", "low", "window_start", "transactions"]
    rng = MINUTES.day_range(DAY)
    seen = 0
    for ticker in files_sim.market.universe(MINUTES.asset):
        rest = files_sim.market.aggregates(ticker, Timeframe(1, "m"), rng.start_ms, rng.end_ms)
        mine = [r for r in rows[1:] if r[0] == ticker]
        assert len(mine) == len(rest)
        if not mine:
            continue
        seen += 1
        cols = np.array(mine)[:, 1:].astype(np.float64)
        assert np.array_equal(cols[:, 0], rest.v) and np.array_equal(cols[:, 1], rest.o)
        assert np.array_equal(cols[:, 2], rest.c) and np.array_equal(cols[:, 3], rest.h)
        assert np.array_equal(cols[:, 4], rest.l)
        assert [int(r[6]) for r in mine] == [t * 1_000_000 for t in rest.t.tolist()]
        assert np.array_equal(cols[:, 6], rest.n)
    assert seen == 12


async def test_flatfiles_spell_pairs_with_a_dash_unless_switched_off(sim_factory: SimFactory) -> None:
    """Crypto files name X:BTC-USD by default and X:BTCUSD with flatfile_dashed_pairs off."""
    for dashed, name in ((True, "X:BTC-USD"), (False, "X:BTCUSD")):
        sim = await sim_factory(n_stocks=1, n_crypto=2, n_fx=0, now_ms=NOW, flatfile_dashed_pairs=dashed)
        body = (await _call(_s3(sim).get_object, Bucket="flatfiles", Key=CRYPTO.key(DAY)))["Body"].read()
        assert {r[0] for r in _rows(body)[1:]} >= {name}


async def test_flatfiles_replace_gives_a_new_etag_and_changed_bars(files_sim: SimServer) -> None:
    """After a replacement the day's file has another ETag, a later Last-Modified and different volumes."""
    s3 = _s3(files_sim)
    before = await _call(s3.get_object, Bucket="flatfiles", Key=MINUTES.key(DAY))
    old_body = before["Body"].read()
    files_sim.flatfiles.replace([DAY])
    after = await _call(s3.get_object, Bucket="flatfiles", Key=MINUTES.key(DAY))
    new_body = after["Body"].read()
    assert after["ETag"] != before["ETag"] and new_body != old_body
    assert after["LastModified"] >= before["LastModified"]
    old, new = _rows(old_body), _rows(new_body)
    assert len(old) == len(new)
    changed = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
    assert changed and all(a[0] == b[0] and a[2:6] == b[2:6] and a[1] != b[1] for a, b in changed)
    other = await _call(s3.head_object, Bucket="flatfiles", Key=MINUTES.key(date(2024, 3, 6)))
    assert other["ETag"] == files_sim.flatfiles.etag(MINUTES, date(2024, 3, 6))  # other days untouched


async def test_flatfiles_day_file_totals_follow_a_replacement(files_sim: SimServer) -> None:
    """A replaced day file's volume per ticker is the sum of the replaced minute file's volumes."""
    files_sim.flatfiles.replace([DAY])
    minutes = files_sim.flatfiles.bars(MINUTES, DAY)
    days = files_sim.flatfiles.bars(DAYS, DAY)
    assert set(days) == set(minutes)
    for ticker, bar in days.items():
        assert float(bar.v[0]) == pytest.approx(float(minutes[ticker].v.sum()))
        assert int(bar.n[0]) == int(minutes[ticker].n.sum())


async def test_flatfiles_switches_are_reachable_over_http(files_sim: SimServer) -> None:
    """POST /_sim/flatfiles replaces days and denies markets; bad input is a 400."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{files_sim.base_url}/_sim/flatfiles",
                             json={"replace": ["2024-03-07"], "deny": ["global_crypto"]}) as resp:
            body = await resp.json()
            assert resp.status == 200 and body["revisions"] == {"2024-03-07": 1}
            assert body["denied"] == ["global_crypto"]
        async with http.post(f"{files_sim.base_url}/_sim/flatfiles", json={"replace": ["March"]}) as resp:
            assert resp.status == 400
    assert files_sim.flatfiles.revision(DAY) == 1


async def test_flatfiles_truncation_fault_drops_the_body_midway(sim_factory: SimFactory) -> None:
    """With truncate_rate 1 a GET sends about half the body, then the connection drops."""
    from mdw.simulator import FaultConfig

    sim = await sim_factory(n_stocks=5, now_ms=NOW, faults=FaultConfig(truncate_rate=1.0))
    s3 = _s3(sim)
    with pytest.raises(Exception) as info:
        got = await _call(s3.get_object, Bucket="flatfiles", Key=MINUTES.key(DAY))
        await asyncio.to_thread(got["Body"].read)
    assert not isinstance(info.value, AssertionError)
    assert sim.stats()["faults"]["truncate"] >= 1


def test_flatfiles_body_is_one_gzip_member_of_csv_text() -> None:
    """The rendering is a gzip container that any gunzip reads (not raw deflate)."""
    from mdw.simulator.flatfiles import FlatFiles
    from mdw.simulator.market import Market

    files = FlatFiles(Market(42, now_ms=NOW, n_stocks=2, n_crypto=0, n_fx=0))
    body = files.render(DAYS, DAY)
    with gzip.GzipFile(fileobj=io.BytesIO(body)) as gz:
        text = gz.read().decode()
    assert text.startswith("ticker,volume,open,close,high,low,window_start,transactions\n")
    assert len(text.splitlines()) == 3
