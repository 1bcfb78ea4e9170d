"""Bar batches for store tests: deterministic, valid, and easy to corrupt on purpose."""

from __future__ import annotations

from datetime import date

import numpy as np

from mdw.domain import MISSING_N, BarBatch, RangeSet, Timeframe, TimeRange, day_range_ms, local_midnight_ms
from mdw.domain import NEW_YORK as NY
from mdw.store import BarWrite

M1 = Timeframe.parse("1m")
D1 = Timeframe.parse("1d")
MIN = 60_000
T0 = local_midnight_ms(date(2024, 3, 4), NY) + 4 * 3_600_000  # Monday 04:00 ET, extended open


def make_batch(
    ticker: str = "AAPL",
    n: int = 10,
    t0: int = T0,
    tf: Timeframe = M1,
    *,
    price: float = 100.0,
    step_ms: int | None = None,
    source: str = "rest",
) -> BarBatch:
    """``n`` valid bars from ``t0`` every ``step_ms`` (the timeframe's length by default).

    Every 5th bar has no volume (NaN v/vw, n missing); volumes are fractional, as crypto's are.
    """
    step = step_ms or tf.fixed_ms or 86_400_000
    t = t0 + np.arange(n, dtype=np.int64) * step
    o = price + np.arange(n) * 0.25
    c = o + 0.125
    h = np.maximum(o, c) + 0.5
    low = np.minimum(o, c) - 0.5
    v = 1000.5 + np.arange(n, dtype=np.float64)
    vw = (o + c) / 2
    cnt = np.arange(n, dtype=np.int64) + 3_000_000_000  # beyond int32
    v[::5] = np.nan
    vw[::5] = np.nan
    cnt[::5] = MISSING_N  # the vendor left n out: stored as NULL
    cnt[1::7] = 0  # a real count of 0 stays 0
    return BarBatch(ticker, tf, t, o, h, low, c, v, vw, cnt, source)


def span(batch: BarBatch) -> RangeSet:
    """The range from the first bar's start to the last bar's end."""
    step = batch.timeframe.fixed_ms or 86_400_000
    return RangeSet.of([(int(batch.t[0]), int(batch.t[-1]) + step)])


def write(batch: BarBatch, covered: RangeSet | None = None) -> BarWrite:
    return BarWrite(batch, span(batch) if covered is None else covered)


def days(start: date, end: date) -> TimeRange:
    """Whole New York days ``start`` .. ``end`` inclusive."""
    return day_range_ms(start, end, NY)


def with_column(batch: BarBatch, name: str, index: int, value: float) -> BarBatch:
    """A copy of ``batch`` with one cell changed (to make corrections and broken rows)."""
    cols = {k: v.copy() for k, v in batch.columns().items()}
    cols[name][index] = value
    return BarBatch.from_columns(batch.ticker, batch.timeframe, cols, batch.source)
