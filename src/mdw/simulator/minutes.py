"""Which generator makes a ticker's minute bars on a day, and the one cache in front of them all.

- legacy names (and any well-formed ticker outside the roster): :func:`paths.legacy_day`;
- market securities, only on the days their ticker is listed: :func:`sparse.market_day`;
- option contracts, from listing to expiration: :func:`options.contract_day`.
"""

from __future__ import annotations

import functools
from datetime import date, timedelta

import numpy as np

from mdw.domain import AssetClass
from mdw.errors import UsageError
from mdw.simulator import options, paths, sparse
from mdw.simulator.paths import DayMinutes
from mdw.simulator.universe import Profile, is_preferred_form, market_listing, profile


def profile_or_none(seed: int, ticker: str) -> Profile | None:
    """The ticker's profile, or None when it is not a ticker the simulator can serve."""
    try:
        return profile(seed, ticker)
    except UsageError:
        return None


@functools.lru_cache(maxsize=1024)
def day_minutes(seed: int, ticker: str, day: date) -> DayMinutes | None:
    """All minute bars of ``ticker`` on ``day`` (its local trading day), or None without any."""
    if not paths.in_domain(day) or not paths.in_domain(day + timedelta(days=1)):
        return None
    prof = profile_or_none(seed, ticker)
    if prof is None:
        return None
    if prof.asset is AssetClass.OPTIONS:
        layout = paths.layout(prof, day)
        return None if layout is None else options.contract_day(seed, ticker, layout, day)
    if prof.entity >= 0:
        row = market_listing(seed, ticker)
        layout = paths.layout(prof, day)
        if row is None or layout is None or not row.listed_on(day):
            return None
        return sparse.market_day(seed, prof, layout, day, paths.split_mult(seed, ticker, day))
    if is_preferred_form(ticker):
        return None
    return paths.legacy_day(seed, ticker, day)


def start_price(seed: int, ticker: str, day: date) -> float:
    """The unadjusted price where ``day``'s trading starts (dividends are sized from it)."""
    prof = profile(seed, ticker)
    di = paths.day_index(day)
    if prof.entity >= 0:
        level = sparse.market_levels(seed, prof, di)[0]
    else:
        level = float(paths.anchors(seed, ticker)[0][di])
    # np.exp, as the legacy names' dividend amounts always were (math.exp may differ in the last bit)
    return float(np.exp(level)) * paths.split_mult(seed, ticker, day)
