"""Daily bars revised once after the close, as the vendor revises them.

The vendor publishes a session's daily bar at the close and replaces it the next morning, once
the trades reported late (and the corrections of the consolidated tape) are in: the volume and
the trade count grow. For the tickers named in :attr:`SimConfig.revised` the simulator serves
the *preliminary* bar of a session until :data:`REVISED_AT` (ET) of the next calendar day, and
the final one (the ground truth, :meth:`Market.aggregates`) from then on. Only daily bars are
revised (the aggregates ``day`` timespan with multiplier 1 and grouped daily); the flat files of
a day are published after the revision and carry the final bar.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

import numpy as np

from mdw.domain import AssetClass, BarBatch, Timeframe

# Named tickers the vendor revises by default (the simulator's stand-ins: tests pick them by name).
REVISED_BY_DEFAULT = frozenset({"ABBV", "CVX", "MRK"})
REVISED_AT = time(9, 0)  # ET, the calendar day after the session
LATE_SHARE = 0.03  # the share of a day's volume reported after the close


def revised_at_ms(asset: AssetClass, t_ms: int) -> int:
    """When the daily bar starting at ``t_ms`` (local midnight of its day) gets its final values."""
    day = datetime.fromtimestamp(t_ms / 1000, tz=asset.tz).date() + timedelta(days=1)
    return int(datetime.combine(day, REVISED_AT, tzinfo=AssetClass.STOCKS.tz).timestamp() * 1000)


def preliminary_values(v: float, n: int) -> tuple[float, int]:
    """The volume and trade count published at the close: without the late-reported trades."""
    if not np.isfinite(v) or v <= 0:
        return v, n
    return float(np.floor(v * (1.0 - LATE_SHARE))), n - n // 40


def _pending(asset: AssetClass, t: np.ndarray, clock_ms: int) -> np.ndarray:
    return np.fromiter((revised_at_ms(asset, int(x)) > clock_ms for x in t), dtype=bool, count=len(t))


def as_served(bars: BarBatch, asset: AssetClass, clock_ms: int) -> BarBatch:
    """``bars`` (daily) as the vendor serves them at ``clock_ms``: bars not yet revised are preliminary."""
    if bars.timeframe != Timeframe(1, "d") or not len(bars):
        return bars
    pending = _pending(asset, bars.t, clock_ms)
    if not pending.any():
        return bars
    v, n = bars.v.copy(), bars.n.copy()
    for i in np.flatnonzero(pending):
        v[i], n[i] = preliminary_values(float(v[i]), int(n[i]))
    cols = {"t": bars.t, "o": bars.o, "h": bars.h, "l": bars.l, "c": bars.c, "v": v, "vw": bars.vw, "n": n}
    return BarBatch.from_columns(bars.ticker, bars.timeframe, cols, bars.source)


def row_as_served(asset: AssetClass, row: tuple[float, ...], clock_ms: int) -> tuple[float, ...]:
    """A grouped-daily row ``(t, o, h, l, c, v, vw, n)`` as served at ``clock_ms``."""
    if revised_at_ms(asset, int(row[0])) <= clock_ms:
        return row
    v, n = preliminary_values(float(row[5]), int(row[7]))
    return (*row[:5], v, row[6], n)
