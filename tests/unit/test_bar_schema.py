"""The one schema of bars leaving mdw (#21): names, timestamps, session dates, rounding, metadata."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import msgspec
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdw.bar_schema import BarSchema, check_names, iso_stamps, round_adjusted
from mdw.domain import BarBatch, Timeframe, to_ms
from mdw.errors import UsageError

DAY = Timeframe.parse("1d")


def _batch(ticker: str, tf: Timeframe, t: list[int], price: float = 1948.6961779999997) -> BarBatch:
    size = len(t)
    p = np.full(size, price)
    cols = {"t": t, "o": p, "h": p, "l": p, "c": p, "v": np.full(size, np.nan), "vw": p, "n": np.arange(size)}
    return BarBatch.from_columns(ticker, tf, cols)


@settings(deadline=None)  # the first call builds the table of the day's clock times
@given(st.integers(min_value=0, max_value=4_102_444_799))
def test_iso_stamps_equal_the_datetime_iso_form_for_any_second(second: int) -> None:
    """The table-built ISO text is datetime's own, to the second, with Z."""
    ms = second * 1000
    want = datetime.fromtimestamp(second, UTC).isoformat().replace("+00:00", "Z")
    assert iso_stamps(np.array([ms], dtype=np.int64)) == [want]


def test_schema_dates_daily_bars_by_the_markets_session() -> None:
    """A stock's daily bar at 04:00/05:00 UTC is dated by its New York session; crypto by its UTC day."""
    stock = [to_ms("2024-03-08T05:00:00Z"), to_ms("2024-03-11T04:00:00Z")]  # across the DST change
    table = BarSchema("AAPL", DAY).table([_batch("AAPL", DAY, stock)])
    assert table.column("date").to_pylist() == [date(2024, 3, 8), date(2024, 3, 11)]
    crypto = BarSchema("X:BTCUSD", DAY).table([_batch("X:BTCUSD", DAY, [to_ms("2024-03-10T00:00:00Z")])])
    assert crypto.column("date").to_pylist() == [date(2024, 3, 10)]
    minute = BarSchema("AAPL", Timeframe.parse("1m")).columns
    assert "date" not in minute and minute[0] == "timestamp"


def test_schema_rounds_adjusted_values_only_and_writes_nulls_for_missing_volume() -> None:
    """Adjusted prices lose their float noise; raw ones are passed through; NaN volume is null."""
    batch = _batch("AAPL", DAY, [to_ms("2024-03-08T05:00:00Z")])
    adjusted = BarSchema("AAPL", DAY, adjust="splits")
    assert adjusted.csv(batch).decode().split(",")[2] == "1948.696178"
    assert BarSchema("AAPL", DAY).csv(batch).decode().split(",")[2] == "1948.6961779999997"
    row = json.loads(adjusted.jsonl(batch))
    assert row["close"] == 1948.696178 and row["volume"] is None
    assert row["timestamp"] == "2024-03-08T05:00:00Z"
    assert round_adjusted(batch).c.tolist() == [1948.696178]


def test_schema_vendor_names_and_metadata_travel_with_arrow() -> None:
    """names=vendor keeps t, o ... (t in epoch ms in text); the Arrow schema names series and adjustment."""
    t = to_ms("2024-03-08T05:00:00Z")
    schema = BarSchema("AAPL", DAY, "all", date(2026, 12, 3), "vendor", extra={"mdw.coverage": "{}"})
    assert schema.columns == ["t", "date", "o", "h", "l", "c", "v", "vw", "n", "otc"]
    assert msgspec.json.decode(msgspec.json.encode(schema.rows(_batch("AAPL", DAY, [t]))))[0]["t"] == t
    arrow = schema.table([_batch("AAPL", DAY, [t])])
    assert arrow.schema.field("t").type == pa.timestamp("ms", tz="UTC")
    assert arrow.schema.metadata == {
        b"mdw.ticker": b"AAPL", b"mdw.timeframe": b"1d", b"mdw.adjustment": b"all",
        b"mdw.as_of": b"2026-12-03", b"mdw.names": b"vendor", b"mdw.coverage": b"{}"}
    assert BarSchema("AAPL", DAY).table([]).num_rows == 0
    with pytest.raises(UsageError, match="long"):
        check_names("short")


def test_schema_otc_column_is_true_false_or_null_in_every_encoding() -> None:
    """The vendor's flag is a boolean column: true/false where sent, null (empty in CSV) where not."""
    from dataclasses import replace

    from mdw.domain import MISSING_OTC

    t = [to_ms("2024-03-08T05:00:00Z"), to_ms("2024-03-11T04:00:00Z"), to_ms("2024-03-12T04:00:00Z")]
    b = replace(_batch("OTCX", DAY, t), otc=np.array([1, MISSING_OTC, 0], dtype=np.int8))
    schema = BarSchema("OTCX", DAY)
    assert schema.columns[-1] == "otc" and schema.arrow_schema().field("otc").type == pa.bool_()
    assert schema.table([b]).column("otc").to_pylist() == [True, None, False]
    assert [line.rsplit(",", 1)[1] for line in schema.csv(b).decode().splitlines()] == ["true", "", "false"]
    assert [json.loads(line)["otc"] for line in schema.jsonl(b).splitlines()] == [True, None, False]
    vendor = BarSchema("OTCX", DAY, names="vendor")
    assert json.loads(vendor.jsonl(b).splitlines()[0])["otc"] is True
    plain = _batch("AAPL", DAY, t)
    assert schema.table([plain]).column("otc").null_count == 3
