"""PostgreSQL partitions of ``bars``: one per UTC year of ``t``, and rows cut along them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from mdw.domain import RangeSet
from mdw.store.writes import SeriesWrite


def year_bounds(year: int) -> tuple[int, int]:
    """``[Jan 1 year, Jan 1 year+1)`` in UTC epoch ms: one partition."""
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def years_of(t: npt.NDArray[np.int64]) -> set[int]:
    """The UTC years sorted epoch-ms values fall in (only years that hold a value)."""
    arr = np.asarray(t)
    if not len(arr):
        return set()
    ends = arr[[0, -1]].astype("datetime64[ms]").astype("datetime64[Y]").astype(np.int64)
    if ends[0] == ends[1]:  # the usual page: one year, no need to look at every value
        return {int(ends[0]) + 1970}
    return {
        int(y) + 1970
        for y in np.unique(arr.astype("datetime64[ms]").astype("datetime64[Y]").astype(np.int64))
    }


def split_by_year(series: Sequence[SeriesWrite]) -> dict[int, list[SeriesWrite]]:
    """The groups cut at UTC year boundaries, so each part can be copied into its own partition."""
    out: dict[int, list[SeriesWrite]] = {}
    for s in series:
        t = s.batch.t
        for year in sorted(years_of(t)):
            lo, hi = year_bounds(year)
            a, b = int(np.searchsorted(t, lo)), int(np.searchsorted(t, hi))
            if a == b:
                continue
            part = s.batch if (a, b) == (0, len(t)) else s.batch.take(slice(a, b))
            out.setdefault(year, []).append(SeriesWrite(s.ticker, s.timeframe, part, RangeSet()))
    return out
