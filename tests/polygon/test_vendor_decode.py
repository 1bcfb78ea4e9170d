"""Decoding vendor bodies into columns: tolerant of the vendor's variations, never of damage."""

from __future__ import annotations

import json
import math
from datetime import date

import msgspec
import numpy as np
import pytest

from mdw.domain import MISSING_N, MISSING_OTC, Timeframe
from mdw.errors import VendorTransientError
from mdw.polygon import decode as dec

TF = Timeframe.parse("1m")


def _page(results: list[dict[str, object]] | None, **top: object) -> bytes:
    body: dict[str, object] = {"ticker": "AAPL", "status": "OK", "request_id": "r", **top}
    if results is not None:
        body["results"] = results
    return json.dumps(body).encode()


def test_decode_aggs_columns_match_input_exactly_when_values_are_large() -> None:
    """t (13-digit ms), n and fractional v survive the float64 matrix exactly."""
    rows = [{"v": 9099.618093, "vw": 1.5, "o": 1.25, "c": 1.5, "h": 2.0, "l": 1.0, "t": 1_735_689_600_000 + i,
             "n": 2**40 + i} for i in range(3)]
    batch, nxt = dec.decode_aggs(_page(rows), "AAPL", TF, "u")
    assert nxt is None
    assert batch.t.tolist() == [r["t"] for r in rows]
    assert batch.n.tolist() == [r["n"] for r in rows]
    assert batch.v.tolist() == [9099.618093] * 3
    assert (batch.o.tolist(), batch.h.tolist(), batch.l.tolist(), batch.c.tolist()) == (
        [1.25] * 3, [2.0] * 3, [1.0] * 3, [1.5] * 3)


def test_decode_aggs_returns_empty_batch_when_results_key_is_missing() -> None:
    """An empty range has no results key: that is an empty batch, not an error."""
    batch, nxt = dec.decode_aggs(_page(None, resultsCount=0, queryCount=0), "AAPL", TF, "u")
    assert len(batch) == 0 and nxt is None


def test_decode_aggs_accepts_delayed_status_and_next_url() -> None:
    """status DELAYED is a success; next_url is passed on."""
    batch, nxt = dec.decode_aggs(
        _page([{"o": 1, "h": 1, "l": 1, "c": 1, "v": 1, "t": 60_000}], status="DELAYED", next_url="http://n"),
        "AAPL", TF, "u")
    assert len(batch) == 1 and nxt == "http://n"


def test_decode_aggs_fills_nan_and_missing_n_when_vw_n_or_volume_are_missing() -> None:
    """Index bars (o h l c t only) and bars without vw/n decode with NaN volume fields and n missing
    (MISSING_N, stored as NULL), never 0."""
    batch, _ = dec.decode_aggs(
        _page([{"o": 1, "h": 2, "l": 0.5, "c": 1.5, "t": 60_000},
               {"v": 3.5, "o": 1, "h": 2, "l": 0.5, "c": 1.5, "t": 120_000, "otc": True}]),
        "I:SPX", TF, "u")
    assert math.isnan(batch.v[0]) and math.isnan(batch.vw[0]) and math.isnan(batch.vw[1])
    assert batch.v[1] == 3.5
    assert batch.n.tolist() == [MISSING_N, MISSING_N]


@pytest.mark.parametrize(
    "body",
    [b'{"status":"OK","results":[{"o":1,"h":1,', b"", b"<html>502 Bad Gateway</html>",
     b'{"status":"OK","results":{"o":1}}', b'[{"o":1}]', b'{"status":5,"results":[]}'],
    ids=["truncated", "empty", "html", "results-not-a-list", "not-an-object", "status-not-text"],
)
def test_decode_aggs_raises_retryable_error_when_body_is_damaged(body: bytes) -> None:
    """Malformed, truncated or off-schema envelopes raise a retryable error, never "no bars".

    (A bad value inside one bar is not damage: see test_vendor_bad_values.py.)"""
    with pytest.raises(VendorTransientError, match="unreadable body") as info:
        dec.decode_aggs(body, "AAPL", TF, "http://v/x")
    assert info.value.retryable and info.value.url == "http://v/x"
    assert isinstance(info.value.__cause__, msgspec.DecodeError)


def test_decode_aggs_raises_retryable_error_when_200_says_error() -> None:
    """A 200 whose status is ERROR is a failure the caller retries, never an empty range."""
    with pytest.raises(VendorTransientError, match="status ERROR: boom"):
        dec.decode_aggs(_page(None, status="ERROR", error="boom"), "AAPL", TF, "u")


def test_decode_grouped_keeps_ticker_per_row() -> None:
    """Grouped-daily rows keep their T and bar fields."""
    rows = dec.decode_grouped(json.dumps({"status": "OK", "results": [
        {"T": "AAPL", "v": 10, "vw": 1, "o": 1, "c": 1, "h": 1, "l": 1, "t": 1602705600000, "n": 3},
    ]}).encode(), "u")
    m = dec.bars_to_columns(rows)
    assert rows[0].T == "AAPL" and m[:8, 0].tolist() == [10, 1, 1, 1, 1, 1, 1602705600000, 3]
    assert math.isnan(m[8, 0])  # no otc flag


def test_decode_aggs_keeps_otc_flag_per_bar_as_sent() -> None:
    """``otc: true``/``false`` is kept per bar; a bar without the key (or with a number, which is not
    a flag) has none (MISSING_OTC, stored as NULL)."""
    bar = {"v": 1, "o": 1, "h": 1, "l": 1, "c": 1}
    batch, _ = dec.decode_aggs(_page([dict(bar, t=60_000, otc=True), dict(bar, t=120_000),
                                      dict(bar, t=180_000, otc=False), dict(bar, t=240_000, otc=1)]),
                               "OTCX", TF, "u")
    assert batch.otc.tolist() == [1, MISSING_OTC, 0, MISSING_OTC]
    plain, _ = dec.decode_aggs(_page([dict(bar, t=60_000)]), "AAPL", TF, "u")
    assert plain.otc.tolist() == [MISSING_OTC]


def test_decode_aggs_keeps_otc_flag_on_the_lenient_path() -> None:
    """A page read leniently (a bar has a bad value) keeps each bar's flag: the bad bar, held by the
    error to be quarantined, carries the flag it was sent with."""
    body = (b'{"status":"OK","results":[{"v":1,"o":1,"h":1,"l":1,"c":1,"t":60000,"otc":true},'
            b'{"v":1,"o":1,"h":1,"l":1,"c":1,"t":120000,"n":null,"otc":true}]}')
    with pytest.raises(dec.InvalidBarsError) as info:
        dec.decode_aggs(body, "OTCX", TF, "u")
    assert info.value.bars.t.tolist() == [120_000] and info.value.bars.otc.tolist() == [1]
    loose = dec.loose_otc([{"otc": True}, {"otc": "yes"}, {}, 5])
    assert loose[0] == 1.0 and np.isnan(loose[1:]).all()


def test_decode_grouped_keeps_otc_flag_per_row() -> None:
    """Grouped-daily rows keep the vendor's otc flag, strict and lenient paths alike."""
    row = {"v": 10, "vw": 1, "o": 1, "c": 1, "h": 1, "l": 1, "t": 1602705600000, "n": 3}
    rows = dec.decode_grouped(json.dumps({"status": "OK", "results": [
        dict(row, T="OTCX", otc=True), dict(row, T="AAPL")]}).encode(), "u")
    assert dec.bars_to_columns(rows)[8].tolist()[0] == 1.0 and math.isnan(dec.bars_to_columns(rows)[8, 1])
    bad = json.dumps({"status": "OK", "results": [dict(row, T="OTCX", otc=True), dict(row, T="B", n=None)]})
    kept = dec.decode_grouped(bad.encode(), "u")
    assert [r.T for r in kept] == ["OTCX"] and kept[0].otc == 1.0


def test_decode_dividends_and_splits_map_to_domain_types() -> None:
    """Reference rows become Dividend/Split with dates parsed and optional fields defaulted."""
    divs, nxt = dec.decode_dividends(json.dumps({"status": "OK", "next_url": "http://n", "results": [
        {"id": "E1", "ticker": "AAPL", "ex_dividend_date": "2024-02-09", "cash_amount": 0.24,
         "pay_date": "2024-02-15", "frequency": 4, "dividend_type": "CD", "currency": "USD"}]}).encode(), "u")
    assert nxt == "http://n"
    assert divs[0].ex_dividend_date == date(2024, 2, 9) and divs[0].pay_date == date(2024, 2, 15)
    assert divs[0].record_date is None and divs[0].cash_amount == 0.24 and divs[0].frequency == 4
    splits, _ = dec.decode_splits(json.dumps({"status": "OK", "results": [
        {"id": "S1", "ticker": "AAPL", "execution_date": "2020-08-31", "split_from": 1, "split_to": 4},
    ]}).encode(), "u")
    assert splits[0].ratio == 4.0 and splits[0].execution_date == date(2020, 8, 31)


def test_decode_list_reads_bare_array_and_rejects_damage() -> None:
    """market status upcoming is a bare array; a truncated one raises."""
    assert dec.decode_list(b'[{"exchange":"NYSE","status":"closed"}]', "u")[0]["status"] == "closed"
    with pytest.raises(VendorTransientError):
        dec.decode_list(b'[{"exchange":"NY', "u")


def test_error_detail_reads_error_or_message_key() -> None:
    """401/429 bodies use 'error', 403/404 use 'message'; non-JSON gives an excerpt."""
    assert dec.error_detail(b'{"status":"ERROR","error":"Unknown API Key"}') == "Unknown API Key"
    assert dec.error_detail(b'{"status":"NOT_FOUND","message":"Ticker not found."}') == "Ticker not found."
    assert dec.error_detail(b"<html><title>502 Bad\n Gateway</title></html>") == "502 Bad Gateway"
    assert dec.error_detail(b"upstream   connect error") == "upstream connect error"


def test_bars_to_columns_is_empty_when_no_bars() -> None:
    """No bars gives a (9, 0) matrix."""
    assert dec.bars_to_columns([]).shape == (9, 0)
    assert np.asarray(dec.bars_to_columns([])).dtype == np.float64
