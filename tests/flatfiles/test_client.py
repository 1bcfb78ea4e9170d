"""mdw's flat-file client (obstore) against the simulator's S3 endpoint: listing, errors, resumes."""

from __future__ import annotations

import gzip
from datetime import date

import pytest

from mdw.config import load_settings
from mdw.domain import NEW_YORK, local_midnight_ms
from mdw.errors import ConfigError, VendorAuthError, VendorNotFound, VendorPlanError, VendorTransientError
from mdw.flatfiles.keys import dataset_named
from mdw.flatfiles.s3 import FlatFileClient
from mdw.simulator import FaultConfig, SimServer
from mdw.simulator.testing import SimFactory

MINUTES = dataset_named("us_stocks_sip/minute_aggs_v1")
NOW = local_midnight_ms(date(2024, 4, 2), NEW_YORK)
DAY = date(2024, 3, 7)


def client_for(sim: SimServer, secret: str | None = None, **kwargs: object) -> FlatFileClient:
    key_id, real = sim.flatfile_key
    return FlatFileClient(sim.base_url, key_id, secret or real, **kwargs)  # type: ignore[arg-type]


async def _fetch(client: FlatFileClient, key: str) -> bytes:
    info = await client.head(key)
    return b"".join([part async for part in client.download(info, chunk=4096)])


async def test_client_lists_a_month_with_sizes_and_etags_when_published(sim_factory: SimFactory) -> None:
    """list_month returns the month's published days with the sizes and ETags HEAD reports."""
    sim = await sim_factory(n_stocks=6, now_ms=NOW)
    client = client_for(sim)
    files = await client.list_month(MINUTES, 2024, 3)
    march = MINUTES.days(date(2024, 3, 1), date(2024, 3, 31))
    assert [f.key for f in files] == [MINUTES.key(d) for d in march]
    head = await client.head(files[4].key)
    assert head == files[4]
    assert client.stats.by_kind == {"list": 1, "head": 1}


async def test_client_downloads_the_exact_bytes_when_nothing_fails(sim_factory: SimFactory) -> None:
    """The streamed chunks join into the object the simulator serves."""
    sim = await sim_factory(n_stocks=6, now_ms=NOW)
    data = await _fetch(client_for(sim), MINUTES.key(DAY))
    assert data == await sim.flatfiles.body(MINUTES, DAY)
    assert gzip.decompress(data).startswith(b"ticker,volume,")


async def test_client_resumes_a_dropped_body_with_ranges_when_the_connection_breaks(
    sim_factory: SimFactory,
) -> None:
    """Half the GETs cut halfway: the download resumes from its offset until it has the whole file."""
    sim = await sim_factory(n_stocks=6, now_ms=NOW, faults=FaultConfig(truncate_rate=0.5))
    client = client_for(sim, max_retries=0)
    data = await _fetch(client, MINUTES.key(DAY))
    assert data == await sim.flatfiles.body(MINUTES, DAY)
    assert client.stats.resumes >= 1 and sim.stats()["faults"]["truncate"] == client.stats.resumes
    assert client.stats.bytes == len(data)


async def test_client_fails_the_download_when_the_file_is_replaced_midway(sim_factory: SimFactory) -> None:
    """A replacement between two ranged GETs is a 412 (If-Match), never a file stitched from two versions."""
    sim = await sim_factory(n_stocks=6, now_ms=NOW)
    client = client_for(sim)
    info = await client.head(MINUTES.key(DAY))
    sim.set_faults(FaultConfig(truncate_rate=1.0))  # the first GET drops halfway
    parts = client.download(info, chunk=1024)
    first = await anext(parts)
    assert first
    sim.flatfiles.replace([DAY])  # ... and the file is replaced before the resume
    with pytest.raises(VendorTransientError) as caught:
        async for _ in parts:
            pass
    assert caught.value.status == 412


async def test_client_maps_403s_by_their_s3_code_when_refused(sim_factory: SimFactory) -> None:
    """Bad secret -> VendorAuthError; an unentitled market or unpublished day -> VendorPlanError; 404."""
    sim = await sim_factory(n_stocks=3, now_ms=NOW, flatfile_denied=frozenset({"global_crypto"}))
    with pytest.raises(VendorAuthError):
        await client_for(sim, secret="not-the-secret").list_month(MINUTES, 2024, 3)
    with pytest.raises(VendorAuthError):
        await client_for(sim, secret="not-the-secret").head(MINUTES.key(DAY))
    client = client_for(sim)
    with pytest.raises(VendorPlanError):
        await client.head("global_crypto/minute_aggs_v1/2024/03/2024-03-07.csv.gz")
    with pytest.raises(VendorPlanError):
        await client.head(MINUTES.key(date(2024, 4, 2)))
    with pytest.raises(VendorNotFound):
        await client.head(MINUTES.key(date(2024, 3, 9)))


async def test_client_never_puts_the_secret_in_an_error_when_a_request_fails(sim_factory: SimFactory) -> None:
    """The message of a refused request names neither the secret nor the key id."""
    sim = await sim_factory(n_stocks=3, now_ms=NOW)
    with pytest.raises(VendorAuthError) as caught:
        await client_for(sim, secret="s3cr3t-value-xyz").head(MINUTES.key(DAY))
    text = str(caught.value) + repr(caught.value.__cause__)
    assert "s3cr3t-value-xyz" not in text


def test_client_from_settings_needs_both_halves_of_the_key_pair() -> None:
    """Without MDW_FLATFILES_KEY_ID and MDW_FLATFILES_SECRET the client is a ConfigError naming both."""
    with pytest.raises(ConfigError, match="MDW_FLATFILES_KEY_ID"):
        FlatFileClient.from_settings(load_settings(flatfiles_key_id="id-only"))
    settings = load_settings(flatfiles_key_id="kid", flatfiles_secret="sec",
                             flatfiles_endpoint="http://127.0.0.1:9")
    client = FlatFileClient.from_settings(settings)
    assert client.endpoint == "http://127.0.0.1:9" and "sec" not in repr(client)
