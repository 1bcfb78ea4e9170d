"""A bad value in one bar is a data error about that page: the bar is named and refused, never wrapped.

Each malformed value the vendor might send decodes into an :class:`InvalidBarsError` holding that
bar with its reason (what the client quarantines), while a damaged body stays "unreadable".
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdw.domain import MISSING_N, Timeframe
from mdw.errors import VendorTransientError
from mdw.polygon import decode as dec
from mdw.polygon import screen as scr

TF = Timeframe.parse("1m")
GOOD = {"v": 100, "vw": 10.5, "o": 10.0, "c": 11.0, "h": 11.5, "l": 9.5, "n": 7}


def _body(bad: str, field: str) -> bytes:
    """A page of three bars whose middle bar's ``field`` is the raw JSON text ``bad`` (or absent)."""
    rows: list[dict[str, object]] = [dict(GOOD, t=60_000 * (i + 1)) for i in range(3)]
    if bad == "<absent>":
        del rows[1][field]
    else:
        rows[1][field] = "@BAD@"
    return json.dumps({"status": "OK", "results": rows, "request_id": "r"}).replace('"@BAD@"', bad).encode()


CASES = [
    ("o", "null", "o is null"),
    ("h", "NaN", "h is not a finite number (nan)"),
    ("l", "-Infinity", "l is not a finite number (-inf)"),
    ("c", '"11.0"', "c is not a number ('11.0')"),
    ("v", "null", "v is null"),
    ("t", "120000.5", "t is not an integer (120000.5)"),
    ("t", "120000.0", "t is not an integer (120000.0)"),
    ("t", "<absent>", "t is missing"),
    ("t", "1" + "0" * 30, "t is not a whole number"),
    ("n", "1" + "0" * 30, "n is out of range"),
    ("n", "1e30", "n is out of range"),
    ("n", "-3", "n is out of range"),
    ("n", "2.5", "n is out of range"),
    ("n", "true", "n is not a number (True)"),
    ("v", "1e30", "v is out of range"),
    ("vw", "-1", "vw is out of range"),
    ("o", "0", "price is zero or negative"),
    ("l", "-9.5", "price is zero or negative"),
    ("h", "1e15", "price is out of range"),
]


@pytest.mark.parametrize(("field", "bad", "reason"), CASES, ids=[f"{f}={b}" for f, b, _ in CASES])
def test_decode_aggs_names_bad_bar_with_reason_when_one_value_is_malformed(
    field: str, bad: str, reason: str
) -> None:
    """The middle bar is refused with its reason; the error is an invalid-bars error, not "unreadable"."""
    with pytest.raises(dec.InvalidBarsError) as info:
        dec.decode_aggs(_body(bad, field), "AAPL", TF, "http://v/x")
    err = info.value
    assert "unreadable" not in str(err) and reason.split(" (")[0] in str(err)
    assert err.rows == [1] and len(err.bars) == 1 and reason in err.reasons[0]
    assert int(err.bars.n[0]) in (MISSING_N, 7)  # never a wrapped count: a bad n is kept as missing
    assert int(err.bars.t[0]) in (0, 120_000)


def test_decode_aggs_keeps_exact_n_when_n_is_large_but_exact() -> None:
    """The largest exact count passes; one past it is refused instead of rounding or wrapping."""
    ok, _ = dec.decode_aggs(_body(str(2**53 - 1), "n"), "AAPL", TF, "u")
    assert int(ok.n[1]) == 2**53 - 1
    with pytest.raises(dec.InvalidBarsError, match="n is out of range"):
        dec.decode_aggs(_body(str(2**63), "n"), "AAPL", TF, "u")


def test_decode_aggs_refuses_every_copy_when_duplicate_t_has_different_values() -> None:
    """Two bars at one t with different values: which is right is unknown, so both are refused;
    an identical repeat is not an error (de-duplicated later)."""
    rows = [dict(GOOD, t=60_000), dict(GOOD, t=120_000), dict(GOOD, t=120_000, c=10.5), dict(GOOD, t=180_000),
            dict(GOOD, t=180_000)]
    batch, _ = dec.decode_aggs(json.dumps({"status": "OK", "results": rows}).encode(), "AAPL", TF, "u")
    with pytest.raises(dec.InvalidBarsError) as info:
        dec.check_bars(batch, "u")  # as the client checks every page
    assert info.value.rows == [1, 2]
    assert set(info.value.reasons) == {"duplicate timestamp with different values"}


def test_decode_aggs_is_unreadable_only_when_body_is_damaged() -> None:
    """A truncated page with a NaN in it is still a damaged body (retried as unreadable)."""
    body = _body("NaN", "h")
    with pytest.raises(VendorTransientError, match="unreadable body") as info:
        dec.decode_aggs(body[: len(body) // 2], "AAPL", TF, "u")
    assert not isinstance(info.value, dec.InvalidBarsError)


def test_screen_never_wraps_when_converting_out_of_range_values() -> None:
    """to_int maps what int64 cannot hold exactly to the missing value instead of wrapping."""
    x = np.array([1e30, -1.0, np.nan, np.inf, 2.5, 42.0])
    assert scr.to_int(x, -1).tolist() == [-1, -1, -1, -1, -1, 42]


@pytest.mark.parametrize("bad", ["NaN", "null", '"1"', "1" + "0" * 30])
def test_decode_grouped_leaves_out_row_when_one_value_is_malformed(bad: str) -> None:
    """A grouped-daily row with a bad value is left out (its ticker is then asked for on its own);
    the other rows are kept exactly."""
    rows = [dict(GOOD, T=tk, t=1_709_586_000_000) for tk in ("A", "B", "C")]
    body = json.dumps({"status": "OK", "results": rows}).replace('"n": 7, "T": "B"', f'"n": {bad}, "T": "B"')
    assert bad in body
    kept = dec.decode_grouped(body.encode(), "u")
    assert [r.T for r in kept] == ["A", "C"]
    first = dec.bars_to_columns(kept)[:8, 0].tolist()
    assert first == [100, 10.5, 10.0, 11.0, 11.5, 9.5, 1_709_586_000_000, 7]


def _clean_matrix() -> np.ndarray:
    """Three good bars as the (9, 3) matrix decode_aggs screens (``v vw o c h l t n otc`` rows)."""
    rows = [[100.0, 10.5, 10.0, 11.0, 11.5, 9.5, 60_000.0 * (i + 1), 7.0, np.nan] for i in range(3)]
    return np.ascontiguousarray(np.asarray(rows).T)


BAD_NUMBERS = [np.nan, np.inf, -np.inf, -1.0, 0.0, 0.5, 1e12, 1e18, 2.0**53, 1e30]


@pytest.mark.parametrize("row", range(8))
@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_screen_fast_path_agrees_with_every_check_when_one_value_is_bad(
        row: int, bad: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-pass "page is clean" test that lets screen skip its per-check masks passes a page
    only when the full checks find nothing (a bad value is never waved through by the fast path)."""
    m = _clean_matrix()
    m[row, 1] = bad
    fast = scr.screen(m)
    monkeypatch.setattr(scr, "_all_clean", lambda _m: False)
    full = scr.screen(m)
    assert fast == full
    assert scr.screen(_clean_matrix()) == {}


@pytest.mark.parametrize("otc", [np.nan, 1.0, 0.0])
@pytest.mark.parametrize("n", [7.0, np.nan])
def test_batch_from_matrix_gives_same_columns_when_page_is_screened_clean(otc: float, n: float) -> None:
    m = _clean_matrix()
    m[7, 1], m[8, :] = n, otc
    fast = dec.batch_from_matrix("X", TF, m, clean=True)
    full = dec.batch_from_matrix("X", TF, m)
    for name in ("t", "o", "h", "l", "c", "v", "vw", "n", "otc"):
        got, want = getattr(fast, name), getattr(full, name)
        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=want.dtype.kind == "f"), name
    assert int(fast.n[1]) == (MISSING_N if n != n else 7)
