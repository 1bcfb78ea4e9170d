"""Option contracts on the market's liquid names: chains, contract tickers, and their minute bars.

Every legacy name and every market common stock or ETF trading two or more times a minute has
options. Monthly contracts expire on the third Friday (the session before, on a holiday) and
list 270 days ahead; SPY, QQQ, IWM, DIA and the 20 first real-looking stocks also have weekly
contracts (every other Friday expiry), listed 35 days ahead. A chain's strikes are fixed on its
listing day around the underlying's price then (+-25%, +-10% for weeklies), on a round step.

A contract has bars only from its listing day to its expiration, in regular hours, sparse (a
far out-of-the-money contract trades a few times a day). Its price is the Black-Scholes value
(no rates) of the underlying's simulated price, in the contract's original share basis, so a
split of the underlying does not move it.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from mdw.simulator import sessions
from mdw.simulator.names import REAL_STOCKS, stable_hash
from mdw.simulator.paths import DayMinutes, Layout, anchors, day_index, split_mult
from mdw.simulator.roster import Listing, roster
from mdw.simulator.sparse import generate, market_levels
from mdw.simulator.universe import profile

FIRST_EXPIRY = date(2010, 1, 1)
LAST_EXPIRY = date(2040, 11, 30)
MONTHLY_LEAD_DAYS = 270
WEEKLY_LEAD_DAYS = 35
WEEKLY_UNDERLYINGS = frozenset({"SPY", "QQQ", "IWM", "DIA", *REAL_STOCKS[:20]})
_TICKER_RE = re.compile(r"^O:([A-Z.]{1,6})(\d{6})([CP])(\d{8})$")
_STEPS = (0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0)


@dataclass(frozen=True, slots=True)
class Contract:
    ticker: str
    underlying: str
    expiration: date
    contract_type: str  # "call" or "put"
    strike: float
    listed: date  # the first day it trades
    weekly: bool

    def row(self) -> dict[str, object]:
        """The vendor's `/v3/reference/options/contracts` result."""
        return {"cfi": "OCASPS" if self.contract_type == "call" else "OPASPS",
                "contract_type": self.contract_type, "exercise_style": "american",
                "expiration_date": self.expiration.isoformat(), "primary_exchange": "BATO",
                "shares_per_contract": 100, "strike_price": self.strike, "ticker": self.ticker,
                "underlying_ticker": self.underlying}


def occ_ticker(underlying: str, expiration: date, contract_type: str, strike: float) -> str:
    """``O:SPY241220C00500000``: root, YYMMDD, C or P, strike in thousandths on 8 digits."""
    side = "C" if contract_type == "call" else "P"
    return f"O:{underlying}{expiration:%y%m%d}{side}{round(strike * 1000):08d}"


def optionable(row: Listing) -> bool:
    """Whether a security has listed options (legacy names, and liquid market stocks and ETFs)."""
    if row.legacy:
        return True
    return (row.market == "stocks" and row.kind in ("CS", "ETF") and row.trades_per_min >= 2.0
            and row.ticker.isupper() and len(row.ticker) <= 6)


@functools.cache
def _monthly() -> tuple[date, ...]:
    out = []
    for month in range(FIRST_EXPIRY.year * 12, LAST_EXPIRY.year * 12 + 12):
        first = date(month // 12, month % 12 + 1, 1)
        friday = first + timedelta(days=(4 - first.weekday()) % 7 + 14)
        out.append(friday)
    return _on_session(out)


@functools.cache
def _weekly() -> tuple[date, ...]:
    monthly = set(_monthly())
    first = FIRST_EXPIRY + timedelta(days=(4 - FIRST_EXPIRY.weekday()) % 7)
    fridays = [first + timedelta(days=7 * k) for k in range((LAST_EXPIRY - first).days // 7 + 1)]
    return tuple(d for d in _on_session(fridays) if d not in monthly)


def _on_session(fridays: list[date]) -> tuple[date, ...]:
    """Each Friday, or the session before it when the exchange is closed that day."""
    ords = np.asarray([d.toordinal() + 1 for d in fridays], dtype=np.int64)
    return tuple(date.fromordinal(int(d)) for d in sessions.before(ords))


def _listing_day(expiration: date, weekly: bool) -> date:
    lead = WEEKLY_LEAD_DAYS if weekly else MONTHLY_LEAD_DAYS
    return sessions.session_on_or_after(expiration - timedelta(days=lead))


def expirations(seed: int, underlying: str, first: date, last: date) -> list[tuple[date, bool]]:
    """(expiration, weekly) of the underlying's contracts expiring in ``[first, last]``, ascending."""
    row = roster(seed).get(underlying)
    if row is None or not optionable(row):
        return []
    first, last = max(first, FIRST_EXPIRY), min(last, LAST_EXPIRY)
    out: list[tuple[date, bool]] = []
    series = [(_monthly(), False)] + ([(_weekly(), True)] if underlying in WEEKLY_UNDERLYINGS else [])
    for days, weekly in series:
        lo, hi = _bisect(days, first), _bisect(days, last + timedelta(days=1))
        for exp in days[lo:hi]:
            listed = _listing_day(exp, weekly)
            if row.start <= listed and (row.end is None or exp < row.end):
                out.append((exp, weekly))
    return sorted(out)


def _bisect(days: tuple[date, ...], day: date) -> int:
    return bisect.bisect_left(days, day)


def underlying_price(seed: int, underlying: str, day: int) -> tuple[float, float]:
    """Split-adjusted log prices of the underlying at the start and the end of day ``day``'s walk."""
    prof = profile(seed, underlying)
    if prof.entity >= 0:
        return market_levels(seed, prof, day)
    level, end_level = anchors(seed, underlying)
    return float(level[day]), float(end_level[day])


@functools.lru_cache(maxsize=4096)
def chain(seed: int, underlying: str, expiration: date, weekly: bool) -> tuple[Contract, ...]:
    """Every contract of one expiration, in ticker order (calls, then puts; strikes ascending)."""
    listed = _listing_day(expiration, weekly)
    level = underlying_price(seed, underlying, day_index(listed))[0]
    spot = math.exp(level) * split_mult(seed, underlying, listed)
    step = max([s for s in _STEPS if s <= spot * 0.025] or [_STEPS[0]])
    width = 0.10 if weekly else 0.25
    lo, hi = math.ceil(spot * (1 - width) / step), math.floor(spot * (1 + width) / step)
    strikes = [round(k * step, 2) for k in range(max(lo, 1), hi + 1)]
    return tuple(
        Contract(occ_ticker(underlying, expiration, kind, strike), underlying, expiration, kind, strike,
                 listed, weekly)
        for kind in ("call", "put") for strike in strikes
    )


@functools.lru_cache(maxsize=16384)
def contract(seed: int, ticker: str) -> Contract | None:
    """The contract a ticker names, or None when the simulated market never listed it."""
    match = _TICKER_RE.fullmatch(ticker)
    if match is None:
        return None
    root, ymd, _, _ = match.groups()
    try:
        expiration = date(2000 + int(ymd[:2]), int(ymd[2:4]), int(ymd[4:]))
    except ValueError:
        return None
    for exp, weekly in expirations(seed, root, expiration, expiration):
        for c in chain(seed, root, exp, weekly):
            if c.ticker == ticker:
                return c
    return None


def contract_day(seed: int, ticker: str, layout: Layout, day: date) -> DayMinutes | None:
    """A contract's minute bars on ``day``: regular hours, from its listing to its expiration."""
    c = contract(seed, ticker)
    if c is None or not c.listed <= day <= c.expiration:
        return None
    prof = profile(seed, c.underlying)
    basis = split_mult(seed, c.underlying, c.listed)
    start_lp, end_lp = underlying_price(seed, c.underlying, day_index(day))
    sigma = prof.daily_vol * math.sqrt(252.0)
    days_left = (c.expiration - day).days
    value_open = _value(math.exp(start_lp) * basis, c, sigma, (days_left + 0.6) / 365.0)
    value_close = _value(math.exp(end_lp) * basis, c, sigma, (days_left + 0.1) / 365.0)
    spot = math.exp(start_lp) * basis
    moneyness = math.log(spot / c.strike)
    busy = 3.0 if c.underlying in WEEKLY_UNDERLYINGS else 1.0
    tpm = (0.02 + 0.6 * math.exp(-(moneyness / 0.08) ** 2)) * busy
    key = stable_hash("option-path", seed, ticker) & ((1 << 63) - 1)
    return generate(layout, key, day, tpm=tpm, size=5.0, vol=0.15, start_lp=math.log(value_open),
                    end_lp=math.log(value_close), decimals=2, extended=False, min_price=0.01)


def _value(spot: float, c: Contract, sigma: float, years: float) -> float:
    """Black-Scholes value without rates or dividends, floored at one cent."""
    root = sigma * math.sqrt(years)
    d1 = (math.log(spot / c.strike) + 0.5 * root * root) / root
    d2 = d1 - root
    if c.contract_type == "call":
        value = spot * _cdf(d1) - c.strike * _cdf(d2)
    else:
        value = c.strike * _cdf(-d2) - spot * _cdf(-d1)
    return max(value, 0.01)


def _cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))
