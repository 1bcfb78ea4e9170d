"""BarBatch: columnar storage, and validate()/problems() naming exactly the bad rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mdw.domain import BarBatch, Timeframe
from mdw.errors import UsageError, ValidationError

M1 = Timeframe.parse("1m")
T0 = 1_704_204_000_000  # 2024-01-02T14:00:00Z, a whole minute and hour


def batch(size: int = 5, timeframe: Timeframe = M1, **overrides: list[float] | list[int]) -> BarBatch:
    """A valid batch of ``size`` consecutive bars, with some columns replaced."""
    step = timeframe.fixed_ms or 86_400_000
    cols: dict[str, object] = {
        "t": [T0 + i * step for i in range(size)],
        "o": [10.0 + i for i in range(size)],
        "h": [11.0 + i for i in range(size)],
        "l": [9.0 + i for i in range(size)],
        "c": [10.5 + i for i in range(size)],
        "v": [100.0] * size,
        "vw": [10.2 + i for i in range(size)],
        "n": [7] * size,
    }
    cols.update(overrides)
    return BarBatch.from_columns("AAPL", timeframe, cols)


def test_barbatch_valid_batch_validates_to_itself() -> None:
    """A clean batch has no problems, and validate() returns the same object."""
    b = batch()
    assert b.problems() == []
    assert b.validate() is b
    assert b.t.dtype == np.int64 and b.o.dtype == np.float64 and b.n.dtype == np.int64


@pytest.mark.parametrize(
    ("column", "values", "rows", "reason"),
    [
        ("h", [11.0, 12.0, 8.0, 14.0, 15.0], [2], "high is below low"),
        ("o", [10.0, 13.0, 12.0, 13.0, 14.0], [1], "open or close above high"),
        ("c", [10.5, 11.5, 12.5, 10.0, 14.5], [3], "open or close below low"),
        ("o", [10.0, 11.0, 12.0, 13.0, 8.0], [4], "open or close below low"),
        ("v", [100.0, -1.0, 100.0, -5.0, 100.0], [1, 3], "negative volume"),
        ("c", [10.5, math.nan, 12.5, 13.5, 14.5], [1], "price is not a finite number"),
        ("h", [11.0, 12.0, math.inf, 14.0, 15.0], [2], "price is not a finite number"),
    ],
)
def test_barbatch_problems_names_each_row_breaking_a_price_or_volume_invariant(
    column: str, values: list[float], rows: list[int], reason: str
) -> None:
    """Each price/volume invariant is reported on exactly the rows that break it."""
    problems = batch(**{column: values}).problems()
    assert [(p.row, p.reason) for p in problems] == [(r, reason) for r in rows]


def test_barbatch_problems_names_zero_and_negative_prices() -> None:
    """A bar at zero or below is refused wherever bars come from (flat files, the stream, a store
    write), not only by the REST screen; its OHLC ordering may be otherwise fine."""
    zero = {"o": [10.0, 0.0, 12.0, -2.0, 14.0], "h": [11.0, 0.0, 13.0, -1.0, 15.0],
            "l": [9.0, 0.0, 11.0, -3.0, 13.0], "c": [10.5, 0.0, 12.5, -2.0, 14.5]}
    problems = batch(**zero).problems()
    assert [(p.row, p.reason) for p in problems] == [(1, "price is zero or negative"),
                                                    (3, "price is zero or negative")]


def test_barbatch_problems_reports_duplicate_and_out_of_order_timestamps() -> None:
    """A repeated t and a t that goes backwards are flagged on the later row."""
    t = [T0, T0 + 60_000, T0 + 60_000, T0 + 180_000, T0 + 120_000]
    problems = batch(t=t).problems()
    got = [(p.row, p.reason) for p in problems]
    assert got == [(2, "duplicate timestamp"), (4, "timestamp out of order")]


@pytest.mark.parametrize(
    ("timeframe", "offset_ms"),
    [("1m", 1_000), ("5m", 60_000), ("1h", 60_000), ("30s", 1_000), ("1d", 60_000), ("4h", 60_000)],
)
def test_barbatch_problems_reports_timestamps_off_the_timeframe_grid(timeframe: str, offset_ms: int) -> None:
    """A t that is not on its timeframe's grid is flagged, naming the timeframe."""
    tf = Timeframe.parse(timeframe)
    good = batch(3, tf)
    t = good.t.copy()
    t[1] += offset_ms
    problems = batch(3, tf, t=t.tolist()).problems()
    assert [(p.row, p.reason) for p in problems] == [(1, f"timestamp not aligned to {timeframe}")]


def test_barbatch_nan_volume_and_vwap_are_valid() -> None:
    """Index bars carry no volume: NaN v and vw with n = 0 are allowed."""
    b = batch(v=[math.nan] * 5, vw=[math.nan] * 5, n=[0] * 5)
    assert b.problems() == []
    first = next(iter(b.rows()))
    assert first[5] is None and first[6] is None and first[7] == 0


def test_barbatch_validate_raises_validation_error_with_the_rows() -> None:
    """validate() raises ValidationError whose .rows lists every bad row once, sorted."""
    b = batch(h=[11.0, 8.0, 13.0, 14.0, 15.0], v=[100.0, -1.0, 100.0, 100.0, -2.0])
    with pytest.raises(ValidationError) as info:
        b.validate()
    assert info.value.rows == [1, 4]
    message = str(info.value)
    assert message.startswith("AAPL 1m: 3 invalid bar(s): row 1 (t=2024-01-02T14:01:00+00:00)")
    assert "negative volume" in message and "high is below low" in message


def test_barbatch_validate_caps_the_message_at_twenty_rows() -> None:
    """A batch with many bad rows names twenty and counts the rest, but .rows has them all."""
    b = batch(30, v=[-1.0] * 30)
    with pytest.raises(ValidationError, match=r"30 invalid bar\(s\): .*\(\+10 more\)$") as info:
        b.validate()
    assert info.value.rows == list(range(30))


def test_barbatch_rejects_columns_of_different_lengths() -> None:
    """Ragged columns can never form a batch."""
    with pytest.raises(ValidationError, match="columns differ in length"):
        batch(o=[1.0, 2.0])


def test_barbatch_concat_between_sorted_and_take_keep_columns_aligned() -> None:
    """Slicing and joining operate on whole rows; equals() compares every column, NaN = NaN."""
    b = batch(6, vw=[math.nan, 1.0, 2.0, 3.0, 4.0, 5.0])
    joined = BarBatch.concat([b.take(slice(0, 3)), b.take(slice(3, 6))])
    assert joined.equals(b)
    window = b.between(T0 + 60_000, T0 + 180_000)
    assert window.t.tolist() == [T0 + 60_000, T0 + 120_000]
    shuffled = b.take(np.array([3, 0, 5, 1, 4, 2]))
    assert not shuffled.equals(b) and shuffled.sorted().equals(b)
    assert not b.equals(b.take(slice(0, 5)))
    assert len(BarBatch.empty("AAPL", M1)) == 0
    assert b.with_source("flatfile").source == "flatfile" and b.with_source("x").equals(b)
    with pytest.raises(UsageError, match="at least one batch"):
        BarBatch.concat([])


def test_barbatch_rows_yields_plain_python_values_for_drivers() -> None:
    """rows() gives builtin ints and floats, never NumPy scalars, in column order."""
    row = next(iter(batch(1).rows()))
    assert row == (T0, 10.0, 11.0, 9.0, 10.5, 100.0, 10.2, 7)
    assert all(type(x) in (int, float) for x in row)


def test_barbatch_validate_error_holds_the_offending_bars_and_their_reasons() -> None:
    """The error keeps the bad rows themselves, one reason string per row (joined when several)."""
    b = batch(h=[11.0, 8.0, 13.0, 14.0, 15.0], v=[100.0, -1.0, 100.0, 100.0, -2.0])
    with pytest.raises(ValidationError) as info:
        b.validate()
    bad = info.value.bars
    assert bad is not None and bad.t.tolist() == [T0 + 60_000, T0 + 240_000] and bad.h.tolist() == [8.0, 15.0]
    assert info.value.reasons == ("high is below low; negative volume", "negative volume")


def test_otc_defaults_to_no_flag_and_travels_with_every_row_operation() -> None:
    """Without an otc column no bar has a flag; take, concat, sorted and with_source keep each
    bar's flag, and equals tells a flag from none."""
    from mdw.domain import MISSING_OTC

    plain = batch(4)
    assert plain.otc.dtype == np.int8 and plain.otc.tolist() == [MISSING_OTC] * 4
    flagged = batch(4, otc=[1, 0, MISSING_OTC, 1])
    assert flagged.take(np.array([3, 0])).otc.tolist() == [1, 1]
    assert BarBatch.concat([flagged, plain]).otc.tolist() == [1, 0, MISSING_OTC, 1] + [MISSING_OTC] * 4
    assert flagged.take(np.array([2, 1, 0, 3])).sorted().otc.tolist() == [1, 0, MISSING_OTC, 1]
    assert flagged.with_source("grouped").otc.tolist() == flagged.otc.tolist()
    assert flagged.equals(batch(4, otc=[1, 0, MISSING_OTC, 1]))
    assert not flagged.equals(batch(4, otc=[1, 0, 0, 1])) and not plain.equals(flagged)


def test_resample_keeps_a_window_flag_only_when_its_bars_agree() -> None:
    """A derived window's otc flag is its bars' common flag, and missing where they differ."""
    from mdw.backfill.derive import resample
    from mdw.domain import MISSING_OTC, AssetClass

    five = Timeframe.parse("5m")
    flags = [1] * 5 + [1, 1, MISSING_OTC, 1, 1] + [MISSING_OTC] * 5
    out = resample(batch(15, otc=flags), AssetClass.STOCKS, five)
    assert out.otc.tolist() == [1, MISSING_OTC, MISSING_OTC]
