"""Market status: upcoming holidays and early closes (from the NYSE calendar), and the status now."""

from __future__ import annotations

import functools
import warnings
from datetime import date, timedelta

from mdw.calendar import is_market_open, nyse_session, nyse_sessions
from mdw.domain import NEW_YORK, AssetClass, from_ms

_EXCHANGES = ("NYSE", "NASDAQ")


@functools.lru_cache(maxsize=1)
def _holiday_table() -> dict[date, str]:
    import exchange_calendars as xcals

    with warnings.catch_warnings():  # pandas deprecation noise inside exchange_calendars
        warnings.simplefilter("ignore")
        cal = xcals.get_calendar("XNYS", start="1991-01-01", end="2040-12-31")
        names = cal.regular_holidays.holidays("1991-01-01", "2040-12-31", return_name=True)
    return {ts.date(): str(name) for ts, name in names.items()}


def _holiday_name(day: date) -> str | None:
    """The holiday's name; an early close borrows the name of the holiday next to it."""
    table = _holiday_table()
    for offset in (0, 1, -1):
        name = table.get(day + timedelta(days=offset))
        if name:
            return name
    return None


def _iso_z(ms: int) -> str:
    return from_ms(ms).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def upcoming(now_ms: int, days: int = 400) -> list[dict[str, object]]:
    """Holidays (``closed``) and early closes (``early-close``) from today on, one row per exchange."""
    today = from_ms(now_ms).astimezone(NEW_YORK).date()
    out: list[dict[str, object]] = []
    sessions = {s.day: s for s in nyse_sessions(today, today + timedelta(days=days))}
    for offset in range(days + 1):
        day = today + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        sess = sessions.get(day)
        if sess is not None and not sess.early_close:
            continue
        name = _holiday_name(day)
        for exchange in _EXCHANGES:
            row: dict[str, object] = {"exchange": exchange, "name": name or "Market Holiday",
                                   "date": day.isoformat()}
            if sess is None:
                row["status"] = "closed"
            else:
                row |= {"status": "early-close", "open": _iso_z(sess.regular_open_ms),
                        "close": _iso_z(sess.regular_close_ms)}
            out.append(row)
    return out


def market_status_now(now_ms: int) -> dict[str, object]:
    """The ``/v1/marketstatus/now`` object at the data clock ``now_ms``."""
    et = from_ms(now_ms).astimezone(NEW_YORK)
    sess = nyse_session(et.date())
    regular = is_market_open(AssetClass.STOCKS, now_ms, extended=False)
    extended = is_market_open(AssetClass.STOCKS, now_ms, extended=True)
    early = bool(sess and extended and not regular and now_ms < sess.regular_open_ms)
    after = bool(sess and extended and not regular and now_ms >= sess.regular_close_ms)
    market = "open" if regular else "extended-hours" if extended else "closed"
    exch = "open" if regular else "extended-hours" if extended else "closed"
    fx = "open" if is_market_open(AssetClass.FOREX, now_ms) else "closed"
    indices = "open" if regular else "closed"
    return {
        "afterHours": after,
        "currencies": {"crypto": "open", "fx": fx},
        "earlyHours": early,
        "exchanges": {"nasdaq": exch, "nyse": exch, "otc": exch},
        "indicesGroups": {k: indices for k in ("s_and_p", "societe_generale", "cgi", "msci", "ftse_russell",
                                               "mstar", "mstarc", "cccy", "nasdaq", "dow_jones")},
        "market": market,
        "serverTime": et.isoformat(timespec="seconds"),
    }
