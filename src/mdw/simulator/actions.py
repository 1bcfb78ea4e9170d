"""Corporate actions of the simulated stocks: splits (forward and reverse) and quarterly dividends.

Well-known tickers get fixed, documented actions (some real, some invented so that every test
finds recent ones); other stocks get seeded random ones. Prices are built around them: the
unadjusted price jumps by the split ratio on the execution date, and drops by about the cash
amount on each ex-dividend date (see :mod:`mdw.simulator.paths`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from mdw.calendar import nyse_session
from mdw.domain import AssetClass, Split, parse_ticker
from mdw.simulator.universe import ETFS, stable_hash

DOMAIN_START = date(2000, 1, 1)
DOMAIN_END = date(2040, 12, 31)

# (execution date, split_from, split_to). Dates in 2025-2026 are invented for the simulation.
KNOWN_SPLITS: dict[str, tuple[tuple[date, float, float], ...]] = {
    "AAPL": ((date(2014, 6, 9), 1, 7), (date(2020, 8, 31), 1, 4), (date(2025, 6, 9), 1, 2)),
    "NVDA": ((date(2021, 7, 20), 1, 4), (date(2024, 6, 10), 1, 10), (date(2026, 3, 16), 1, 2)),
    "TSLA": ((date(2020, 8, 31), 1, 5), (date(2022, 8, 25), 1, 3)),
    "AMZN": ((date(2022, 6, 6), 1, 20),),
    "GOOGL": ((date(2022, 7, 18), 1, 20),),
    "GOOG": ((date(2022, 7, 18), 1, 20),),
    "SIRI": ((date(2025, 5, 12), 10, 1),),  # reverse 1-for-10
    "GME": ((date(2022, 7, 22), 1, 4), (date(2026, 2, 9), 5, 1)),  # the second is a reverse split
}
# Quarterly payers: (first ex-date year, annual yield). Others are drawn at random.
KNOWN_DIVIDENDS: dict[str, tuple[int, float]] = {
    "AAPL": (2012, 0.006), "MSFT": (2004, 0.009), "NVDA": (2012, 0.0004), "KO": (2000, 0.03),
    "JNJ": (2000, 0.029), "XOM": (2000, 0.034), "JPM": (2000, 0.024), "PG": (2000, 0.025),
    "SPY": (2000, 0.014), "QQQ": (2004, 0.006), "PEP": (2000, 0.028), "T": (2000, 0.05),
}
NO_DIVIDENDS = frozenset({"TSLA", "AMZN", "GOOGL", "GOOG", "SIRI", "GME", "BRK.B", "NFLX"})


@dataclass(frozen=True, slots=True)
class DividendPlan:
    """A dividend before its cash amount is known (the amount follows the simulated price)."""

    ex_date: date
    yield_q: float  # fraction of the price paid, which the price drops by on the ex-date
    declaration_date: date
    record_date: date
    pay_date: date


def _session_on_or_after(day: date) -> date:
    while nyse_session(day) is None:
        day += timedelta(days=1)
    return day


def _is_stock(ticker: str) -> bool:
    try:
        return parse_ticker(ticker).asset_class is AssetClass.STOCKS
    except Exception:
        return False


@functools.lru_cache(maxsize=8192)
def splits_for(seed: int, ticker: str) -> tuple[Split, ...]:
    """Every split of ``ticker`` in the simulated history (past and future), oldest first."""
    if not _is_stock(ticker):
        return ()
    raw: list[tuple[date, float, float]]
    if ticker in KNOWN_SPLITS:
        raw = list(KNOWN_SPLITS[ticker])
    else:
        rng = np.random.default_rng([seed, stable_hash("splits", ticker)])
        raw = []
        if ticker not in ETFS and rng.random() < 0.12:
            day = _session_on_or_after(DOMAIN_START + timedelta(days=int(rng.integers(1500, 9500))))
            if rng.random() < 0.3:
                raw.append((day, float(rng.choice([5, 8, 10, 20])), 1.0))
            else:
                raw.append((day, 1.0, float(rng.choice([2, 3, 4, 5, 10]))))
    return tuple(
        Split(id=f"E{stable_hash('split', seed, ticker, d):016x}", ticker=ticker, execution_date=d,
              split_from=float(f), split_to=float(t))
        for d, f, t in sorted(raw)
    )


@functools.lru_cache(maxsize=8192)
def dividend_plans(seed: int, ticker: str) -> tuple[DividendPlan, ...]:
    """The quarterly dividends of ``ticker`` over the whole simulated history, oldest first."""
    if not _is_stock(ticker) or ticker in NO_DIVIDENDS:
        return ()
    rng = np.random.default_rng([seed, stable_hash("dividends", ticker)])
    if ticker in KNOWN_DIVIDENDS:
        first_year, annual = KNOWN_DIVIDENDS[ticker]
    elif rng.random() < 0.35:
        first_year, annual = int(rng.integers(2000, 2022)), float(0.005 + 0.04 * rng.random())
    else:
        return ()
    month0 = 1 + stable_hash("div-month", ticker) % 3
    day0 = 8 + stable_hash("div-day", ticker) % 10
    out: list[DividendPlan] = []
    for year in range(first_year, DOMAIN_END.year + 1):
        for month in range(month0, 13, 3):
            ex = _session_on_or_after(date(year, month, day0))
            if ex > DOMAIN_END - timedelta(days=30):
                continue
            record = _session_on_or_after(ex + timedelta(days=1))
            out.append(DividendPlan(ex, annual / 4, ex - timedelta(days=28), record,
                                    record + timedelta(days=14)))
    return tuple(out)


def split_multiplier(splits: tuple[Split, ...], ordinals: np.ndarray) -> np.ndarray:
    """Per day (as ``date.toordinal()``): the product of the ratios of splits executed after it.

    An unadjusted price is the split-adjusted price times this (history before a 4-for-1 split
    trades four times higher).
    """
    out = np.ones(len(ordinals), dtype=np.float64)
    for s in splits:
        out[ordinals < s.execution_date.toordinal()] *= s.ratio
    return out


def adjustment_factor(splits: tuple[Split, ...], ordinals: np.ndarray, as_of: date) -> np.ndarray:
    """Per day: the cumulative ratio of splits after the day and on or before ``as_of``.

    Adjusted prices are unadjusted prices divided by this; adjusted volumes are multiplied by it.
    """
    out = np.ones(len(ordinals), dtype=np.float64)
    for s in splits:
        if s.execution_date <= as_of:
            out[ordinals < s.execution_date.toordinal()] *= s.ratio
    return out
