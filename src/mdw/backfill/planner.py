"""The planner: wanted minus covered, turned into the fewest vendor requests. Pure: no I/O.

For each series the gaps are ``wanted - covered`` on half-open ms ranges, clamped to what is
final at ``now`` (completed bar windows only; the vendor answers 403 for the future). Gaps that
hold no trading session are dropped; gaps separated only by a closed-market stretch are merged.
Each gap is aligned to the timeframe's windows and becomes one request that follows the vendor's
``next_url`` (``limit=50000``), so it costs the pages the vendor's own pagination needs whatever
the series' density. Only where the store knows a series trades densely is a long gap cut at local
midnights into pieces of at most 50,000 base aggregates, counted from the calendar's largest
possible number of base bars (960 minutes per extended stock session, 1,440 per crypto day, one
per trading day for daily and longer bars): each piece is then one page and the pieces run in
parallel, for no more pages than the pager (ADR 0018). Daily bars of many tickers over
few sessions become grouped-daily requests when that is fewer requests, and ``derive`` fills
coarser intraday timeframes from the finest one requested instead of asking the vendor.
"""

from __future__ import annotations

import bisect
import gc
import itertools
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from datetime import date, timedelta
from functools import lru_cache

from mdw.backfill.plan import (
    MAX_BASE,
    ActionKind,
    ActionsKey,
    ActionsRequest,
    BackfillSpec,
    DeriveTask,
    Plan,
    PlannedRequest,
    Target,
)
from mdw.calendar import bar_window_start, nyse_session, tradable, trading_days, uses_nyse
from mdw.domain import (
    DAY_MS,
    MINUTE_MS,
    AssetClass,
    RangeSet,
    SeriesKey,
    Timeframe,
    TimeRange,
    from_ms,
    local_midnight_ms,
    to_ms,
)

ONE_MINUTE = Timeframe(1, "m")
ONE_DAY = Timeframe(1, "d")
GROUPED_MARKETS = (AssetClass.STOCKS, AssetClass.CRYPTO)
# Grouped daily is kept only while its worst case (every ticker not known to trade daily absent
# from some session, then asked for once on its own) stays within 2 % of the per-ticker requests.
GROUPED_WORST = 1.02
ACTION_KINDS: tuple[ActionKind, ...] = ("dividends", "splits")


# --------------------------------------------------------------------------------------------
# Windows


def _local_day(asset: AssetClass, ms: int) -> date:
    return from_ms(ms).astimezone(asset.tz).date()


def next_window(asset: AssetClass, tf: Timeframe, window_start: int) -> int:
    """The start of the window after the one starting at ``window_start``."""
    tz = asset.tz
    day = _local_day(asset, window_start)
    if tf.intraday:
        fixed = tf.fixed_ms or MINUTE_MS
        # Intraday windows are anchored at local midnight, so a day always starts a new window.
        return min(window_start + fixed, local_midnight_ms(day + timedelta(days=1), tz))
    if tf.unit == "d":
        return local_midnight_ms(day + timedelta(days=1), tz)
    if tf.unit == "w":
        return local_midnight_ms(day + timedelta(days=7), tz)
    months = {"mo": 1, "q": 3, "y": 12}[tf.unit]
    index = day.year * 12 + day.month - 1 + months
    return local_midnight_ms(date(index // 12, index % 12 + 1, 1), tz)


def floor_window(asset: AssetClass, tf: Timeframe, ms: int) -> int:
    return bar_window_start(asset, tf, ms)


def ceil_window(asset: AssetClass, tf: Timeframe, ms: int) -> int:
    start = bar_window_start(asset, tf, ms)
    return ms if start == ms else next_window(asset, tf, start)


def align_out(asset: AssetClass, tf: Timeframe, rng: TimeRange) -> TimeRange:
    """Widen a range to whole windows of ``tf`` (a partial window is fetched whole)."""
    if rng.empty:
        return rng
    return TimeRange(floor_window(asset, tf, rng.start_ms), ceil_window(asset, tf, rng.end_ms))


def align_in(asset: AssetClass, tf: Timeframe, rng: TimeRange) -> TimeRange | None:
    """Shrink a range to the whole windows of ``tf`` it contains, or None when there is none."""
    start = ceil_window(asset, tf, rng.start_ms)
    end = floor_window(asset, tf, rng.end_ms)
    return TimeRange(start, end) if start < end else None


def final_end(asset: AssetClass, tf: Timeframe, now_ms: int) -> int:
    """End of the last completed window at ``now``: only final bars are marked covered.

    Today's daily stock bar becomes final when the extended session ends; a crypto day at
    midnight UTC; an intraday bar when its window has passed.
    """
    current = bar_window_start(asset, tf, now_ms)
    if tf.unit == "d" and tf.multiplier == 1 and uses_nyse(asset):
        sess = nyse_session(_local_day(asset, now_ms))
        if sess is not None and now_ms >= sess.extended_close_ms:
            return next_window(asset, tf, current)
    return current


# --------------------------------------------------------------------------------------------
# Counting base aggregates


@lru_cache(maxsize=1 << 16)
def base_units(asset: AssetClass, tf: Timeframe, rng: TimeRange) -> int:
    """The most base aggregates (minutes or days) the vendor can count for ``rng``.

    Cached (pure): a universe's members mostly share their ranges, so planning thousands of
    them counts each range once.
    """
    if rng.empty:
        return 0
    if tf.base == "minute":
        return math.ceil(tradable(asset, ONE_MINUTE, rng).total_ms / MINUTE_MS)
    return len(trading_days(asset, rng))


def _cut_points(asset: AssetClass, tf: Timeframe, rng: TimeRange) -> list[int]:
    """Window-aligned local midnights inside ``rng`` where a request may end."""
    tz = asset.tz
    first = _local_day(asset, rng.start_ms)
    last = _local_day(asset, rng.end_ms - 1)
    points = [rng.start_ms]
    day = first + timedelta(days=1)
    while day <= last:
        ms = local_midnight_ms(day, tz)
        if not tf.intraday:
            ms = floor_window(asset, tf, ms)
        if points[-1] < ms < rng.end_ms:
            points.append(ms)
        day += timedelta(days=1)
    points.append(rng.end_ms)
    return points


def _cumulative(asset: AssetClass, tf: Timeframe, rng: TimeRange, points: list[int]) -> list[int]:
    """Base aggregates in ``[rng.start, p)`` for each cut point ``p`` (a merge-style sweep)."""
    if tf.base == "minute":
        spans = list(tradable(asset, ONE_MINUTE, rng))
        out: list[int] = []
        i = 0
        done = 0
        for p in points:
            while i < len(spans) and spans[i].end_ms <= p:
                done += spans[i].duration_ms
                i += 1
            partial = max(0, p - spans[i].start_ms) if i < len(spans) else 0
            out.append(math.ceil((done + partial) / MINUTE_MS))
        return out
    tz = asset.tz
    starts = [local_midnight_ms(d, tz) for d in trading_days(asset, rng)]
    return [bisect.bisect_left(starts, p) for p in points]


def split_range(asset: AssetClass, tf: Timeframe, rng: TimeRange, limit: int = MAX_BASE) -> list[TimeRange]:
    """Cut ``rng`` at local midnights into the fewest pieces of at most ``limit`` base aggregates."""
    return list(_split_range(asset, tf, rng, limit))


@lru_cache(maxsize=1 << 12)
def _split_range(asset: AssetClass, tf: Timeframe, rng: TimeRange, limit: int) -> tuple[TimeRange, ...]:
    """:func:`split_range`, cached (pure): members sharing a range share its pieces."""
    if rng.empty:
        return ()
    if base_units(asset, tf, rng) <= limit:
        return (rng,)
    points = _cut_points(asset, tf, rng)
    cum = _cumulative(asset, tf, rng, points)
    out: list[TimeRange] = []
    i = 0
    while i < len(points) - 1:
        j = bisect.bisect_right(cum, cum[i] + limit) - 1
        j = max(j, i + 1)  # one local day never holds more than the limit of minutes
        out.append(TimeRange(points[i], points[j]))
        i = j
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Gaps


def gaps(
    asset: AssetClass, tf: Timeframe, wanted: TimeRange, covered: RangeSet, now_ms: int,
    grid: Timeframe | None = None,
) -> list[TimeRange]:
    """Ranges to fetch for one series: aligned, final, tradable, coalesced across closed stretches.

    Args:
        grid: align to these windows instead of ``tf``'s (``derive`` aligns the finest timeframe
            to the coarsest one built from it, so no derived window is cut in two).
    """
    return list(_gaps(asset, tf, wanted, covered, now_ms, grid))


@lru_cache(maxsize=1 << 12)
def _gaps(
    asset: AssetClass, tf: Timeframe, wanted: TimeRange, covered: RangeSet, now_ms: int,
    grid: Timeframe | None,
) -> tuple[TimeRange, ...]:
    """:func:`gaps`, cached (pure): a universe's members mostly share what they want and hold."""
    grid = grid or tf
    end = min(ceil_window(asset, grid, wanted.end_ms), final_end(asset, tf, now_ms),
              final_end(asset, grid, now_ms))
    start = floor_window(asset, grid, wanted.start_ms)
    if end <= start:
        return ()
    span = TimeRange(start, end)
    holes = RangeSet.of(align_out(asset, grid, h) for h in RangeSet.of([span]) - covered).clip(span)
    merged: list[TimeRange] = []
    for hole in holes:
        if merged and not tradable(asset, tf, TimeRange(merged[-1].end_ms, hole.start_ms)):
            merged[-1] = TimeRange(merged[-1].start_ms, hole.end_ms)
        else:
            merged.append(hole)
    return tuple(h for h in merged if tradable(asset, tf, h))


def uncovered(asset: AssetClass, tf: Timeframe, rng: TimeRange, covered: RangeSet) -> RangeSet:
    """The tradable parts of ``rng`` that ``covered`` does not hold: the holes status and bar
    summaries report (closed markets are never a hole). :func:`gaps` turns holes into requests."""
    return tradable(asset, tf, rng) - covered


def even_split(asset: AssetClass, tf: Timeframe, rng: TimeRange, parts: int) -> list[TimeRange]:
    """Cut ``rng`` at local midnights into ``parts`` pieces of about equal base aggregates."""
    if parts <= 1 or rng.empty:
        return [rng]
    points = _cut_points(asset, tf, rng)
    cum = _cumulative(asset, tf, rng, points)
    total = cum[-1]
    chosen = [0]
    for i in range(1, parts):
        target = total * i / parts
        j = bisect.bisect_left(cum, target, lo=chosen[-1] + 1)
        if j >= len(points) - 1:
            break
        if j > chosen[-1] + 1 and target - cum[j - 1] < cum[j] - target:
            j -= 1
        chosen.append(j)
    chosen.append(len(points) - 1)
    return [TimeRange(points[a], points[b]) for a, b in itertools.pairwise(chosen) if a < b]


def _aggs_requests(
    asset: AssetClass, ticker: str, tf: Timeframe, holes: Iterable[TimeRange], now_ms: int,
    density: float | None = None,
) -> list[PlannedRequest]:
    """Each gap as requests that follow ``next_url``: one per gap, or several where it is free.

    The pager never asks for a page it does not need, whatever the series' density, but its pages
    are sequential. Where the store knows the series' density, a gap expected to take k pages is
    cut into k pieces of about one page each that run in parallel: at the calendar's count when
    that makes k pieces (each surely one page), else into k pieces of equal possible minutes
    (ADR 0018). Without a known density a gap is one paged request.
    """
    out: list[PlannedRequest] = []
    dens = density if tf.base == "minute" else None
    for hole in holes:
        units = base_units(asset, tf, hole)
        pieces = [hole]
        if dens is not None and units > MAX_BASE:
            parts = max(1, math.ceil(units * dens / MAX_BASE))
            exact = split_range(asset, tf, hole)
            pieces = exact if len(exact) == parts else even_split(asset, tf, hole, parts)
        elif dens is None and tf.base == "day":
            pieces = split_range(asset, tf, hole)  # 50,000 days: never more than one piece in practice
        for piece in pieces:
            fetch = TimeRange(piece.start_ms, min(piece.end_ms, now_ms))
            n = base_units(asset, tf, piece)
            out.append(PlannedRequest("aggs", asset, ticker, tf, fetch, (Target(ticker, tf, piece),),
                                      n, max(1, math.ceil(n / MAX_BASE)), dens))
    return out


def _grouped_requests(
    asset: AssetClass, holes: Mapping[str, list[TimeRange]], now_ms: int,
    listed: Collection[str] = (),
) -> list[PlannedRequest]:
    """One grouped-daily request per session; each ticker's covers partition its holes.

    ``listed``: the tickers reference data says are listed on their wanted days (universe
    members), whose absence from a session's response means they did not trade.
    """
    tz = asset.tz
    by_day: dict[date, list[Target]] = {}
    # A universe's year is a million targets (members x sessions), none in a reference cycle:
    # the cyclic collector would walk the growing heap again and again for nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        sharing: dict[TimeRange, list[tuple[str, bool]]] = {}  # members mostly share their holes
        for ticker, ticker_holes in holes.items():
            member = ticker in listed
            for hole in ticker_holes:
                sharing.setdefault(hole, []).append((ticker, member))
        for hole, names in sharing.items():
            for day, covers in _day_pieces(asset, hole):
                targets = by_day.get(day)
                if targets is None:
                    targets = by_day[day] = []
                targets.extend([Target(t, ONE_DAY, covers, False, m) for t, m in names])
    finally:
        if collecting:
            gc.enable()
    out: list[PlannedRequest] = []
    for day in sorted(by_day):
        start = local_midnight_ms(day, tz)
        fetch = TimeRange(start, min(local_midnight_ms(day + timedelta(days=1), tz), now_ms))
        out.append(PlannedRequest("grouped", asset, "", ONE_DAY, fetch, tuple(by_day[day]), 1))
    return out


@lru_cache(maxsize=1 << 12)
def _day_pieces(asset: AssetClass, hole: TimeRange) -> tuple[tuple[date, TimeRange], ...]:
    """Each trading day of ``hole`` and the part of the hole its grouped request covers (cached:
    a universe's members share their holes, and then the ranges themselves)."""
    days = trading_days(asset, hole)
    out: list[tuple[date, TimeRange]] = []
    prev = hole.start_ms
    for k, day in enumerate(days):
        stop = hole.end_ms if k == len(days) - 1 else local_midnight_ms(day + timedelta(days=1), asset.tz)
        out.append((day, TimeRange(prev, stop)))
        prev = stop
    return tuple(out)


def derivable(fine: Timeframe, coarse: Timeframe) -> bool:
    """Whether ``coarse`` bars can be built from ``fine`` ones (fixed intraday multiples within a day)."""
    f, c = fine.fixed_ms, coarse.fixed_ms
    return (f is not None and c is not None and coarse.intraday and c > f and c % f == 0
            and DAY_MS % c == 0)


def _lcm_grid(tfs: Iterable[Timeframe]) -> Timeframe:
    length = 1
    for tf in tfs:
        length = math.lcm(length, (tf.fixed_ms or MINUTE_MS) // 1000)
    return Timeframe(length // 60, "m") if length % 60 == 0 else Timeframe(length, "s")


def plan_backfill(
    spec: BackfillSpec,
    coverage: Mapping[SeriesKey, RangeSet],
    now_ms: int,
    action_coverage: Mapping[ActionsKey, RangeSet] | None = None,
    densities: Mapping[str, float] | None = None,
    traded: Collection[str] = (),
) -> Plan:
    """Turn a spec and the ledger into requests.

    Args:
        spec: what is wanted.
        coverage: the covered ranges of each series (missing keys mean nothing is held).
        now_ms: the present; nothing at or after it is requested, nothing unfinished is covered.
        action_coverage: covered ranges of each ticker's dividends and splits.
        densities: per ticker, the share of its possible minutes that trade, as far as the store
            knows (absent: unknown; long gaps are then paged with ``next_url``).
        traded: tickers the store shows trading on every session it holds of them (see
            :func:`mdw.backfill.density.trades_daily`); with universe members, the tickers whose
            absence from a grouped-daily answer is not expected to cost a request of its own.

    Returns:
        The plan; its ``request_count`` is what a run without faults sends.
    """
    requests: list[PlannedRequest] = []
    derives: list[DeriveTask] = []
    series: list[SeriesKey] = []
    daily_holes: dict[AssetClass, dict[str, list[TimeRange]]] = {}
    tfs = sorted(set(spec.timeframes), key=lambda t: t.sort_key())
    for tk in spec.tickers:
        asset = tk.asset_class
        wanted = spec.wanted_for(tk)
        held = {tf: coverage.get(SeriesKey(tk.symbol, tf), RangeSet()) for tf in tfs}
        series.extend(SeriesKey(tk.symbol, tf) for tf in tfs)
        intraday = sorted((tf for tf in tfs if tf.intraday and tf.fixed_ms is not None),
                          key=lambda t: t.fixed_ms or 0)
        fine = intraday[0] if spec.derive and intraday else None
        derived = [tf for tf in intraday if fine is not None and derivable(fine, tf)]
        for tf in tfs:
            if tf in derived:
                continue
            grid = _lcm_grid([tf, *derived]) if tf == fine and derived else None
            holes = gaps(asset, tf, wanted, held[tf], now_ms, grid)
            if tf == ONE_DAY and spec.grouped_daily and asset in GROUPED_MARKETS:
                daily_holes.setdefault(asset, {})[tk.symbol] = holes
                continue
            density = (densities or {}).get(tk.symbol)
            reqs = _aggs_requests(asset, tk.symbol, tf, holes, now_ms, density)
            if tf == fine:
                reqs, local = _attach_derived(asset, tk.symbol, fine, derived, reqs, wanted, held, now_ms)
                derives.extend(local)
            requests.extend(reqs)
    for asset, holes_by_ticker in daily_holes.items():
        per_ticker = [r for t, hs in holes_by_ticker.items()
                      for r in _aggs_requests(asset, t, ONE_DAY, hs, now_ms)]
        grouped = _grouped_requests(asset, holes_by_ticker, now_ms, spec.spans.keys())
        # A ticker neither listed (a universe member) nor known to trade daily may be absent from
        # sessions; the engine then asks for those once per ticker (ADR 0006, 0018).
        unsure = sum(1 for t in holes_by_ticker if t not in spec.spans and t not in traded)
        cheaper = (len(holes_by_ticker) > 1 and len(grouped) < len(per_ticker)
                   and len(grouped) + unsure <= GROUPED_WORST * len(per_ticker))
        requests.extend(grouped if cheaper else per_ticker)
    actions = _plan_actions(spec, action_coverage or {}, now_ms) if spec.corporate_actions else []
    stored = frozenset(key.ticker for key, held in coverage.items() if held)
    return Plan(tuple(series), tuple(requests), tuple(derives), tuple(actions), stored=stored)


def _attach_derived(
    asset: AssetClass, ticker: str, fine: Timeframe, derived: list[Timeframe],
    reqs: list[PlannedRequest], wanted: TimeRange, held: Mapping[Timeframe, RangeSet], now_ms: int,
) -> tuple[list[PlannedRequest], list[DeriveTask]]:
    """Let each fine request also fill the coarse gaps it spans; derive the rest from stored bars."""
    fetched = RangeSet.of(t.covers for r in reqs for t in r.targets)
    out = list(reqs)
    local: list[DeriveTask] = []
    for tf in derived:
        coarse_gaps = RangeSet.of(gaps(asset, tf, wanted, held[tf], now_ms))
        for k, req in enumerate(out):
            extra = tuple(Target(ticker, tf, piece, derived=True)
                          for piece in coarse_gaps.clip(req.targets[0].covers))
            if extra:
                out[k] = replace(req, targets=req.targets + extra)
        for piece in (coarse_gaps - fetched) & held[fine]:
            inner = align_in(asset, tf, piece)
            if inner is not None and tradable(asset, tf, inner):
                local.append(DeriveTask(ticker, asset, fine, tf, inner))
    return out, local


# Vendor-scale guesses for the cost of a corporate-action listing (ADR 19): the whole US market
# lists about 60,000 dividends and 2,000 splits a year; a ticker at most a dividend a month.
MARKET_ROWS_PER_YEAR = {"dividends": 60_000, "splits": 2_000}
TICKER_ROWS_PER_YEAR = {"dividends": 12, "splits": 1}
LISTING_PAGE = 5_000  # /stocks/v1 rows per page
ANY_OF_CHUNK = 400  # tickers per ``ticker.any_of`` filter: a URL of a few kilobytes


def _listing_pages(rows: float) -> int:
    return max(1, math.ceil(rows / LISTING_PAGE))


def _actions_for(kind: ActionKind, hole: TimeRange, tickers: list[str]) -> list[ActionsRequest]:
    """The fewest listings for ``tickers``' actions of ``kind`` over ``hole``.

    One request per ticker, ``ticker.any_of`` filters of up to 400 tickers, or one market-wide
    listing of which only ``tickers``' rows are kept: whichever the estimate finds fewest pages.
    """
    years = hole.duration_ms / (365.25 * DAY_MS)
    per_row = TICKER_ROWS_PER_YEAR[kind] * years
    chunks = [tuple(tickers[i:i + ANY_OF_CHUNK]) for i in range(0, len(tickers), ANY_OF_CHUNK)]
    chunk_pages = [_listing_pages(len(c) * per_row) for c in chunks]
    market = _listing_pages(MARKET_ROWS_PER_YEAR[kind] * years)
    single = _listing_pages(per_row)
    if len(tickers) == 1 or len(tickers) * single <= min(sum(chunk_pages), market):
        return [ActionsRequest(t, kind, hole, pages=single) for t in tickers]
    if market < sum(chunk_pages):
        return [ActionsRequest("", kind, hole, tuple(tickers), market_wide=True, pages=market)]
    return [ActionsRequest("", kind, hole, c, pages=p) for c, p in zip(chunks, chunk_pages, strict=True)]


def _plan_actions(
    spec: BackfillSpec, covered: Mapping[ActionsKey, RangeSet], now_ms: int,
) -> list[ActionsRequest]:
    """Dividends and splits of stock tickers from the spec's start up to today, incrementally.

    Tickers missing the same days are asked together (see :func:`_actions_for`).
    """
    out: list[ActionsRequest] = []
    today_end = to_ms(from_ms(now_ms).date()) + DAY_MS
    start = spec.wanted(AssetClass.CRYPTO).start_ms  # UTC days: the endpoints filter by date
    if start >= today_end:
        return out
    stocks = [tk.symbol for tk in spec.tickers if tk.asset_class is AssetClass.STOCKS]
    for kind in ACTION_KINDS:
        if kind not in spec.action_kinds:
            continue
        by_hole: dict[TimeRange, list[str]] = {}
        for ticker in stocks:
            held = covered.get(ActionsKey(ticker, kind), RangeSet())
            for hole in RangeSet.of([TimeRange(start, today_end)]) - held:
                by_hole.setdefault(align_out(AssetClass.CRYPTO, ONE_DAY, hole), []).append(ticker)
        for hole, tickers in by_hole.items():
            out.extend(_actions_for(kind, hole, list(dict.fromkeys(tickers))))
    return out
