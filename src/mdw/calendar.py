"""Trading sessions: which bar windows can exist for an asset class, timeframe and range.

US stocks, ETFs, options and indices follow the NYSE calendar (XNYS from exchange_calendars):
regular hours 09:30-16:00 ET, extended hours 04:00-20:00 ET, holidays and early closes (an
early close ends regular trading at 13:00 ET and extended trading at 17:00 ET). Crypto trades
24/7 in UTC; forex trades 24/5, from Sunday 17:00 ET to Friday 17:00 ET.

The planner asks :func:`tradable` for the windows that can hold bars, so that no request goes
out for a weekend or a holiday, and status and freshness ask it to tell gaps from closed markets.

This module is pure: it reads no file and no clock. The NYSE session table comes from an
injected :data:`SessionLoader` (:func:`use_sessions`). By default the table is computed in memory
from exchange_calendars, which costs about a second per process; the CLI, the service and the
Python API inject :func:`mdw.calendar_cache.disk_cached`, which keeps it on disk between runs.
"""

from __future__ import annotations

import bisect
import functools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from mdw.domain import (
    DAY_MS,
    NEW_YORK,
    AssetClass,
    RangeSet,
    Timeframe,
    TimeRange,
    from_ms,
    local_midnight_ms,
)
from mdw.errors import UsageError

EXTENDED_OPEN = time(4, 0)
EXTENDED_CLOSE = time(20, 0)
EARLY_EXTENDED_CLOSE = time(17, 0)
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
FIRST_YEAR = 1990
LAST_YEAR = 2040

if TYPE_CHECKING:
    from exchange_calendars import ExchangeCalendar

# One NYSE trading day: its ISO date, then extended open, regular open, regular close and
# extended close, as UTC epoch ms. Plain values, so a loader can keep them in any format.
SessionRow = tuple[str, int, int, int, int]
SessionLoader = Callable[[], Sequence[SessionRow]]


@dataclass(frozen=True, slots=True)
class Session:
    """One NYSE trading day, as UTC epoch ms."""

    day: date
    extended_open_ms: int
    regular_open_ms: int
    regular_close_ms: int
    extended_close_ms: int

    @property
    def early_close(self) -> bool:
        return self.regular_close_ms < _at(self.day, REGULAR_CLOSE)


def _at(day: date, t: time) -> int:
    return int(datetime.combine(day, t, tzinfo=NEW_YORK).timestamp() * 1000)


@functools.cache
def _xnys() -> ExchangeCalendar:
    # exchange_calendars trips pandas' deprecation warnings on newer pandas; they are its business,
    # and the test suite turns warnings into errors, so they are silenced for this one call.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        import exchange_calendars as xcals  # imported lazily: it takes a quarter second

        return xcals.get_calendar("XNYS", start=f"{FIRST_YEAR}-01-01", end=f"{LAST_YEAR}-12-31")


@functools.cache
def build_sessions() -> tuple[SessionRow, ...]:
    """The NYSE session table computed from exchange_calendars (the default loader; no disk)."""
    cal = _xnys()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        closes = cal.schedule["close"]
    rows: list[SessionRow] = []
    for label, close in closes.items():
        day = label.date()
        close_ms = int(close.timestamp() * 1000)
        early = close_ms < _at(day, REGULAR_CLOSE)
        rows.append((day.isoformat(), _at(day, EXTENDED_OPEN), _at(day, REGULAR_OPEN), close_ms,
                     _at(day, EARLY_EXTENDED_CLOSE if early else EXTENDED_CLOSE)))
    return tuple(rows)


_loader: SessionLoader = build_sessions


def use_sessions(loader: SessionLoader) -> None:
    """Take the NYSE session table from ``loader`` from now on (read at the next lookup).

    The CLI, the service and the Python API call this with a disk-cached loader at start-up;
    tests may inject a fixed table. Everything here asks the loader, never a file.
    """
    global _loader
    _loader = loader
    _session_table.cache_clear()
    tradable.cache_clear()


@functools.cache
def _session_table() -> tuple[tuple[date, ...], dict[date, Session]]:
    days: list[date] = []
    table: dict[date, Session] = {}
    for iso, ext_open, reg_open, reg_close, ext_close in _loader():
        day = date.fromisoformat(iso)
        table[day] = Session(day, int(ext_open), int(reg_open), int(reg_close), int(ext_close))
        days.append(day)
    return tuple(days), table


def nyse_sessions(start: date, end: date) -> list[Session]:
    """NYSE sessions with ``start <= day <= end``."""
    days, table = _session_table()
    lo = bisect.bisect_left(days, start)
    hi = bisect.bisect_right(days, end)
    return [table[d] for d in days[lo:hi]]


def nyse_session(day: date) -> Session | None:
    """The NYSE session on ``day``, or None on weekends and holidays."""
    return _session_table()[1].get(day)


def nyse_holiday_names(year: int) -> dict[date, str]:
    """The names of the NYSE's regular holidays in ``year`` (weekday closures only)."""
    with warnings.catch_warnings():  # see _xnys: exchange_calendars' pandas deprecations
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        names = _xnys().regular_holidays.holidays(f"{year}-01-01", f"{year}-12-31", return_name=True)
    return {ts.date(): str(name) for ts, name in names.items()}


def uses_nyse(asset: AssetClass) -> bool:
    return asset in (AssetClass.STOCKS, AssetClass.OPTIONS, AssetClass.INDICES)


def _local_days(rng: TimeRange, asset: AssetClass) -> tuple[date, date]:
    tz = asset.tz
    first = from_ms(rng.start_ms).astimezone(tz).date()
    last = from_ms(max(rng.start_ms, rng.end_ms - 1)).astimezone(tz).date()
    return first, last


def trading_days(asset: AssetClass, rng: TimeRange) -> list[date]:
    """Local dates in ``rng`` on which the market trades (daily-bar dates)."""
    if rng.empty:
        return []
    first, last = _local_days(rng, asset)
    if uses_nyse(asset):
        return [s.day for s in nyse_sessions(first, last)]
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    if asset is AssetClass.FOREX:
        days = [d for d in days if d.weekday() != 5]  # Saturday holds no fx daily bar
    return days


def _intraday_windows(asset: AssetClass, first: date, last: date) -> list[TimeRange]:
    if uses_nyse(asset):
        return [TimeRange(s.extended_open_ms, s.extended_close_ms) for s in nyse_sessions(first, last)]
    if asset is AssetClass.CRYPTO:
        return [TimeRange(local_midnight_ms(first, asset.tz), local_midnight_ms(last, asset.tz) + DAY_MS)]
    # Forex: Sunday 17:00 ET to Friday 17:00 ET.
    out: list[TimeRange] = []
    day = first - timedelta(days=7)
    while day <= last + timedelta(days=7):
        if day.weekday() == 6:
            out.append(TimeRange(_at(day, time(17)), _at(day + timedelta(days=5), time(17))))
        day += timedelta(days=1)
    return out


@functools.lru_cache(maxsize=4096)
def tradable(asset: AssetClass, timeframe: Timeframe, rng: TimeRange) -> RangeSet:
    """The parts of ``rng`` in which a bar of ``timeframe`` can start (memoised: the planner asks the
    same ranges for many tickers; the memo is cleared when :func:`use_sessions` changes the table).

    Intraday timeframes get the trading hours (extended hours for US stocks), widened to the
    bar windows that touch them; daily timeframes get whole local trading days (for stocks,
    00:00 ET to 00:00 ET), and weekly and longer ones also the closed days between their window
    start (Sunday 00:00, the 1st) and their first trading day. Everything outside can hold no
    bar, so it is never a gap and never worth a request.
    """
    if rng.empty:
        return RangeSet()
    first, last = _local_days(rng, asset)
    if timeframe.intraday:
        windows = _intraday_windows(asset, first - timedelta(days=1), last + timedelta(days=1))
        step = timeframe.fixed_ms or 60_000
        # A bar window that starts before the open but overlaps it still holds the open's trades.
        widened = [TimeRange(_floor(w.start_ms, step, asset), w.end_ms) for w in windows]
        return RangeSet.of(widened).clip(rng)
    # A weekly/monthly/... bar starts at its window start (Sunday, the 1st) even when that day is
    # closed, so each trading day is widened back to the start of the window holding it; look far
    # enough ahead to find the first trading day of the window that holds ``rng.start_ms``.
    ahead = _WINDOW_DAYS.get(timeframe.unit, 1) * DAY_MS
    days = trading_days(asset, TimeRange(rng.start_ms - DAY_MS, rng.end_ms + ahead))
    tz = asset.tz
    spans = [
        TimeRange(
            bar_window_start(asset, timeframe, local_midnight_ms(d, tz)),
            local_midnight_ms(d + timedelta(days=1), tz),
        )
        for d in days
    ]
    return RangeSet.of(spans).clip(rng)


# The longest calendar window of each unit, in days.
_WINDOW_DAYS = {"d": 1, "w": 7, "mo": 31, "q": 92, "y": 366}


def _floor(ms: int, step: int, asset: AssetClass) -> int:
    """Floor to a multiple of ``step`` counted from local midnight (bars are anchored there)."""
    tz = asset.tz
    day = from_ms(ms).astimezone(tz).date()
    base = local_midnight_ms(day, tz)
    return base + ((ms - base) // step) * step


def bar_window_start(asset: AssetClass, timeframe: Timeframe, ms: int) -> int:
    """The start of the ``timeframe`` window holding ``ms`` (intraday: anchored at local midnight)."""
    if timeframe.intraday:
        return _floor(ms, timeframe.fixed_ms or 60_000, asset)
    tz = asset.tz
    day = from_ms(ms).astimezone(tz).date()
    if timeframe.unit == "d":
        return local_midnight_ms(day, tz)
    if timeframe.unit == "w":
        return local_midnight_ms(day - timedelta(days=(day.weekday() + 1) % 7), tz)  # Sunday
    if timeframe.unit == "mo":
        return local_midnight_ms(day.replace(day=1), tz)
    if timeframe.unit == "q":
        return local_midnight_ms(date(day.year, 3 * ((day.month - 1) // 3) + 1, 1), tz)
    return local_midnight_ms(date(day.year, 1, 1), tz)


def is_market_open(asset: AssetClass, ms: int, *, extended: bool = True) -> bool:
    """Whether ``asset`` trades at ``ms`` (extended hours count for stocks unless told not to)."""
    if asset is AssetClass.CRYPTO:
        return True
    if asset is AssetClass.FOREX:
        return any(ms in w for w in _intraday_windows(asset, from_ms(ms).date(), from_ms(ms).date()))
    sess = nyse_session(from_ms(ms).astimezone(NEW_YORK).date())
    if sess is None:
        return False
    if extended:
        return sess.extended_open_ms <= ms < sess.extended_close_ms
    return sess.regular_open_ms <= ms < sess.regular_close_ms


def next_session_close(after_ms: int) -> Session:
    """The first NYSE session whose regular close is after ``after_ms``."""
    day = from_ms(after_ms).astimezone(NEW_YORK).date()
    for sess in nyse_sessions(day - timedelta(days=1), day + timedelta(days=14)):
        if sess.regular_close_ms > after_ms:
            return sess
    raise UsageError(f"no NYSE session within two weeks of {from_ms(after_ms).isoformat()}; "
                     f"the calendar covers {FIRST_YEAR} to {LAST_YEAR}")
