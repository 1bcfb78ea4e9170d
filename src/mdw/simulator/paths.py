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
from mdw.domain import DAY_MS, MINUTE_MS, MISSING_N, NEW_YORK, AssetClass, from_ms
from mdw.simulator.actions import DOMAIN_END, DOMAIN_START, dividend_plans, splits_for
from mdw.simulator.names import stable_hash
from mdw.simulator.universe import Profile, profile

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BoolArr = npt.NDArray[np.bool_]
N_DAYS = DOMAIN_END.toordinal() - DOMAIN_START.toordinal() + 2
_PHI = 0.997
Layout = tuple[int, int, int, int, int]  # first minute ms, slots, regular start/end, trading end
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


@functools.lru_cache(maxsize=1200)
def anchors(seed: int, ticker: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Per calendar day since 2000-01-01: the split-adjusted log price where the day's trading
    starts, and where its minute walk ends (the next start less the overnight gap, which carries
    any dividend drop)."""
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
    end_level = np.empty_like(level)
    end_level[:-1] = level[1:] - gap[1:]
    end_level[-1] = level[-1]
    # float32 halves the cache; the values are parameters of the walk, so rounding them is harmless
    return level.astype(np.float32), end_level.astype(np.float32)


def day_index(day: date) -> int:
    return day.toordinal() - DOMAIN_START.toordinal()


def in_domain(day: date) -> bool:
    return DOMAIN_START <= day <= DOMAIN_END


def _at(day: date, hh: int, mm: int = 0) -> int:
    return int(datetime.combine(day, time(hh, mm), tzinfo=NEW_YORK).timestamp() * 1000)


def _utc_midnight(day: date) -> int:
    return (day.toordinal() - date(1970, 1, 1).toordinal()) * DAY_MS


def layout(prof: Profile, day: date) -> Layout | None:
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


@functools.lru_cache(maxsize=4096)
def _intensity(asset: AssetClass, tpm: float, slots: int, reg_start: int, reg_end: int,
               end: int) -> tuple[F64, F64]:
    """(mean trades per minute, probability that the minute has a trade) for every slot."""
    i = np.arange(slots, dtype=np.float64)
    if asset is AssetClass.CRYPTO:
        lam = tpm * (1.0 + 0.5 * np.sin(2 * np.pi * (i / 1440.0 - 0.3)))
    elif asset is AssetClass.FOREX:
        lam = np.full(slots, tpm)
    else:
        lam = np.zeros(slots, dtype=np.float64)
        reg = (i >= reg_start) & (i < reg_end)
        u_shape = 1.0 + 2.0 * np.exp(-(i - reg_start) / 25.0) + 1.2 * np.exp(-(reg_end - 1 - i) / 25.0)
        lam[reg] = tpm * u_shape[reg] / 1.4
        pre = i < reg_start
        lam[pre] = tpm * (0.01 + 0.08 * np.exp(-(reg_start - i[pre]) / 60.0))
        post = (i >= reg_end) & (i < end)
        lam[post] = tpm * (0.01 + 0.1 * np.exp(-(i[post] - reg_end) / 40.0))
    lam[end:] = 0.0
    return lam, -np.expm1(-lam)


def legacy_day(seed: int, ticker: str, day: date) -> DayMinutes | None:
    """All minute bars of a legacy (or unlisted) ticker on ``day``, or None when it does not trade.

    :func:`mdw.simulator.minutes.day_minutes` caches it. Vectorised: one uniform and one normal
    draw per slot, then five uniforms per minute that traded, all from the day's own stream.
    """
    prof = profile(seed, ticker)
    shape = layout(prof, day)
    if shape is None:
        return None
    first_ms, slots, reg_start, reg_end, end = shape
    level, end_level = anchors(seed, ticker)
    di = day_index(day)
    rng = np.random.Generator(np.random.PCG64((_ticker_key(seed, ticker) + day.toordinal()) & _MASK63))
    draws = rng.random((2, slots))
    lam, p_trade = _intensity(prof.asset, prof.trades_per_min, slots, reg_start, reg_end, end)
    regular = _regular_mask(slots, reg_start, reg_end)
    if prof.asset is AssetClass.INDICES:
        keep = regular
    else:
        keep = draws[1] < p_trade
        if prof.asset is AssetClass.FOREX:
            keep &= _fx_open_mask(first_ms, slots)
    idx = np.flatnonzero(keep)
    k = len(idx)
    r = rng.random((5, k))
    # Brownian bridge of log prices from today's anchor to tomorrow's (less the overnight gap);
    # uniform increments (variance 1/12, scaled) are as good as normal ones here and cheaper.
    start_lp, end_lp = float(level[di]), float(end_level[di])
    sigma = prof.daily_vol / math.sqrt(slots) * 1.2
    walk = np.cumsum(draws[0] - 0.5) * (sigma * _SQRT12)
    close_lp = start_lp + _frac(slots) * (end_lp - start_lp - float(walk[-1])) + walk
    mult = split_mult(seed, ticker, day)
    dec = prof.decimals
    price = np.round(np.exp(close_lp) * mult, dec)
    c = price[idx]
    o = price[np.maximum(idx - 1, 0)]
    if k and idx[0] == 0:
        o[0] = round(math.exp(start_lp) * mult, dec)
    top = np.maximum(o, c)
    bottom = np.minimum(o, c)
    h = np.round(top * (1.0 + r[0] * (sigma * 1.2)), dec)
    lo = np.round(bottom * (1.0 - r[1] * (sigma * 1.2)), dec)
    t = first_ms + idx.astype(np.int64) * MINUTE_MS
    if not prof.has_volume:
        nan = np.full(k, np.nan)
        # the vendor sends no v, vw or n for these (index values): n is missing, as mdw stores it
        return DayMinutes(t, o, h, lo, c, nan, nan, np.full(k, MISSING_N, np.int64), regular[idx])
    n = 1 + (r[2] * (2.0 * lam[idx])).astype(np.int64)
    if prof.asset is AssetClass.FOREX:
        v = n.astype(np.float64)
    elif prof.asset is AssetClass.CRYPTO:
        v = np.round(n * ((0.1 + 1.8 * r[3]) * prof.trade_size), 6)
    else:
        v = np.maximum(np.rint(n * ((0.2 + 1.6 * r[3]) * prof.trade_size)), n).astype(np.float64)
    vw = np.round(lo + (h - lo) * (0.25 + 0.5 * r[4]), dec + 1)
    return DayMinutes(t, o, h, lo, c, v, vw, n, regular[idx])


_SQRT12 = math.sqrt(12.0)


@functools.lru_cache(maxsize=8)
def _frac(slots: int) -> F64:
    return np.arange(1, slots + 1, dtype=np.float64) / slots


@functools.lru_cache(maxsize=64)
def _regular_mask(slots: int, reg_start: int, reg_end: int) -> BoolArr:
    mask = np.zeros(slots, dtype=np.bool_)
    mask[reg_start:reg_end] = True
    mask.flags.writeable = False
    return mask


_MASK63 = (1 << 63) - 1


@functools.lru_cache(maxsize=8192)
def _ticker_key(seed: int, ticker: str) -> int:
    return stable_hash("minutes", seed, ticker) << 20


def split_mult(seed: int, ticker: str, day: date) -> float:
    """The product of the ratios of splits after ``day``: unadjusted prices are adjusted ones times it."""
    mult = 1.0
    for split in splits_for(seed, ticker):
        if day < split.execution_date:
            mult *= split.ratio
    return mult
