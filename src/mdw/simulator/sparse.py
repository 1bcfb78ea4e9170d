"""Minute bars of the market's securities and of option contracts, generated from their trades.

A thin name trades in a few minutes a day, so drawing a coin for each of the 960 minutes (as the
legacy generator does) wastes most of the work. Here a day's trades are a Poisson process over
the U-shaped intraday intensity: the number of trades is drawn, each trade lands in a minute,
and the minutes with at least one trade are the bars (``n`` = its trades). Prices are a Brownian
bridge, from the day's level to the next day's less the overnight gap, sampled only at the start
and end of the minutes that traded. The cost follows the trades, not the clock: tens of
microseconds for a thin name's day.

A market security's daily level is value noise (:mod:`mdw.simulator.noise`) around its price, less
its dividends: computed for any day directly, so thousands of names keep nothing in memory.
"""

from __future__ import annotations

import functools
import math
import threading
from datetime import date

import numpy as np
import numpy.typing as npt

from mdw.domain import MINUTE_MS, AssetClass
from mdw.simulator.actions import DOMAIN_START, dividend_schedule
from mdw.simulator.names import stable_hash
from mdw.simulator.noise import level_noise, normal
from mdw.simulator.paths import DayMinutes, Layout
from mdw.simulator.universe import Profile

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_MASK63 = (1 << 63) - 1
_GAP_STREAM = 7


_M64 = (1 << 64) - 1
_LOCAL = threading.local()


def _mix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def day_stream(key: int, day: int) -> np.random.Generator:
    """The random stream of (security, day): a PCG64 whose state is set from a hash of both.

    Seeding a fresh generator costs about 30 us (numpy hashes the seed through a SeedSequence);
    setting the state of one per thread costs 3, and at 5,000 names a day that is most of the
    difference. One per thread, because tests read ground truth while a simulator thread serves.
    """
    gen: np.random.Generator | None = getattr(_LOCAL, "gen", None)
    if gen is None:
        gen = _LOCAL.gen = np.random.Generator(np.random.PCG64(0))
    hi = _mix64(key ^ (day * 0x9E3779B1))
    lo = _mix64(hi ^ 0xD1B54A32D192ED03)
    gen.bit_generator.state = {"bit_generator": "PCG64", "state": {"state": (hi << 64) | lo,
                                                                  "inc": (_mix64(lo) << 1) | 1},
                               "has_uint32": 0, "uinteger": 0}
    return gen


@functools.lru_cache(maxsize=16384)
def path_key(seed: int, entity: int) -> int:
    """The key of a security's random streams (shared by every ticker it has had)."""
    return stable_hash("market-path", seed, entity) & _MASK63


@functools.lru_cache(maxsize=16384)
def _drops(seed: int, entity: int) -> tuple[I64, F64, float]:
    """Ex-dates (day indexes), the cumulative log price drop from each ex-date on, and the total."""
    sched = dividend_schedule(seed, entity)
    ex = sched.ex - DOMAIN_START.toordinal()
    drops = np.log1p(-sched.yields)
    cum = np.concatenate([[0.0], np.cumsum(drops)])
    return ex, cum, float(cum[-1])


_BLOCK = 256  # days of levels computed (and cached) at once: one vectorised pass costs what one day does


def start_levels(seed: int, prof: Profile, days: I64) -> F64:
    """Split-adjusted log prices where each day's trading starts (day indexes since 2000-01-01).

    Elementwise in ``days``: a day's value is the same whichever other days are asked with it.
    """
    key = path_key(seed, prof.entity)
    ex, cum, total = _drops(seed, prof.entity)
    base = math.log(prof.base_price) - 0.5 * total
    taken = cum[np.searchsorted(ex, days, side="right")]
    return np.asarray(base + prof.daily_vol * level_noise(key, days) + taken, dtype=np.float64)


@functools.lru_cache(maxsize=8192)
def _level_block(seed: int, prof: Profile, block: int) -> tuple[F64, F64]:
    """Start and end levels of the days ``[block * 256, block * 256 + 256)`` (see market_levels)."""
    key = path_key(seed, prof.entity)
    ex, cum, _ = _drops(seed, prof.entity)
    days = np.arange(block * _BLOCK, block * _BLOCK + _BLOCK + 1, dtype=np.int64)
    start = start_levels(seed, prof, days)
    gap = normal(key, _GAP_STREAM, days) * (prof.daily_vol * 0.3)
    on_ex = np.searchsorted(ex, days, side="right") - np.searchsorted(ex, days, side="left")
    if on_ex.any():
        right, left = np.searchsorted(ex, days, side="right"), np.searchsorted(ex, days, side="left")
        gap = gap + (cum[right] - cum[left])
    out_start, out_end = start[:-1].copy(), start[1:] - gap[1:]
    out_start.flags.writeable = False
    out_end.flags.writeable = False
    return out_start, out_end


_PRIMED: dict[tuple[int, int, int], tuple[float, float]] = {}
_PRIMED_MAX = 200_000


def prime_levels(seed: int, profs: list[Profile], day: int) -> None:
    """Compute one day's levels of many securities in one vectorised pass (for grouped daily).

    The values are bit for bit those of :func:`market_levels` (every operation is elementwise and
    in the same order), which serves them from here instead of computing a 256-day block for
    each of thousands of names.
    """
    todo = [p for p in profs if (seed, p.entity, day) not in _PRIMED]
    if not todo:
        return
    if len(_PRIMED) > _PRIMED_MAX:
        _PRIMED.clear()
    keys = np.asarray([path_key(seed, p.entity) for p in todo], dtype=np.uint64)
    vol = np.asarray([p.daily_vol for p in todo], dtype=np.float64)
    drops = [_drops(seed, p.entity) for p in todo]
    base = np.asarray([math.log(p.base_price) - 0.5 * d[2] for p, d in zip(todo, drops, strict=True)])
    days = np.full(len(todo), day, dtype=np.int64)
    taken, nxt_taken, on_day = (np.asarray(v, dtype=np.float64) for v in zip(*(
        (cum[np.searchsorted(ex, day, side="right")], cum[np.searchsorted(ex, day + 1, side="right")],
         cum[np.searchsorted(ex, day + 1, side="right")] - cum[np.searchsorted(ex, day + 1, side="left")])
        for ex, cum, _ in drops), strict=True))
    start = base + vol * level_noise(keys, days) + taken
    nxt = base + vol * level_noise(keys, days + 1) + nxt_taken
    gap = normal(keys, _GAP_STREAM, days + 1) * (vol * 0.3)
    gap = np.where(on_day != 0.0, gap + on_day, gap)
    end = nxt - gap
    for p, s_, e_ in zip(todo, start.tolist(), end.tolist(), strict=True):
        _PRIMED[(seed, p.entity, day)] = (s_, e_)


def market_levels(seed: int, prof: Profile, day: int) -> tuple[float, float]:
    """Split-adjusted log prices where day ``day``'s trading starts and where its minute walk ends.

    The end is the next day's start less the overnight gap, which carries any dividend drop.
    """
    primed = _PRIMED.get((seed, prof.entity, day))
    if primed is not None:
        return primed
    block, at = divmod(day, _BLOCK)
    start, end = _level_block(seed, prof, block)
    return float(start[at]), float(end[at])


@functools.lru_cache(maxsize=64)
def _intensity(slots: int, reg_start: int, reg_end: int, end: int, extended: bool) -> tuple[F64, float]:
    """Cumulative trade intensity per unit of trades-per-minute over the day's slots, and its total.

    The shape is the legacy stocks' one: a U over regular hours, a thin tail before and after.
    """
    i = np.arange(slots, dtype=np.float64)
    lam = np.zeros(slots, dtype=np.float64)
    reg = (i >= reg_start) & (i < reg_end)
    u_shape = 1.0 + 2.0 * np.exp(-(i - reg_start) / 25.0) + 1.2 * np.exp(-(reg_end - 1 - i) / 25.0)
    lam[reg] = u_shape[reg] / 1.4
    if extended:
        pre = i < reg_start
        lam[pre] = 0.01 + 0.08 * np.exp(-(reg_start - i[pre]) / 60.0)
        post = (i >= reg_end) & (i < end)
        lam[post] = 0.01 + 0.1 * np.exp(-(i[post] - reg_end) / 40.0)
    lam[end:] = 0.0
    cum = np.cumsum(lam)
    cum.flags.writeable = False
    return cum, float(cum[-1])


def generate(layout: Layout, key: int, day: date, *, tpm: float, size: float, vol: float,
             start_lp: float, end_lp: float, decimals: int, mult: float = 1.0,
             extended: bool = True, min_price: float = 0.0) -> DayMinutes:
    """One day's minute bars from its trades (see the module docstring).

    Args:
        layout: the day's (first minute ms, slots, regular start, regular end, trading end).
        key: the security's stream key; the day's stream is (key, day).
        start_lp, end_lp: split-adjusted log prices at the start and the end of the day's walk.
        mult: the split multiplier of the day (unadjusted = adjusted x mult).
        extended: trades outside regular hours (stocks) or not (options).
        min_price: the price floor (one cent for options).
    """
    first_ms, slots, reg_start, reg_end, end = layout
    cum, total = _intensity(slots, reg_start, reg_end, end, extended)
    rng = day_stream(key, day.toordinal())
    count = int(rng.poisson(tpm * total))
    slot = np.searchsorted(cum, rng.random(count) * total, side="right")
    per_slot = np.bincount(slot, minlength=slots + 1)[:slots]
    idx = np.flatnonzero(per_slot)
    n = per_slot[idx]
    k = len(idx)
    # the walk at every minute edge that matters: starts and ends of traded minutes, and the close
    edges = np.empty(2 * k + 1, dtype=np.int64)
    edges[0:2 * k:2], edges[1:2 * k:2], edges[-1] = idx, idx + 1, slots
    keep = np.empty(len(edges), dtype=np.bool_)
    keep[0], keep[1:] = True, edges[1:] != edges[:-1]
    edges = edges[keep]
    steps = edges.astype(np.float64)
    steps[1:] -= edges[:-1]
    sigma = vol / math.sqrt(slots) * 1.2
    walk = np.cumsum(rng.standard_normal(len(edges)) * np.sqrt(steps)) * sigma
    log_p = start_lp + (edges / slots) * (end_lp - start_lp - walk[-1]) + walk
    price = np.maximum(np.round(np.exp(log_p) * mult, decimals), min_price)
    at = np.searchsorted(edges, idx)
    o, c = price[at], price[at + 1]
    r = rng.random((4, k))
    wiggle = sigma * 1.2
    h = np.round(np.maximum(o, c) * (1.0 + r[0] * wiggle), decimals)
    lo = np.maximum(np.round(np.minimum(o, c) * (1.0 - r[1] * wiggle), decimals), min_price)
    v = np.maximum(np.rint(n * ((0.2 + 1.6 * r[2]) * size)), n)
    vw = np.round(lo + (h - lo) * (0.25 + 0.5 * r[3]), decimals + 1)
    t = first_ms + idx * MINUTE_MS
    regular = (idx >= reg_start) & (idx < reg_end)
    return DayMinutes(t, o, h, lo, c, v, vw, n.astype(np.int64), regular)


def market_day(seed: int, prof: Profile, layout: Layout, day: date, mult: float) -> DayMinutes:
    """A market security's minute bars on a day it is listed and the exchange is open."""
    assert prof.asset is AssetClass.STOCKS
    start, end = market_levels(seed, prof, day.toordinal() - DOMAIN_START.toordinal())
    return generate(layout, path_key(seed, prof.entity), day, tpm=prof.trades_per_min,
                    size=prof.trade_size, vol=prof.daily_vol, start_lp=start, end_lp=end,
                    decimals=prof.decimals, mult=mult)
