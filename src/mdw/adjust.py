"""Read-time price adjustment: raw bars plus stored splits and dividends, adjusted as of the query.

Bars are stored unadjusted, so a new split never forces a refetch; this module turns raw bars
into adjusted ones whenever they are read. It is pure numpy and does no I/O.

Modes:

* ``none``   - the raw bars, unchanged.
* ``splits`` - the vendor's ``adjusted=true``: every bar that starts before a split's execution
  date (00:00 in the asset's zone, ET for stocks) has o, h, l, c and vw divided by the product of
  the ratios (``split_to / split_from``) of all later splits, and v multiplied by it. The division
  is one IEEE division by the cumulative ratio, so the result is the correctly rounded quotient,
  the same bits as the simulator's ground truth (no decimal rounding is applied).
* ``all``    - splits as above, then the standard backward ratio method for cash dividends: for
  each dividend, ``factor = 1 - cash_amount / close_prev``, where ``close_prev`` is the raw close
  of the last bar that starts before the ex-dividend date; every bar before the ex-date is
  multiplied by the product of the factors of all later dividends (prices only, never volume).
  Both ``cash_amount`` and ``close_prev`` are taken as of that date (unadjusted), so the ratio
  is independent of splits. A dividend whose ``close_prev`` is unknown, or whose factor is not in
  (0, 1), is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from mdw.domain import F64, NEW_YORK, BarBatch, Dividend, Split, local_midnight_ms, parse_ticker
from mdw.errors import UsageError

ADJUST_MODES = ("none", "splits", "all")


def _zone_for(ticker: str) -> ZoneInfo:
    try:
        return parse_ticker(ticker).asset_class.tz
    except UsageError:
        return NEW_YORK


def boundary_ms(ticker: str, day: date) -> int:
    """Epoch ms at which an action dated ``day`` takes effect: 00:00 in the ticker's zone."""
    return local_midnight_ms(day, _zone_for(ticker))


def _suffix_factor(t: npt.NDArray[np.int64], bounds: list[int], factors: list[float]) -> F64:
    """For each t, the product of ``factors[i]`` over every boundary ``bounds[i] > t``.

    The product is taken in ascending boundary order, one multiplication per action, exactly as
    the vendor (and the simulator's ground truth) builds its cumulative split ratio, so the
    rounding of the cumulative factor, and hence of the quotient, is the same.
    """
    out = np.ones(len(t), dtype=np.float64)
    for bound, factor in sorted(zip(bounds, factors, strict=True)):
        out[t < bound] *= factor
    return out


def split_factors(batch: BarBatch, splits: Sequence[Split]) -> F64:
    """Per bar, the cumulative split ratio of every split executed after the bar started."""
    valid = [s for s in splits if s.split_from > 0 and s.split_to > 0]
    bounds = [boundary_ms(batch.ticker, s.execution_date) for s in valid]
    return _suffix_factor(batch.t, bounds, [s.ratio for s in valid])


def reference_close(batch: BarBatch, dividend: Dividend) -> float | None:
    """The raw close of the last bar in ``batch`` that starts before the dividend's ex-date."""
    cut = boundary_ms(batch.ticker, dividend.ex_dividend_date)
    i = int(np.searchsorted(batch.t, cut, side="left")) - 1
    if i < 0:
        return None
    return float(batch.c[i])


def dividend_factors(
    batch: BarBatch, dividends: Sequence[Dividend], closes: Mapping[str, float] | None = None
) -> F64:
    """Per bar, the cumulative backward ratio ``prod(1 - D / close_prev)`` of later dividends.

    Args:
        batch: raw (unadjusted) bars, sorted by ``t``.
        dividends: cash dividends of the ticker.
        closes: ``close_prev`` by dividend id. When given, it is authoritative: a dividend
            missing from it is skipped (its previous close is unknown). When None, each
            ``close_prev`` is read from the batch itself, which is right only when the batch
            holds the bar just before every ex-date (a whole series, not one page of it).
    """
    bounds: list[int] = []
    factors: list[float] = []
    for d in dividends:
        cut = boundary_ms(batch.ticker, d.ex_dividend_date)
        if len(batch) == 0 or cut <= int(batch.t[0]):
            continue  # no bar of this batch starts before the ex-date
        if closes is not None:
            prev = closes.get(d.id)
        elif cut <= int(batch.t[-1]):
            prev = reference_close(batch, d)
        else:
            prev = None  # the batch ends before the ex-date: its last close is not close_prev
        if prev is None or not np.isfinite(prev) or prev <= 0:
            continue
        factor = 1.0 - d.cash_amount / prev
        if not 0.0 < factor < 1.0:
            continue
        bounds.append(cut)
        factors.append(factor)
    return _suffix_factor(batch.t, bounds, factors)


def adjust_bars(
    batch: BarBatch,
    splits: Sequence[Split],
    dividends: Sequence[Dividend],
    mode: str,
    *,
    closes: Mapping[str, float] | None = None,
    as_of: date | None = None,
) -> BarBatch:
    """Adjust raw bars as of now for ``mode`` (``none``, ``splits`` or ``all``).

    Args:
        batch: raw bars of one series, sorted by ``t``.
        splits: the ticker's splits (any order).
        dividends: the ticker's cash dividends (any order); used only by ``all``.
        mode: ``none`` | ``splits`` | ``all``.
        closes: ``close_prev`` per dividend id (see :func:`dividend_factors`).
        as_of: ignore actions dated after this day (announced but not yet effective).

    Returns:
        A new batch (or ``batch`` itself when nothing applies).

    Raises:
        UsageError: ``mode`` is not one of the three.
    """
    if mode not in ADJUST_MODES:
        raise UsageError(f"invalid adjust mode {mode!r}; expected none, splits or all")
    if mode == "none" or len(batch) == 0:
        return batch
    if as_of is not None:
        splits = [s for s in splits if s.execution_date <= as_of]
        dividends = [d for d in dividends if d.ex_dividend_date <= as_of]
    ratio = split_factors(batch, splits)
    price_mult = None
    if mode == "all":
        div = dividend_factors(batch, dividends, closes)
        if not np.all(div == 1.0):
            price_mult = div
    if np.all(ratio == 1.0) and price_mult is None:
        return batch
    cols = batch.columns()
    for name in ("o", "h", "l", "c", "vw"):
        adjusted = cols[name] / ratio
        if price_mult is not None:
            adjusted = adjusted * price_mult
        cols[name] = adjusted
    cols["v"] = cols["v"] * ratio
    return BarBatch.from_columns(batch.ticker, batch.timeframe, cols, batch.source)


__all__ = ["ADJUST_MODES", "adjust_bars", "boundary_ms", "dividend_factors", "reference_close",
           "split_factors"]
