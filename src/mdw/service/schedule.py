"""When each tracked series is due, from the trading calendar (pure: no I/O, no clock).

Three kinds of job, each identified by its latest *slot* (the epoch ms it became due):

* ``intraday`` - every ``interval`` minutes while the series' market is open (crypto always;
  stocks in extended hours; forex Sunday 17:00 to Friday 17:00 ET), plus one slot just after
  the close so the session's last bars are picked up;
* ``daily``    - once per trading day, ``delay`` minutes after the day's bar becomes final (the
  end of extended hours for stocks, 20:00 ET or 17:00 ET on early-close days; 00:00 UTC for
  crypto and forex);
* ``actions``  - corporate actions of stock tickers, once per trading day with the daily job;
* ``settle``   - once per trading day, when the latest session may be settled (11:00 ET the
  next day by default): the run re-fetches the series' settle window once to pick up the
  vendor's revisions (see :mod:`mdw.backfill.settle`).

A job fires when its current slot is newer than the last slot it fired for. After downtime it
fires once, and the run it starts fills every gap since the last success (runs are gap-driven),
which is the whole catch-up mechanism.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from mdw.backfill.settle_window import SettleWindow
from mdw.calendar import is_market_open, nyse_sessions, uses_nyse
from mdw.domain import (
    DAY_MS,
    MINUTE_MS,
    AssetClass,
    SeriesKey,
    Ticker,
    Timeframe,
    from_ms,
    local_midnight_ms,
)

JobKind = Literal["intraday", "daily", "actions", "settle"]


@dataclass(frozen=True, slots=True)
class Job:
    """One scheduled unit: a series (or, with no timeframe, a ticker's corporate actions)."""

    kind: JobKind
    ticker: str
    timeframe: Timeframe | None = None

    @property
    def series(self) -> SeriesKey | None:
        """The series the job keeps current; None for corporate actions."""
        return SeriesKey(self.ticker, self.timeframe) if self.timeframe else None

    def sort_key(self) -> tuple[str, str, tuple[int, int]]:
        return (self.kind, self.ticker, self.timeframe.sort_key() if self.timeframe else (-1, -1))

    def __str__(self) -> str:
        tail = f":{self.timeframe}" if self.timeframe else ""
        return f"{self.kind}:{self.ticker}{tail}"


def jobs_for(ticker: Ticker, timeframes: list[Timeframe], settle: bool = False) -> list[Job]:
    """The jobs of a tracked symbol (with ``settle``, a settle job per timeframe too)."""
    out = [Job("intraday" if tf.intraday else "daily", ticker.symbol, tf) for tf in timeframes]
    if ticker.asset_class is AssetClass.STOCKS:
        out.append(Job("actions", ticker.symbol))
    if settle:
        out.extend(Job("settle", ticker.symbol, tf) for tf in timeframes)
    return out


def intraday_slot(asset: AssetClass, now_ms: int, interval_min: int) -> int | None:
    """The current intraday slot, or None while the market is closed (after the closing slot)."""
    step = interval_min * MINUTE_MS
    slot = now_ms - now_ms % step
    if is_market_open(asset, now_ms) or is_market_open(asset, now_ms - step):
        return slot
    return None


def daily_slot(asset: AssetClass, now_ms: int, delay_min: int) -> int | None:
    """When the most recent final daily bar became due (final + delay), or None if none yet."""
    delay = delay_min * MINUTE_MS
    if uses_nyse(asset):
        day = from_ms(now_ms).astimezone(asset.tz).date()
        for sess in reversed(nyse_sessions(day - timedelta(days=10), day)):
            due = sess.extended_close_ms + delay
            if due <= now_ms:
                return due
        return None
    midnight = local_midnight_ms(from_ms(now_ms).astimezone(asset.tz).date(), asset.tz)
    due = midnight + delay
    return due if due <= now_ms else due - DAY_MS


def settle_slot(asset: AssetClass, now_ms: int, window: SettleWindow) -> int | None:
    """When the latest session that may be settled at ``now_ms`` became settle-able (None: none)."""
    days = window.days(asset, now_ms)
    return window.due_ms(days[-1]) if days else None


def slot_of(job: Job, asset: AssetClass, now_ms: int, interval_min: int, delay_min: int,
            settle: SettleWindow | None = None) -> int | None:
    """The slot ``job`` is due for at ``now_ms`` (None: not due at all right now)."""
    if job.kind == "intraday":
        return intraday_slot(asset, now_ms, interval_min)
    if job.kind == "settle":
        return settle_slot(asset, now_ms, settle) if settle is not None else None
    return daily_slot(asset, now_ms, delay_min)


def due_jobs(
    jobs: dict[Job, AssetClass], last: dict[Job, int], now_ms: int, interval_min: int, delay_min: int,
    settle: SettleWindow | None = None,
) -> dict[Job, int]:
    """Jobs whose current slot is newer than the one they last fired for, with that slot."""
    out: dict[Job, int] = {}
    for job, asset in sorted(jobs.items(), key=lambda item: item[0].sort_key()):
        slot = slot_of(job, asset, now_ms, interval_min, delay_min, settle)
        if slot is not None and slot > last.get(job, -1):
            out[job] = slot
    return out
