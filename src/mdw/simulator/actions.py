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
from mdw.simulator import sessions
from mdw.simulator.names import ETFS, stable_hash
from mdw.simulator.noise import uniform
from mdw.simulator.roster import Listing, roster
from mdw.simulator.universe import market_listing

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
    frequency: int = 4  # payments a year; 0 for a special (one-off) dividend
    special: bool = False


def _session_on_or_after(day: date) -> date:
    while nyse_session(day) is None:
        day += timedelta(days=1)
    return day


def adjustment_type(split: Split) -> str:
    """The vendor's ``adjustment_type``: a share change under 1.25 per share is a stock dividend."""
    if split.split_from > split.split_to:
        return "reverse_split"
    return "stock_dividend" if split.ratio < 1.25 else "forward_split"


def _is_stock(ticker: str) -> bool:
    try:
        return parse_ticker(ticker).asset_class is AssetClass.STOCKS
    except Exception:
        return False


@functools.lru_cache(maxsize=16384)
def splits_for(seed: int, ticker: str) -> tuple[Split, ...]:
    """Every split of ``ticker`` in the simulated history (past and future), oldest first."""
    row = market_listing(seed, ticker)
    if row is not None:
        return _market_splits(seed, row)
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


@functools.lru_cache(maxsize=16384)
def dividend_plans(seed: int, ticker: str) -> tuple[DividendPlan, ...]:
    """The dividends of ``ticker`` over the whole simulated history, oldest first.

    A market security's dividends belong to it, whatever its ticker: a ticker gets those whose
    ex-date falls while it is the security's symbol.
    """
    row = market_listing(seed, ticker)
    if row is not None:
        return tuple(p for p in entity_dividends(seed, row.entity) if row.listed_on(p.ex_date))
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


# kind -> (share of payers, payments a year, annual yield range)
_PAYERS = {"CS": (0.3, 4, (0.005, 0.05)), "ETF": (0.5, 4, (0.005, 0.04)), "ADRC": (0.25, 2, (0.01, 0.05)),
           "PFD": (1.0, 4, (0.05, 0.075))}


@dataclass(frozen=True, slots=True)
class Schedule:
    """A market security's dividends as arrays (what its price path needs), oldest first."""

    ex: np.ndarray  # ex-dates as ordinals
    yields: np.ndarray  # fraction of the price paid (the price drops by it)
    frequency: np.ndarray  # payments a year; 0 for a special dividend


_SIX, _EIGHT = np.arange(6, dtype=np.int64), np.arange(8, dtype=np.int64)
_NO_SCHEDULE = Schedule(np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int64))
_EPOCH = date(1970, 1, 1).toordinal()


@functools.lru_cache(maxsize=16384)
def dividend_schedule(seed: int, entity: int) -> Schedule:
    """The dividends of a market security (all its tickers), drawn in one vectorised pass.

    About 30% of common stocks, half the ETFs (a quarter of those monthly), a quarter of the ADRs
    (twice a year) and every preferred pay; OTC names do not. One payer in twenty also pays one
    special dividend. Ex-dates fall on a fixed day of the month (the next session if closed).
    """
    rows = roster(seed).of_entity(entity)
    first = rows[0]
    if first.market != "stocks" or first.kind not in _PAYERS:
        return _NO_SCHEDULE
    share, frequency, (low, high) = _PAYERS[first.kind]
    u = uniform(stable_hash("market-dividends", seed, entity), 0, _SIX).tolist()
    if u[0] >= share:
        return _NO_SCHEDULE
    if first.kind == "ETF" and u[1] < 0.25:
        frequency = 12
    annual = low + (high - low) * u[2]
    stop = min(rows[-1].end or DOMAIN_END, DOMAIN_END - timedelta(days=30)).toordinal()
    begin = first.start + timedelta(days=90 + int(u[3] * 450))
    day0 = 3 + stable_hash("div-day", seed, entity) % 20
    months = np.arange(begin.year * 12 + begin.month - 1, 2041 * 12, 12 // frequency) - 1970 * 12
    wanted = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) + (day0 - 1) + _EPOCH
    yields = np.full(len(wanted), annual / frequency)
    freqs = np.full(len(wanted), frequency, dtype=np.int64)
    if u[4] < 0.05 and stop > begin.toordinal():
        wanted = np.append(wanted, begin.toordinal() + int(u[5] * (stop - begin.toordinal())))
        yields, freqs = np.append(yields, 0.02 + 0.06 * u[1]), np.append(freqs, 0)
    ex = sessions.on_or_after(wanted)
    keep = (wanted < stop) & (ex < stop)
    ex, yields, freqs = ex[keep], yields[keep], freqs[keep]
    ex, first_of = np.unique(ex, return_index=True)  # a special on a regular ex-date is dropped
    return Schedule(ex, yields[first_of], freqs[first_of])


@functools.lru_cache(maxsize=4096)
def entity_dividends(seed: int, entity: int) -> tuple[DividendPlan, ...]:
    """The dividends of a market security (all its tickers), oldest first; see dividend_schedule."""
    sched = dividend_schedule(seed, entity)
    records = sessions.on_or_after(sched.ex + 1).tolist()
    out = []
    for ex_ord, record_ord, yield_q, freq in zip(sched.ex.tolist(), records, sched.yields.tolist(),
                                                 sched.frequency.tolist(), strict=True):
        ex, record = date.fromordinal(ex_ord), date.fromordinal(record_ord)
        out.append(DividendPlan(ex, yield_q, ex - timedelta(days=28 if freq else 14), record,
                                record + timedelta(days=14), freq, freq == 0))
    return tuple(out)


def _market_splits(seed: int, row: Listing) -> tuple[Split, ...]:
    """About 8% of the market's common stocks and ADRs split once (30% of those in reverse), and
    3% pay one or two stock dividends (5% or 10% more shares). A renamed security never splits,
    so its adjusted history is the same under either ticker."""
    if row.kind not in ("CS", "ADRC", "ETF") or len(roster(seed).of_entity(row.entity)) > 1:
        return ()
    u = uniform(stable_hash("market-splits", seed, row.entity), 0, _EIGHT).tolist()
    stop = min(row.end or DOMAIN_END, DOMAIN_END) - timedelta(days=30)
    span = (stop - row.start).days - 200
    if span <= 0:
        return ()
    raw: list[tuple[int, float, float]] = []
    at = row.start.toordinal() + 200
    if row.kind != "ETF" and u[0] < 0.08:
        if u[1] < 0.3:
            raw.append((at + int(u[2] * span), float((5, 8, 10, 20)[int(u[3] * 4)]), 1.0))
        else:
            raw.append((at + int(u[2] * span), 1.0, float((2, 3, 4, 5, 10)[int(u[3] * 5)])))
    if row.kind == "CS" and u[4] < 0.03:
        for k in range(1 + int(u[5] < 0.4)):
            raw.append((at + int(u[6 + k] * span), 1.0, 1.05 if k == 0 else 1.1))
    days = sessions.on_or_after(np.asarray([r[0] for r in raw], dtype=np.int64)).tolist() if raw else []
    seen: dict[date, tuple[float, float]] = {}
    for ordinal, (_, f, t) in zip(days, raw, strict=True):
        seen.setdefault(date.fromordinal(ordinal), (f, t))
    return tuple(
        Split(id=f"E{stable_hash('split', seed, row.ticker, d):016x}", ticker=row.ticker, execution_date=d,
              split_from=f, split_to=t)
        for d, (f, t) in sorted(seen.items())
    )


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
