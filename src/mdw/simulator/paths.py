"""Price paths: a per-ticker daily anchor path, and each day's minute bars generated on demand.

Determinism: the daily anchors depend on (seed, ticker) only; a day's minutes depend on
(seed, ticker, day) only, with their own random stream. So any request window sees identical
bars, and nothing is ever generated for the whole universe up front.

The daily anchor ``L[d]`` is the split-adjusted log price at the start of day ``d``'s trading: a
mean-reverting (AR(1)) walk around the ticker's price level, lowered by ``log(1 - yield)`` on each
ex-dividend date. A day's minutes are a Brownian bridge from ``L[d]`` to ``L[d+1] - gap[d+1]``,
so the next day opens with an overnight gap (which carries the dividend drop).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import numpy as np
import numpy.typing as npt

from mdw.calendar import nyse_session
from mdw.domain import DAY_MS, MINUTE_MS, NEW_YORK, AssetClass, from_ms
from mdw.simulator.actions import DOMAIN_END, DOMAIN_START, dividend_plans, split_multiplier, splits_for
from mdw.simulator.universe import Profile, profile, stable_hash

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BoolArr = npt.NDArray[np.bool_]
N_DAYS = DOMAIN_END.toordinal() - DOMAIN_START.toordinal() + 2
_PHI = 0.997
STOCK_SLOTS = 960  # 04:00-20:00 ET
UTC_SLOTS = 1440


@dataclass(frozen=True, slots=True)
class DayMinutes:
    """One day's minute bars of one ticker, unadjusted; ``regular`` flags regular-hours minutes."""

    t: I64
    o: F64
    h: F64
    l: F64  # noqa: E741 - the vendor's field name
    c: F64
    v: F64
    vw: F64
    n: I64
    regular: BoolArr


@functools.lru_cache(maxsize=512)
def anchors(seed: int, ticker: str) -> tuple[F64, F64]:
    """(L, gap) per calendar day since 2000-01-01: split-adjusted log price at the open of the
    day's trading, and the overnight gap that led into it (dividend drops included)."""
    prof = profile(seed, ticker)
    rng = np.random.default_rng([seed, stable_hash("anchors", ticker)])
    eps = rng.standard_normal(N_DAYS) * prof.daily_vol
    x = np.empty(N_DAYS, dtype=np.float64)
    block = 256
    powers = _PHI ** np.arange(block, dtype=np.float64)
    inv = 1.0 / powers
    carry = float(rng.standard_normal() * prof.daily_vol / math.sqrt(1 - _PHI**2))
    for start in range(0, N_DAYS, block):
        e = eps[start:start + block]
        k = len(e)
        seg = powers[:k] * (_PHI * carry + np.cumsum(e * inv[:k]))
        x[start:start + k] = seg
        carry = float(seg[-1])
    gap_scale = 0.05 if prof.asset in (AssetClass.CRYPTO, AssetClass.FOREX) else 0.3
    gap = rng.standard_normal(N_DAYS) * prof.daily_vol * gap_scale
    drops = np.zeros(N_DAYS, dtype=np.float64)
    for plan in dividend_plans(seed, ticker):
        drops[plan.ex_date.toordinal() - DOMAIN_START.toordinal()] = math.log1p(-plan.yield_q)
    gap += drops
    level = math.log(prof.base_price) + x + np.cumsum(drops) - float(np.sum(drops)) * 0.5
    return level, gap


def day_index(day: date) -> int:
    return day.toordinal() - DOMAIN_START.toordinal()


def in_domain(day: date) -> bool:
    return DOMAIN_START <= day <= DOMAIN_END


def _at(day: date, hh: int, mm: int = 0) -> int:
    return int(datetime.combine(day, time(hh, mm), tzinfo=NEW_YORK).timestamp() * 1000)


def _utc_midnight(day: date) -> int:
    return (day.toordinal() - date(1970, 1, 1).toordinal()) * DAY_MS


def _layout(prof: Profile, day: date) -> tuple[int, int, int, int, int] | None:
    """(first minute ms, slot count, regular start, regular end, trading end) for ``day``, or None.

    Slot indexes are minutes after the first minute. Stocks: 04:00 ET, 960 slots, regular
    09:30-16:00 (13:00 on early closes), trading ends 20:00 (17:00 on early closes).
    """
    if prof.asset in (AssetClass.CRYPTO, AssetClass.FOREX):
        return _utc_midnight(day), UTC_SLOTS, 0, UTC_SLOTS, UTC_SLOTS
    sess = nyse_session(day)
    if sess is None:
        return None
    first = sess.extended_open_ms
    reg_start = (sess.regular_open_ms - first) // MINUTE_MS
    reg_end = (sess.regular_close_ms - first) // MINUTE_MS
    end = (sess.extended_close_ms - first) // MINUTE_MS
    return first, STOCK_SLOTS, int(reg_start), int(reg_end), int(end)


def _fx_open_mask(start_ms: int, slots: int) -> BoolArr:
    """Forex trades from Sunday 17:00 ET to Friday 17:00 ET."""
    t = start_ms + np.arange(slots, dtype=np.int64) * MINUTE_MS
    day = from_ms(start_ms).date()
    mask = np.ones(slots, dtype=np.bool_)
    for offset in (-2, -1, 0, 1):
        d = day + timedelta(days=offset)
        if d.weekday() == 4:  # Friday 17:00 ET to Sunday 17:00 ET is closed
            lo, hi = _at(d, 17), _at(d + timedelta(days=2), 17)
            mask &= ~((t >= lo) & (t < hi))
    return mask


def _intensity(prof: Profile, slots: int, reg_start: int, reg_end: int, end: int) -> F64:
    i = np.arange(slots, dtype=np.float64)
    if prof.asset is AssetClass.CRYPTO:
        return prof.trades_per_min * (1.0 + 0.5 * np.sin(2 * np.pi * (i / 1440.0 - 0.3)))
    if prof.asset is AssetClass.FOREX:
        return np.full(slots, prof.trades_per_min)
    lam = np.zeros(slots, dtype=np.float64)
    reg = (i >= reg_start) & (i < reg_end)
    u_shape = 1.0 + 2.0 * np.exp(-(i - reg_start) / 25.0) + 1.2 * np.exp(-(reg_end - 1 - i) / 25.0)
    lam[reg] = prof.trades_per_min * u_shape[reg] / 1.4
    pre = i < reg_start
    lam[pre] = prof.trades_per_min * (0.01 + 0.08 * np.exp(-(reg_start - i[pre]) / 60.0))
    post = (i >= reg_end) & (i < end)
    lam[post] = prof.trades_per_min * (0.01 + 0.1 * np.exp(-(i[post] - reg_end) / 40.0))
    return lam


@functools.lru_cache(maxsize=256)
def day_minutes(seed: int, ticker: str, day: date) -> DayMinutes | None:
    """All minute bars of ``ticker`` on ``day`` (local trading day), or None when it does not trade."""
    prof = profile(seed, ticker)
    if not in_domain(day) or not in_domain(day + timedelta(days=1)):
        return None
    layout = _layout(prof, day)
    if layout is None:
        return None
    first_ms, slots, reg_start, reg_end, end = layout
    level, gap = anchors(seed, ticker)
    di = day_index(day)
    rng = np.random.default_rng([seed, stable_hash("minutes", ticker), day.toordinal()])
    start_lp, end_lp = float(level[di]), float(level[di + 1] - gap[di + 1])
    sigma = prof.daily_vol / math.sqrt(slots) * 1.2
    walk = np.cumsum(rng.standard_normal(slots) * sigma)
    frac = np.arange(1, slots + 1, dtype=np.float64) / slots
    close_lp = start_lp + frac * (end_lp - start_lp) + walk - frac * walk[-1]
    open_lp = np.empty(slots, dtype=np.float64)
    open_lp[0] = start_lp
    open_lp[1:] = close_lp[:-1]
    wick = np.abs(rng.standard_normal((2, slots))) * sigma * 0.6
    mult = float(split_multiplier(splits_for(seed, ticker), np.array([day.toordinal()]))[0])
    o = np.exp(open_lp) * mult
    c = np.exp(close_lp) * mult
    h = np.maximum(o, c) * np.exp(wick[0])
    lo = np.minimum(o, c) * np.exp(-wick[1])
    lam = _intensity(prof, slots, reg_start, reg_end, end)
    n = rng.poisson(lam).astype(np.int64)
    size = rng.lognormal(0.0, 0.6, slots) * prof.trade_size
    mix = rng.random(slots)
    regular = np.zeros(slots, dtype=np.bool_)
    regular[reg_start:reg_end] = True
    if prof.asset is AssetClass.INDICES:
        keep = regular.copy()
    else:
        keep = n > 0
        keep[end:] = False
        if prof.asset is AssetClass.FOREX:
            keep &= _fx_open_mask(first_ms, slots)
    idx = np.flatnonzero(keep)
    dec = prof.decimals
    o, h, lo, c = (np.round(a[idx], dec) for a in (o, h, lo, c))
    h = np.maximum(h, np.maximum(o, c))
    lo = np.minimum(lo, np.minimum(o, c))
    t = first_ms + idx.astype(np.int64) * MINUTE_MS
    if not prof.has_volume:
        nan = np.full(len(idx), np.nan)
        return DayMinutes(t, o, h, lo, c, nan, nan, np.zeros(len(idx), np.int64), regular[idx])
    nn = n[idx]
    if prof.asset is AssetClass.STOCKS or prof.asset is AssetClass.OPTIONS:
        v = np.maximum(np.round(nn * size[idx]), nn).astype(np.float64)
    elif prof.asset is AssetClass.FOREX:
        v = nn.astype(np.float64)
    else:
        v = np.round(nn * size[idx], 6)
    vw = np.clip(np.round(lo + (h - lo) * (0.25 + 0.5 * mix[idx]), dec + 1), lo, h)
    return DayMinutes(t, o, h, lo, c, v, vw, nn, regular[idx])
