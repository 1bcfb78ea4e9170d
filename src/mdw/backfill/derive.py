"""Resampling: coarser intraday bars built locally from finer ones (``--derive``). Pure numpy.

Windows are anchored at local midnight (ET for US stocks, UTC for crypto and forex), as the
vendor anchors them, so a derived 4h stock bar starts at 00, 04, 08, 12, 16 or 20 ET. The
arithmetic follows the vendor's: open of the first bar, close of the last, max high, min low,
summed volume and trades, and the volume-weighted mean of the VWAPs. A window's ``otc`` flag is its
bars' flag when they all carry the same one, and missing otherwise.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from mdw.domain import (
    I64,
    MISSING_N,
    MISSING_OTC,
    AssetClass,
    BarBatch,
    Timeframe,
    from_ms,
    local_midnight_ms,
)
from mdw.errors import UsageError

DERIVED = "derived"


def window_starts(asset: AssetClass, target: Timeframe, t: I64) -> I64:
    """The start of the ``target`` window holding each (sorted) timestamp in ``t``."""
    length = target.fixed_ms
    if length is None or not target.intraday:
        raise UsageError(f"only fixed intraday timeframes can be derived, not {target}")
    if not len(t):
        return np.empty(0, dtype=np.int64)
    tz = asset.tz
    first = from_ms(int(t[0])).astimezone(tz).date() - timedelta(days=1)
    last = from_ms(int(t[-1])).astimezone(tz).date() + timedelta(days=1)
    days = (last - first).days + 1
    midnights = np.array([local_midnight_ms(first + timedelta(days=i), tz) for i in range(days)],
                         dtype=np.int64)
    base = midnights[np.searchsorted(midnights, t, side="right") - 1]
    out: I64 = base + ((t - base) // length) * length
    return out


def resample(batch: BarBatch, asset: AssetClass, target: Timeframe) -> BarBatch:
    """Aggregate a sorted batch into ``target`` bars (source ``derived``).

    Raises:
        UsageError: ``target`` is not a fixed intraday timeframe.
    """
    if not len(batch):
        return BarBatch.empty(batch.ticker, target, DERIVED)
    win = window_starts(asset, target, batch.t)
    starts = np.flatnonzero(np.concatenate(([True], win[1:] != win[:-1])))
    ends = np.concatenate((starts[1:], [len(win)])) - 1
    v = np.add.reduceat(batch.v, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        weighted = np.add.reduceat(batch.vw * batch.v, starts)
        vw = np.where(v > 0, weighted / v, np.nan)
    otc_lo, otc_hi = np.minimum.reduceat(batch.otc, starts), np.maximum.reduceat(batch.otc, starts)
    return BarBatch(
        ticker=batch.ticker,
        timeframe=target,
        t=win[starts],
        o=batch.o[starts],
        h=np.maximum.reduceat(batch.h, starts),
        l=np.minimum.reduceat(batch.l, starts),
        c=batch.c[ends],
        v=v,
        vw=vw,
        n=np.where(np.minimum.reduceat(batch.n, starts) < 0, MISSING_N, np.add.reduceat(batch.n, starts)),
        source=DERIVED,
        otc=np.where(otc_lo == otc_hi, otc_lo, MISSING_OTC),
    )
