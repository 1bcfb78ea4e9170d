"""Bar windows: snapping a time to its window, assigning base bars to windows, aggregating them.

Rules (the vendor's, as far as they are known; see docs/simulator.md):
- minute and hour windows are anchored at local midnight (ET for US markets, UTC for crypto/fx),
  so 4-hour stock bars start at 00, 04, 08, 12, 16 and 20 ET;
- a day is the local calendar day; a week starts Sunday 00:00; months, quarters and years start
  on the 1st; multi-day/week/month windows are anchored at the snapped request start.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from mdw.calendar import bar_window_start
from mdw.domain import MISSING_N, AssetClass, Timeframe, from_ms, local_midnight_ms

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Cols = dict[str, np.ndarray]
_MONTHS = {"mo": 1, "q": 3, "y": 12}


def snap(asset: AssetClass, tf: Timeframe, ms: int) -> int:
    """The start of the window of the timeframe's unit holding ``ms`` (the vendor's ``from`` snap)."""
    if tf.intraday:
        return bar_window_start(asset, tf, ms)
    return bar_window_start(asset, Timeframe(1, tf.unit), ms)


def local_day(asset: AssetClass, ms: int) -> date:
    return from_ms(ms).astimezone(asset.tz).date()


def window_starts(asset: AssetClass, tf: Timeframe, base: Cols, anchor_ms: int) -> I64:
    """The window start of every base bar.

    Args:
        base: columns with ``t``, ``mid`` (local midnight of the bar's day, ms) and ``day``
            (the local day as an ordinal).
        anchor_ms: the snapped request start; anchors multi-day, -week and -month windows.
    """
    t: I64 = base["t"]
    if tf.intraday:
        step = int(tf.fixed_ms or 60_000)
        mid: I64 = base["mid"]
        return mid + ((t - mid) // step) * step
    tz = asset.tz
    days: I64 = base["day"]
    anchor = local_day(asset, anchor_ms)
    if tf.unit in ("d", "w"):
        span = tf.multiplier * (7 if tf.unit == "w" else 1)
        idx = (days - anchor.toordinal()) // span
        uniq, inv = np.unique(idx, return_inverse=True)
        starts = [local_midnight_ms(anchor + timedelta(days=int(k) * span), tz) for k in uniq.tolist()]
        return np.asarray(starts, dtype=np.int64)[inv]
    span = tf.multiplier * _MONTHS[tf.unit]
    a_month = anchor.year * 12 + anchor.month - 1
    months = np.asarray([_month_index(d) for d in days.tolist()], dtype=np.int64) if len(days) else days
    idx = (months - a_month) // span
    uniq, inv = np.unique(idx, return_inverse=True)
    out = []
    for k in uniq.tolist():
        m = a_month + int(k) * span
        out.append(local_midnight_ms(date(m // 12, m % 12 + 1, 1), tz))
    return np.asarray(out, dtype=np.int64)[inv]


def next_window_start(asset: AssetClass, tf: Timeframe, ws: int) -> int:
    """The start of the window after the one starting at ``ws`` (whether or not it holds bars)."""
    if tf.intraday:
        return ws + int(tf.fixed_ms or 60_000)
    day = local_day(asset, ws)
    if tf.unit in ("d", "w"):
        span = tf.multiplier * (7 if tf.unit == "w" else 1)
        return local_midnight_ms(day + timedelta(days=span), asset.tz)
    m = day.year * 12 + day.month - 1 + tf.multiplier * _MONTHS[tf.unit]
    return local_midnight_ms(date(m // 12, m % 12 + 1, 1), asset.tz)


def _month_index(ordinal: int) -> int:
    d = date.fromordinal(ordinal)
    return d.year * 12 + d.month - 1


def window_end_bound_days(tf: Timeframe) -> int:
    """Days past a window start that surely cover the whole window (for fetching base bars).

    Zero when no window spans a day boundary: intraday windows restart at local midnight, and
    1-day windows are single days.
    """
    if tf.intraday or (tf.unit == "d" and tf.multiplier == 1):
        return 0
    if tf.unit == "d":
        return tf.multiplier + 1
    if tf.unit == "w":
        return 7 * tf.multiplier + 1
    return 31 * tf.multiplier * _MONTHS[tf.unit] + 1


def aggregate(base: Cols, ws: I64) -> Cols:
    """Fold base bars into one bar per distinct window start (``ws`` must be non-decreasing).

    open = first open, close = last close, high/low = extremes, v and n = sums, vw = volume-weighted.
    A window of exactly one base bar keeps that bar's values unchanged.
    """
    size = len(ws)
    if size == 0:
        return {k: base[k][:0] for k in ("o", "h", "l", "c", "v", "vw", "n")} | {"t": ws[:0]}
    cuts = np.flatnonzero(np.diff(ws)) + 1
    if len(cuts) == size - 1:
        return {"t": ws, **{k: base[k] for k in ("o", "h", "l", "c", "v", "vw", "n")}}
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [size]])
    v = base["v"]
    vol = np.add.reduceat(v, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        vw = np.add.reduceat(base["vw"] * v, starts) / vol
    vw = np.where(vol > 0, vw, np.nan)
    return {
        "t": ws[starts],
        "o": base["o"][starts],
        "h": np.maximum.reduceat(base["h"], starts),
        "l": np.minimum.reduceat(base["l"], starts),
        "c": base["c"][ends - 1],
        "v": vol,
        "vw": vw,
        "n": np.where(np.minimum.reduceat(base["n"], starts) < 0, MISSING_N,  # missing stays missing
                      np.add.reduceat(base["n"], starts)),
    }
