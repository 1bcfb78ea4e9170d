"""Quarantining what the store refused: the rejected bars, with their reasons and the run, nothing else."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mdw.backfill.quarantine import quarantine_entries, quarantine_error
from mdw.domain import BarBatch, RangeSet, Timeframe, TimeRange
from mdw.errors import ValidationError
from mdw.store import BarWrite, Store

H1 = Timeframe.parse("1h")
T0 = 1_709_553_600_000  # 2024-03-04T12:00:00Z


def _batch() -> BarBatch:
    """Four hourly bars: row 1 off the hour grid, row 2 with high below low and a negative volume."""
    t = np.array([T0, T0 + 3_600_000 + 60_000, T0 + 7_200_000, T0 + 10_800_000], dtype=np.int64)
    return BarBatch("AAPL", H1, t, o=[10.0, 11, 12, 13], h=[11.0, 12, 9, 14], l=[9.0, 10, 11, 12],
                    c=[10.5, 11.5, 12.5, 13.5], v=[100.0, 100, -1, math.nan], vw=[10.2, 11.2, 12.2, math.nan],
                    n=[7, 7, 7, 0])


async def test_quarantine_error_keeps_exactly_the_bars_the_store_refused(store: Store) -> None:
    """A refused write keeps its invalid rows under the run, with every reason; valid rows are not kept."""
    with pytest.raises(ValidationError) as info:
        await store.write_bars([BarWrite(_batch(), RangeSet.of([TimeRange(T0, T0 + 4 * 3_600_000)]))])
    kept, reason = await quarantine_error(store, info.value, "run-7")
    got = await store.quarantine.recent("AAPL")
    assert kept == 2 and "2 bar(s) quarantined" in reason and "invalid bar" in reason
    assert [(q.t, q.reason, q.run_id, q.url) for q in got] == [
        (T0 + 3_660_000, "timestamp not aligned to 1h", "run-7", ""),
        (T0 + 7_200_000, "high is below low; negative volume", "run-7", ""),
    ]
    assert (got[1].h, got[1].l, got[1].v, got[1].n) == (9.0, 11.0, -1.0, 7)
    assert len(await store.bars("AAPL", H1, 0, 2**62)) == 0


async def test_quarantine_error_without_bars_quarantines_nothing(store: Store) -> None:
    """An error that holds no bars (e.g. a bad ticker) is reported as it is and adds no entry."""
    error = ValidationError("write 0: the batch has no valid ticker")
    assert await quarantine_error(store, error, "r") == (0, "write 0: the batch has no valid ticker")
    assert await store.quarantine.recent() == []


def test_quarantine_entries_carry_nan_for_omitted_volume_and_the_request_url() -> None:
    """Each row becomes one entry; an omitted volume stays NaN, and the URL and run are stamped on."""
    bad = _batch().take(np.array([3]))
    entries = quarantine_entries(ValidationError("x", bars=bad, reasons=["negative volume"], url="https://v/x"),
                                 "run-1", 42)
    [e] = entries
    assert (e.ticker, e.timeframe, e.t, e.reason, e.run_id, e.url, e.quarantined_at_ms) == (
        "AAPL", "1h", T0 + 10_800_000, "negative volume", "run-1", "https://v/x", 42)
    assert math.isnan(e.v) and math.isnan(e.vw) and e.n == 0
