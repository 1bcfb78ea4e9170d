"""How densely each series trades, as far as the store knows: the planner's reason to cut a gap.

A minute series that trades in every possible minute fills the calendar's pages, so cutting a long
gap at the calendar's count costs no more pages than following ``next_url`` and the pieces run in
parallel. A thin one would pay a page per piece, so it is paged instead. The density is the share
of the possible minutes between a ticker's first and last stored minute bar that hold a bar; it is
known only for tickers whose minute bars are already stored (ADR 0018).

Daily bars likewise: a ticker whose stored daily bars miss no session of its last three held
months is expected in every grouped-daily answer, so grouped requests cost it nothing more; any other
ticker not known to be listed may cost one request of its own (ADR 0006).
"""

from __future__ import annotations

from collections.abc import Mapping

from mdw.backfill.plan import MAX_BASE, BackfillSpec
from mdw.backfill.planner import GROUPED_MARKETS, ONE_DAY, ONE_MINUTE, base_units, floor_window
from mdw.domain import DAY_MS, MINUTE_MS, RangeSet, SeriesKey, TimeRange
from mdw.store.base import Store

RECENT_DAYS = 92  # how far back a ticker's stored daily bars show it trading every session


def needs_density(spec: BackfillSpec) -> bool:
    """Whether a density could change the plan: a minute-based series over more than one page."""
    minute = [tf for tf in spec.timeframes if tf.base == "minute"]
    if not minute:
        return False
    return any(base_units(tk.asset_class, ONE_MINUTE, spec.wanted_for(tk)) > MAX_BASE for tk in spec.tickers)


async def densities(store: Store, spec: BackfillSpec) -> dict[str, float]:
    """Per ticker with stored minute bars: the share of its possible minutes that trade."""
    out: dict[str, float] = {}
    if not needs_density(spec):
        return out
    for tk in spec.tickers:
        if base_units(tk.asset_class, ONE_MINUTE, spec.wanted_for(tk)) <= MAX_BASE:
            continue
        for row in await store.catalog.series(tk.symbol):
            if row.timeframe != str(ONE_MINUTE) or not row.bars or row.first_t is None or row.last_t is None:
                continue
            possible = base_units(tk.asset_class, ONE_MINUTE, TimeRange(row.first_t, row.last_t + MINUTE_MS))
            if possible > 0:
                out[tk.symbol] = min(1.0, row.bars / possible)
    return out


async def trades_daily(
    store: Store, spec: BackfillSpec, coverage: Mapping[SeriesKey, RangeSet],
) -> set[str]:
    """The tickers of ``spec`` (not universe members) whose stored daily bars miss no session of
    the last ``RECENT_DAYS`` days the ledger holds of them (one small read of daily bars each)."""
    out: set[str] = set()
    if not spec.grouped_daily or ONE_DAY not in spec.timeframes:
        return out
    for tk in spec.tickers:
        held = coverage.get(SeriesKey(tk.symbol, ONE_DAY))
        if tk.symbol in spec.spans or tk.asset_class not in GROUPED_MARKETS or not held:
            continue
        last = held.ranges[-1]
        start = floor_window(tk.asset_class, ONE_DAY, max(last.start_ms, last.end_ms - RECENT_DAYS * DAY_MS))
        recent = TimeRange(max(start, last.start_ms), last.end_ms)
        sessions = base_units(tk.asset_class, ONE_DAY, recent)
        if sessions and len(await store.bars(tk.symbol, ONE_DAY, recent.start_ms, recent.end_ms)) >= sessions:
            out.add(tk.symbol)
    return out
