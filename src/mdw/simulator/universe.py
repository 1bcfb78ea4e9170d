"""Each ticker's deterministic profile (price level, volatility, liquidity), and the listed pairs.

Market securities (see :mod:`mdw.simulator.roster`) take their profile from the roster. Any other
well-formed ticker has a profile derived from the seed and its name alone, so a ticker outside
the listed universe still gets bars.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from mdw.domain import AssetClass, parse_ticker
from mdw.errors import UsageError
from mdw.simulator.names import (
    BASE_PRICES,
    ETFS,
    REAL_CRYPTO,
    REAL_FX,
    REAL_STOCKS,
    stable_hash,
    synthetic_stocks,
)
from mdw.simulator.roster import Listing, roster

_PREFERRED_RE = re.compile(r"^[A-Z]{1,6}p[A-Z]$")  # the vendor's preferred shares: KIMpL, BACpB


@dataclass(frozen=True, slots=True)
class Profile:
    """How one ticker trades in the simulation."""

    ticker: str
    asset: AssetClass
    base_price: float  # level the log price reverts to (split-adjusted, as of the far future)
    daily_vol: float  # standard deviation of daily log returns
    trades_per_min: float  # mean trades per regular-hours minute (thin names are low)
    trade_size: float  # mean shares (or coins, or quotes) per trade
    decimals: int  # price rounding
    entity: int = -1  # a market security's index in the roster (its paths are keyed by it); -1: none

    @property
    def has_volume(self) -> bool:
        return self.asset is not AssetClass.INDICES


def market_listing(seed: int, ticker: str) -> Listing | None:
    """The roster listing of a market security (not a legacy name), or None."""
    if ":" in ticker[:2]:
        return None
    row = roster(seed).get(ticker)
    return row if row is not None and not row.legacy else None


def is_preferred_form(ticker: str) -> bool:
    """Whether ``ticker`` has the vendor's mixed-case preferred-share form (``KIMpL``)."""
    return _PREFERRED_RE.fullmatch(ticker) is not None


@functools.lru_cache(maxsize=16384)
def profile(seed: int, ticker: str) -> Profile:
    """The profile of a vendor ticker (``AAPL``, ``KIMpL``, ``X:BTCUSD`` ...).

    Raises:
        UsageError: the ticker is not well formed (or a preferred form the roster does not hold).
    """
    row = market_listing(seed, ticker)
    if row is not None:
        price = row.base_price
        decimals = 2 if price >= 1000 else 4 if price >= 0.01 else 8
        return Profile(ticker, AssetClass.STOCKS, price, row.daily_vol, row.trades_per_min, row.trade_size,
                       decimals, row.entity)
    tk = parse_ticker(ticker)
    if tk.symbol != ticker or ticker != ticker.upper():  # mixed case: only the roster's preferreds
        raise UsageError(f"not a vendor ticker: {ticker!r}")
    rng = np.random.default_rng([seed, stable_hash("profile", ticker)])
    u = rng.random(6)
    asset = tk.asset_class
    known = ticker in BASE_PRICES
    if asset is AssetClass.CRYPTO:
        price = BASE_PRICES.get(ticker, float(10 ** (u[0] * 4 - 1)))
        vol, tpm, size = 0.03 + 0.02 * u[1], 2.0 + 20 * u[2] ** 2, 0.05 + u[3]
    elif asset is AssetClass.FOREX:
        price = BASE_PRICES.get(ticker, 0.5 + 1.5 * float(u[0]))
        vol, tpm, size = 0.004 + 0.004 * u[1], 20.0 + 30 * u[2], 1.0
    elif asset is AssetClass.INDICES:
        price = 1000.0 + 4000.0 * float(u[0])
        vol, tpm, size = 0.01, 1.0, 1.0
    else:
        price = BASE_PRICES.get(ticker, float(np.exp(np.log(5.0) + u[0] * np.log(80.0))))
        vol = 0.012 + 0.02 * u[1]
        liquid = known or ticker in REAL_STOCKS or ticker in ETFS
        tpm = (20.0 + 80.0 * u[2]) if liquid else (0.3 + 12.0 * u[2] ** 2)
        if asset is AssetClass.OPTIONS:
            price, tpm = 1.0 + 20 * float(u[0]), 0.2 + u[2]
        size = 50.0 + 250.0 * u[3]
    decimals = 2 if price >= 1000 else 4 if price >= 0.01 else 8
    return Profile(ticker, asset, float(price), float(vol), float(tpm), float(size), decimals)


@functools.lru_cache(maxsize=64)
def listed_pairs(seed: int, asset: AssetClass, n_crypto: int, n_fx: int) -> tuple[str, ...]:
    """The crypto or forex tickers reference data lists and grouped daily includes, sorted."""
    if asset is AssetClass.CRYPTO:
        pairs = dict.fromkeys(REAL_CRYPTO[:n_crypto])
        for name in synthetic_stocks(seed + 1, 4 * max(0, n_crypto - len(pairs))):
            if len(pairs) >= n_crypto:
                break
            pairs.setdefault(f"{name[:3]}USD")
        return tuple(sorted("X:" + p for p in pairs))
    if asset is AssetClass.FOREX:
        return tuple(sorted("C:" + p for p in REAL_FX[:n_fx]))
    return ()


