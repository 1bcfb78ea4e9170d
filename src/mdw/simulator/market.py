"""The synthetic market: ground truth for every bar, split and dividend the simulator serves.

The endpoint handlers call the same functions tests call, so ``Market.aggregates`` is exactly
what the aggregates endpoint returns (before any injected fault).

Daily bar rule: a stock's daily bar takes open/high/low/close from regular-hours minutes only
(as the vendor's daily bars ignore Form-T extended-hours trades), and volume, VWAP and trade
count from every minute of the day, extended hours included. Crypto and forex days are UTC days.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from mdw.domain import (
    DAY_MS,
    MINUTE_MS,
    AssetClass,
    BarBatch,
    Dividend,
    Split,
    Timeframe,
    local_midnight_ms,
    parse_ticker,
)
from mdw.errors import UsageError
from mdw.simulator import actions, paths
from mdw.simulator.clock import SimClock
from mdw.simulator.universe import listed, profile, stable_hash
from mdw.simulator.windows import (
    Cols,
    aggregate,
    local_day,
    next_window_start,
    snap,
    window_end_bound_days,
    window_starts,
)

_COLS = ("t", "o", "h", "l", "c", "v", "vw", "n")
_MAX_DAYS_PER_CHUNK = 400


@dataclass(frozen=True, slots=True)
class Page:
    """One page of an aggregates response."""

    bars: BarBatch
    query_count: int
    # asc: the start of the window after the last one returned (the next page's `from`);
    # desc: one ms before the earliest window returned (the next page's `to`)
    next_start_ms: int | None


def asset_of(ticker: str) -> AssetClass | None:
    """The asset class of a vendor ticker, or None when it is not one (served as empty)."""
    try:
        tk = parse_ticker(ticker)
    except UsageError:
        return None
    return tk.asset_class if tk.symbol == ticker else None


@functools.lru_cache(maxsize=200_000)
def _daily_row(seed: int, ticker: str, day: date) -> tuple[float, ...] | None:
    return _daily_from_minutes(seed, ticker, day, None)


def _daily_from_minutes(seed: int, ticker: str, day: date, now_ms: int | None) -> tuple[float, ...] | None:
    dm = paths.day_minutes(seed, ticker, day)
    if dm is None:
        return None
    keep = slice(None) if now_ms is None else dm.t + MINUTE_MS <= now_ms
    t, reg = dm.t[keep], dm.regular[keep]
    if len(t) == 0:
        return None
    asset = profile(seed, ticker).asset
    sel = reg if asset not in (AssetClass.CRYPTO, AssetClass.FOREX) and reg.any() else np.ones(len(t), bool)
    o, h, lo, c = dm.o[keep][sel], dm.h[keep][sel], dm.l[keep][sel], dm.c[keep][sel]
    v, vw, n = dm.v[keep], dm.vw[keep], dm.n[keep]
    vol = float(np.sum(v))
    vwap = float(np.sum(vw * v) / vol) if vol > 0 else float("nan")
    start = local_midnight_ms(day, asset.tz)
    return (float(start), float(o[0]), float(h.max()), float(lo.min()), float(c[-1]), vol, vwap,
            float(np.sum(n)))


class Market:
    """A deterministic synthetic market.

    Args:
        seed: everything (prices, volumes, gaps, actions, synthetic names) follows from it.
        now_ms: the data clock; only minutes completed before it have bars (None = wall clock).
        n_stocks, n_crypto, n_fx: how many tickers the universe lists.
        clock: a moving data clock (replaces ``now_ms``); the server's stream and its REST
            answers read the same one, so they agree on which minutes have completed.
    """

    def __init__(self, seed: int = 42, *, now_ms: int | None = None, n_stocks: int = 300,
                 n_crypto: int = 20, n_fx: int = 10, clock: SimClock | None = None) -> None:
        self.seed = seed
        self.fixed_now_ms = now_ms
        self.clock = clock
        self.n_stocks, self.n_crypto, self.n_fx = n_stocks, n_crypto, n_fx

    # ---------------------------------------------------------------- clock and reference data

    @property
    def now_ms(self) -> int:
        if self.clock is not None:
            return self.clock.now_ms()
        return self.fixed_now_ms if self.fixed_now_ms is not None else int(time.time() * 1000)

    def today(self, asset: AssetClass = AssetClass.STOCKS) -> date:
        return local_day(asset, self.now_ms)

    def universe(self, asset: AssetClass | None = None) -> list[str]:
        """The listed tickers (reference data and grouped daily), sorted; all classes when None."""
        classes = [asset] if asset else [AssetClass.STOCKS, AssetClass.CRYPTO, AssetClass.FOREX]
        out: list[str] = []
        for cls in classes:
            out.extend(listed(self.seed, cls, self.n_stocks, self.n_crypto, self.n_fx))
        return out

    def splits(self, ticker: str) -> list[Split]:
        """Splits executed on or before today, oldest first."""
        today = self.today()
        return [s for s in actions.splits_for(self.seed, ticker) if s.execution_date <= today]

    def dividends(self, ticker: str) -> list[Dividend]:
        """Dividends declared on or before today (ex-dates can be up to four weeks ahead), oldest first."""
        today = self.today()
        out: list[Dividend] = []
        for plan in actions.dividend_plans(self.seed, ticker):
            if plan.declaration_date > today:
                break
            cash = self.reference_price(ticker, plan.ex_date - timedelta(days=1)) * plan.yield_q
            out.append(Dividend(
                id=f"E{stable_hash('dividend', self.seed, ticker, plan.ex_date):016x}",
                ticker=ticker, ex_dividend_date=plan.ex_date,
                cash_amount=round(cash, 2) if cash >= 0.1 else round(cash, 4),
                declaration_date=plan.declaration_date, record_date=plan.record_date,
                pay_date=plan.pay_date, frequency=4, dividend_type="CD",
            ))
        return out

    # ---------------------------------------------------------------- base bars

    def _minute_cols(self, ticker: str, start_ms: int, end_ms: int) -> Cols:
        """Unadjusted minute bars with ``start_ms <= t < end_ms`` completed before now, plus
        ``mid`` (local midnight of the bar's day) and ``day`` (its ordinal)."""
        asset = profile(self.seed, ticker).asset
        end_ms = min(end_ms, self.now_ms - MINUTE_MS + 1)
        parts: list[Cols] = []
        if end_ms > start_ms:
            day, last = local_day(asset, start_ms), local_day(asset, end_ms - 1)
            while day <= last:
                dm = paths.day_minutes(self.seed, ticker, day)
                if dm is not None and len(dm.t):
                    lo = int(np.searchsorted(dm.t, start_ms)) if dm.t[0] < start_ms else 0
                    hi = int(np.searchsorted(dm.t, end_ms)) if dm.t[-1] >= end_ms else len(dm.t)
                    if hi > lo:
                        k = hi - lo
                        parts.append({
                            "t": dm.t[lo:hi], "o": dm.o[lo:hi], "h": dm.h[lo:hi], "l": dm.l[lo:hi],
                            "c": dm.c[lo:hi], "v": dm.v[lo:hi], "vw": dm.vw[lo:hi], "n": dm.n[lo:hi],
                            "mid": np.full(k, local_midnight_ms(day, asset.tz), np.int64),
                            "day": np.full(k, day.toordinal(), np.int64),
                        })
                day += timedelta(days=1)
        return _concat(parts)

    def _day_cols(self, ticker: str, start_ms: int, end_ms: int) -> Cols:
        """Unadjusted daily bars whose window start is in ``[start_ms, end_ms)``."""
        asset = profile(self.seed, ticker).asset
        now = self.now_ms
        rows: list[tuple[float, ...]] = []
        days: list[int] = []
        if end_ms > start_ms:
            day, last = local_day(asset, start_ms), local_day(asset, end_ms - 1)
            last = min(last, local_day(asset, now))
            while day <= last:
                start = local_midnight_ms(day, asset.tz)
                if start_ms <= start < end_ms:
                    complete = local_midnight_ms(day + timedelta(days=1), asset.tz) <= now
                    row = (_daily_row(self.seed, ticker, day) if complete
                           else _daily_from_minutes(self.seed, ticker, day, now))
                    if row is not None:
                        rows.append(row)
                        days.append(day.toordinal())
                day += timedelta(days=1)
        arr = np.asarray(rows, dtype=np.float64).reshape(len(rows), 8)
        cols: Cols = {name: arr[:, i] for i, name in enumerate(_COLS)}
        cols["t"] = arr[:, 0].astype(np.int64)
        cols["n"] = arr[:, 7].astype(np.int64)
        cols["day"] = np.asarray(days, dtype=np.int64)
        cols["mid"] = cols["t"]
        return cols

    def _base(self, ticker: str, tf: Timeframe, start_ms: int, end_ms: int, adjusted: bool) -> Cols:
        cols = (self._minute_cols if tf.intraday else self._day_cols)(ticker, start_ms, end_ms)
        if adjusted and len(cols["t"]):
            factor = actions.adjustment_factor(actions.splits_for(self.seed, ticker), cols["day"],
                                               self.today())
            if np.any(factor != 1.0):
                cols = dict(cols)
                for k in ("o", "h", "l", "c", "vw"):
                    cols[k] = cols[k] / factor
                cols["v"] = cols["v"] * factor
        return cols

    # ---------------------------------------------------------------- public bar access

    def day_minutes(self, ticker: str, day: date) -> paths.DayMinutes | None:
        """Every unadjusted minute bar of ``ticker`` on its local ``day``, whatever the clock says.

        The stream releases these one minute at a time as the clock passes each minute's end;
        they are the same rows :meth:`minute_bars` returns once the minutes have completed.
        None when the ticker does not trade that day.
        """
        if asset_of(ticker) is None:
            return None
        return paths.day_minutes(self.seed, ticker, day)

    def minute_bars(self, ticker: str, start_ms: int, end_ms: int) -> BarBatch:
        """Unadjusted 1-minute bars with ``start_ms <= t < end_ms`` (only minutes completed before now)."""
        return self.aggregates(ticker, Timeframe(1, "m"), start_ms, end_ms)

    def aggregates(self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int,
                   adjusted: bool = False) -> BarBatch:
        """Exactly the bars the aggregates endpoint serves for window starts in ``[start_ms, end_ms)``.

        Multi-day/week/month windows are anchored at the window of ``start_ms``, as a request
        with ``from=start_ms`` anchors them.
        """
        if asset_of(ticker) is None or end_ms <= start_ms or timeframe.unit == "s":
            return BarBatch.empty(ticker, timeframe)
        asset = profile(self.seed, ticker).asset
        anchor = snap(asset, timeframe, start_ms)
        base = self._base(ticker, timeframe, anchor, _fetch_end(asset, timeframe, end_ms - 1), adjusted)
        ws = window_starts(asset, timeframe, base, anchor)
        keep = (ws >= start_ms) & (ws < end_ms)
        lo, hi = (int(np.argmax(keep)), len(keep) - int(np.argmax(keep[::-1]))) if keep.any() else (0, 0)
        bars = aggregate({k: v[lo:hi] for k, v in base.items()}, ws[lo:hi])
        return BarBatch.from_columns(ticker, timeframe, bars)

    def page(self, ticker: str, tf: Timeframe, from_ms: int, to_ms: int, *, limit: int,
             sort: str = "asc", adjusted: bool = True) -> Page:
        """One aggregates page: windows starting in ``[snap(from_ms), to_ms]`` (``to_ms`` inclusive).

        ``limit`` counts base bars (minutes or days). A window whose base bars do not all fit is
        left for the next page, unless it is the page's only window (then it is returned whole).
        """
        if asset_of(ticker) is None or tf.unit == "s" or to_ms < from_ms:
            return Page(BarBatch.empty(ticker, tf), 0, None)
        asset = profile(self.seed, ticker).asset
        anchor = snap(asset, tf, from_ms)
        hard_end = _fetch_end(asset, tf, to_ms)
        if sort == "desc":
            base = self._base(ticker, tf, anchor, hard_end, adjusted)
            ws = window_starts(asset, tf, base, anchor)
            n_in = int(np.searchsorted(ws, to_ms, side="right"))
            base, ws = {k: v[:n_in] for k, v in base.items()}, ws[:n_in]
            return self._page_desc(ticker, tf, base, ws, limit)
        chunk_days = max(2, limit // (400 if tf.intraday else 1) + 2)
        chunk_days = min(chunk_days, _MAX_DAYS_PER_CHUNK) if tf.intraday else max(chunk_days, 40)
        parts: list[Cols] = []
        cursor = anchor
        count = 0
        while cursor < hard_end:
            nxt = min(hard_end, local_midnight_ms(local_day(asset, cursor) + timedelta(days=chunk_days),
                                                  asset.tz))
            part = self._base(ticker, tf, cursor, nxt, adjusted)
            cursor = nxt
            parts.append(part)
            count += len(part["t"])
            if count > limit:
                base = _concat(parts)
                ws = window_starts(asset, tf, base, anchor)
                if ws[-1] != ws[limit - 1] or ws[-1] > to_ms:
                    break
            if cursor >= min(hard_end, self.now_ms + DAY_MS):
                break
        base = _concat(parts)
        ws = window_starts(asset, tf, base, anchor)
        n_in = int(np.searchsorted(ws, to_ms, side="right"))
        base, ws = {k: v[:n_in] for k, v in base.items()}, ws[:n_in]
        if n_in <= limit:
            return Page(BarBatch.from_columns(ticker, tf, aggregate(base, ws)), n_in, None)
        # ws[limit] is the first base bar that did not fit; its window is incomplete on this page.
        cut = int(np.searchsorted(ws, ws[limit], side="left"))
        if cut == 0:
            cut = int(np.searchsorted(ws, ws[0], side="right"))
        sub = {k: v[:cut] for k, v in base.items()}
        nxt_start = next_window_start(asset, tf, int(ws[cut - 1])) if cut < n_in else None
        return Page(BarBatch.from_columns(ticker, tf, aggregate(sub, ws[:cut])), cut, nxt_start)

    @staticmethod
    def _page_desc(ticker: str, tf: Timeframe, base: Cols, ws: np.ndarray, limit: int) -> Page:
        n_in = len(ws)
        if n_in <= limit:
            whole = BarBatch.from_columns(ticker, tf, aggregate(base, ws))
            return Page(whole.take(slice(None, None, -1)), n_in, None)
        first = n_in - limit  # first base bar that fits; its window may be partial
        cut = int(np.searchsorted(ws, ws[first - 1], side="right"))
        if cut >= n_in:
            cut = int(np.searchsorted(ws, ws[-1], side="left"))
        sub = {k: v[cut:] for k, v in base.items()}
        bars = BarBatch.from_columns(ticker, tf, aggregate(sub, ws[cut:])).take(slice(None, None, -1))
        return Page(bars, n_in - cut, int(ws[cut]) - 1 if cut > 0 else None)

    def daily_bar(self, ticker: str, day: date, adjusted: bool = False) -> BarBatch:
        """The daily bar of ``ticker`` on the local ``day`` (empty when it did not trade)."""
        asset = profile(self.seed, ticker).asset
        start = local_midnight_ms(day, asset.tz)
        return self.aggregates(ticker, Timeframe(1, "d"), start, start + 1, adjusted)

    def grouped_daily(self, day: date, asset: AssetClass, adjusted: bool = False) -> dict[str, BarBatch]:
        """The daily bars of every listed ticker of ``asset`` on ``day`` (t = the window start)."""
        out: dict[str, BarBatch] = {}
        for ticker in listed(self.seed, asset, self.n_stocks, self.n_crypto, self.n_fx):
            bar = self.daily_bar(ticker, day, adjusted)
            if len(bar):
                out[ticker] = bar
        return out

    def reference_price(self, ticker: str, day: date) -> float:
        """The unadjusted price where ``day``'s trading starts (dividends are sized from it)."""
        level, _ = paths.anchors(self.seed, ticker)
        mult = float(actions.split_multiplier(actions.splits_for(self.seed, ticker),
                                              np.array([day.toordinal()]))[0])
        return float(np.exp(float(level[paths.day_index(day)]))) * mult

    def previous_close(self, ticker: str, adjusted: bool = True) -> BarBatch:
        """The daily bar of the last completed trading day before today."""
        if asset_of(ticker) is None:
            return BarBatch.empty(ticker, Timeframe(1, "d"))
        asset = profile(self.seed, ticker).asset
        today = self.today(asset)
        start = local_midnight_ms(today - timedelta(days=14), asset.tz)
        bars = self.aggregates(ticker, Timeframe(1, "d"), start, local_midnight_ms(today, asset.tz),
                               adjusted)
        return bars.take(slice(-1, None)) if len(bars) else bars


def _fetch_end(asset: AssetClass, tf: Timeframe, last_ms: int) -> int:
    """An end (exclusive) for base bars that completes every window starting at or before ``last_ms``."""
    extra = window_end_bound_days(tf)
    next_midnight = local_midnight_ms(local_day(asset, last_ms) + timedelta(days=1), asset.tz)
    if extra == 0:
        return next_midnight
    return next_midnight + extra * DAY_MS + DAY_MS


def _concat(parts: list[Cols]) -> Cols:
    if not parts:
        f = np.empty(0, np.float64)
        i = np.empty(0, np.int64)
        return {"t": i, "o": f, "h": f, "l": f, "c": f, "v": f, "vw": f, "n": i, "mid": i, "day": i}
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
