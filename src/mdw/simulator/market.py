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
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
)
from mdw.simulator import actions, paths, sparse
from mdw.simulator.actions import DOMAIN_START
from mdw.simulator.clock import SimClock
from mdw.simulator.minutes import day_minutes, profile_or_none, start_price
from mdw.simulator.names import stable_hash
from mdw.simulator.roster import Listing, roster
from mdw.simulator.sparse import start_levels
from mdw.simulator.universe import listed_pairs, profile
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
# The calling key's publication cutoff (its plan's delay), set per request by published_before.
_AS_OF: ContextVar[int | None] = ContextVar("mdw_sim_as_of", default=None)
_MAX_DAYS_PER_CHUNK = 400


@dataclass(frozen=True, slots=True)
class Page:
    """One page of an aggregates response."""

    bars: BarBatch
    query_count: int
    # asc: the start of the window after the last one returned (the next page's `from`);
    # desc: one ms before the earliest window returned (the next page's `to`)
    next_start_ms: int | None


def asset_of(ticker: str, seed: int = 42) -> AssetClass | None:
    """The asset class of a vendor ticker, or None when it is not one (served as empty).

    Mixed-case preferred tickers (``KIMpL``) are stocks when the roster of ``seed`` lists them.
    """
    prof = profile_or_none(seed, ticker)
    return prof.asset if prof is not None else None


@functools.lru_cache(maxsize=200_000)
def _daily_row(seed: int, ticker: str, day: date) -> tuple[float, ...] | None:
    return _daily_from_minutes(seed, ticker, day, None)


def _daily_from_minutes(seed: int, ticker: str, day: date, now_ms: int | None) -> tuple[float, ...] | None:
    dm = day_minutes(seed, ticker, day)
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


@functools.lru_cache(maxsize=16384)
def _dividends(seed: int, ticker: str, today: date, since: date | None = None
               ) -> tuple[tuple[Dividend, float], ...]:
    """A ticker's declared dividends (ex-date on or after ``since``) with the price they are sized from."""
    plans = [p for p in actions.dividend_plans(seed, ticker)
             if p.declaration_date <= today and (since is None or p.ex_date >= since)]
    if not plans:
        return ()
    eves = [p.ex_date - timedelta(days=1) for p in plans]
    prof = profile(seed, ticker)
    if prof.entity >= 0:  # a market security: every price in one vectorised pass
        di = np.asarray([d.toordinal() - DOMAIN_START.toordinal() for d in eves], dtype=np.int64)
        mult = actions.split_multiplier(actions.splits_for(seed, ticker),
                                        np.asarray([d.toordinal() for d in eves], dtype=np.int64))
        prices = (np.exp(start_levels(seed, prof, di)) * mult).tolist()
    else:
        prices = [start_price(seed, ticker, d) for d in eves]
    out: list[tuple[Dividend, float]] = []
    # market securities' ids come from one hash per ticker (thousands of them are listed at once)
    base = stable_hash("dividend", seed, ticker) if prof.entity >= 0 else 0
    for plan, price in zip(plans, prices, strict=True):
        cash = price * plan.yield_q
        out.append((Dividend(
            id=(f"E{(base ^ (plan.ex_date.toordinal() * 0x9E3779B97F4A7C15)) & 0xFFFFFFFFFFFFFFFF:016x}"
                if base else f"E{stable_hash('dividend', seed, ticker, plan.ex_date):016x}"),
            ticker=ticker, ex_dividend_date=plan.ex_date,
            cash_amount=round(cash, 2) if cash >= 0.1 else round(cash, 4),
            declaration_date=plan.declaration_date, record_date=plan.record_date,
            pay_date=plan.pay_date, frequency=plan.frequency,
            dividend_type="SC" if plan.special else "CD",
        ), price))
    return tuple(out)


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
        self._listed: frozenset[Listing] | None = None

    # ---------------------------------------------------------------- clock and reference data

    @contextmanager
    def published_before(self, cutoff_ms: int | None) -> Iterator[None]:
        """Serve as of ``cutoff_ms`` inside the block: a delayed plan's key sees nothing newer.

        A context variable, so only the request that set it sees the earlier clock (aiohttp runs
        each request in its own task with its own copy of the context).
        """
        token = _AS_OF.set(cutoff_ms)
        try:
            yield
        finally:
            _AS_OF.reset(token)

    @property
    def now_ms(self) -> int:
        """The data clock, or the cutoff of :meth:`published_before` when one is in force."""
        now = self.clock_ms
        cutoff = _AS_OF.get()
        return now if cutoff is None else min(now, cutoff)

    @property
    def clock_ms(self) -> int:
        """The data clock itself, whatever the calling key's plan publishes."""
        if self.clock is not None:
            return self.clock.now_ms()
        return self.fixed_now_ms if self.fixed_now_ms is not None else int(time.time() * 1000)

    def today(self, asset: AssetClass = AssetClass.STOCKS) -> date:
        return local_day(asset, self.now_ms)

    def asset_of(self, ticker: str) -> AssetClass | None:
        """The asset class of a ticker this market serves, or None (served as empty)."""
        return asset_of(ticker, self.seed)

    def listings(self) -> tuple[Listing, ...]:
        """Every stock listing of the universe, delisted and renamed-away tickers included."""
        return roster(self.seed).universe(self.n_stocks)

    def listing(self, ticker: str) -> Listing | None:
        """The listing of a stock ticker of the universe (case-sensitive), or None."""
        row = roster(self.seed).get(ticker)
        if row is None or row not in self._listed_set():
            return None
        return row

    def _listed_set(self) -> frozenset[Listing]:
        if self._listed is None:
            self._listed = frozenset(self.listings())
        return self._listed

    def universe(self, asset: AssetClass | None = None, on: date | None = None,
                 include_otc: bool = True) -> list[str]:
        """The tickers listed on ``on`` (default today), sorted; all classes when None.

        Stocks include OTC names unless ``include_otc`` is false; crypto and forex pairs are
        listed on every day.
        """
        classes = [asset] if asset else [AssetClass.STOCKS, AssetClass.CRYPTO, AssetClass.FOREX]
        day = on or self.today()
        out: list[str] = []
        for cls in classes:
            if cls is AssetClass.STOCKS:
                out.extend(sorted(r.ticker for r in self.listings()
                                  if r.listed_on(day) and (include_otc or r.market != "otc")))
            else:
                out.extend(listed_pairs(self.seed, cls, self.n_crypto, self.n_fx))
        return out

    def splits(self, ticker: str) -> list[Split]:
        """Splits executed on or before today, oldest first."""
        today = self.today()
        return [s for s in actions.splits_for(self.seed, ticker) if s.execution_date <= today]

    def dividends(self, ticker: str) -> list[Dividend]:
        """Dividends declared on or before today (ex-dates can be up to four weeks ahead), oldest first."""
        return [d for d, _ in _dividends(self.seed, ticker, self.today())]

    def dividends_with_prices(self, ticker: str, since: date | None = None) -> list[tuple[Dividend, float]]:
        """Each dividend (ex-date on or after ``since``) with the unadjusted price the day before its
        ex-date, which its historical adjustment factor is based on."""
        return list(_dividends(self.seed, ticker, self.today(), since))

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
                dm = day_minutes(self.seed, ticker, day)
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
        if asset_of(ticker, self.seed) is None:
            return None
        return day_minutes(self.seed, ticker, day)

    def minute_bars(self, ticker: str, start_ms: int, end_ms: int) -> BarBatch:
        """Unadjusted 1-minute bars with ``start_ms <= t < end_ms`` (only minutes completed before now)."""
        return self.aggregates(ticker, Timeframe(1, "m"), start_ms, end_ms)

    def aggregates(self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int,
                   adjusted: bool = False) -> BarBatch:
        """Exactly the bars the aggregates endpoint serves for window starts in ``[start_ms, end_ms)``.

        Multi-day/week/month windows are anchored at the window of ``start_ms``, as a request
        with ``from=start_ms`` anchors them.
        """
        if asset_of(ticker, self.seed) is None or end_ms <= start_ms or timeframe.unit == "s":
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
        if asset_of(ticker, self.seed) is None or tf.unit == "s" or to_ms < from_ms:
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

    def grouped_daily(self, day: date, asset: AssetClass, adjusted: bool = False,
                      include_otc: bool = True) -> dict[str, BarBatch]:
        """The daily bars of the tickers of ``asset`` listed on ``day`` that traded (t = window start)."""
        tf = Timeframe(1, "d")
        out: dict[str, BarBatch] = {}
        for ticker, row in self.grouped_rows(day, asset, adjusted, include_otc):
            cols = {name: np.asarray([row[i]]) for i, name in enumerate(_COLS)}
            cols["t"], cols["n"] = cols["t"].astype(np.int64), cols["n"].astype(np.int64)
            out[ticker] = BarBatch.from_columns(ticker, tf, cols)
        return out

    def grouped_rows(self, day: date, asset: AssetClass, adjusted: bool = False,
                     include_otc: bool = True) -> list[tuple[str, tuple[float, ...]]]:
        """(ticker, (t, o, h, l, c, v, vw, n)) of every ticker of ``asset`` listed on ``day`` that traded.

        The values equal the ticker's daily aggregate bar exactly (the same row, adjusted the same
        way), without building a bar batch per ticker: at 5,000 names that is most of the cost.
        """
        if asset is AssetClass.STOCKS:
            names = [r.ticker for r in self.listings()
                     if r.listed_on(day) and (include_otc or r.market != "otc")]
            names.sort()
        else:
            names = list(listed_pairs(self.seed, asset, self.n_crypto, self.n_fx))
        now = self.now_ms
        if local_midnight_ms(day, asset.tz) > now:
            return []
        if asset is AssetClass.STOCKS and paths.in_domain(day):
            profs = [p for p in (profile(self.seed, t) for t in names) if p.entity >= 0]
            sparse.prime_levels(self.seed, profs, paths.day_index(day))
        complete = local_midnight_ms(day + timedelta(days=1), asset.tz) <= now
        today, ordinal = self.today(), np.asarray([day.toordinal()], dtype=np.int64)
        out: list[tuple[str, tuple[float, ...]]] = []
        for ticker in names:
            row = (_daily_row(self.seed, ticker, day) if complete
                   else _daily_from_minutes(self.seed, ticker, day, now))
            if row is None:
                continue
            if adjusted:
                splits = actions.splits_for(self.seed, ticker)
                if splits:
                    f = actions.adjustment_factor(splits, ordinal, today)[0]
                    if f != 1.0:
                        t, o, h, lo, c, v, vw, n = row
                        f64 = np.float64(f)
                        row = (t, float(o / f64), float(h / f64), float(lo / f64), float(c / f64),
                               float(v * f64), float(vw / f64), n)
            out.append((ticker, row))
        return out

    def reference_price(self, ticker: str, day: date) -> float:
        """The unadjusted price where ``day``'s trading starts (dividends are sized from it)."""
        return start_price(self.seed, ticker, day)

    def previous_close(self, ticker: str, adjusted: bool = True) -> BarBatch:
        """The daily bar of the last completed trading day before today."""
        if asset_of(ticker, self.seed) is None:
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
