"""A ``write_bars`` call made ready for the database: checked, grouped per series, diffed.

Written once for every backend: a bad batch is refused here, before any I/O, so nothing of it is
written; the groups come out in a fixed (ticker, timeframe) order so that concurrent writers lock
series in the same order; :func:`diff_bars` is the idempotent-merge rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mdw.domain import BarBatch, MarketBars, RangeSet, TimeRange, n_from_float, otc_from_float, reasons_by_row
from mdw.errors import ValidationError
from mdw.store.base import BarWrite

SOURCES = ("rest", "grouped", "derived", "flatfile", "stream")


@dataclass(frozen=True, slots=True)
class SeriesWrite:
    """All bars and coverage of one (ticker, timeframe) in one ``write_bars`` call.

    ``batch`` is sorted by ``t`` with no duplicates; ``covered`` may be empty.
    """

    ticker: str
    timeframe: str
    batch: BarBatch
    covered: RangeSet

    @property
    def span(self) -> TimeRange | None:
        """``[first t, last t + 1)`` of the bars, or None when there are none."""
        if not len(self.batch):
            return None
        return TimeRange(int(self.batch.t[0]), int(self.batch.t[-1]) + 1)

    @property
    def touched(self) -> RangeSet:
        """Everything this write may change: the bars' span plus the covered ranges."""
        span = self.span
        return self.covered if span is None else self.covered | [span]


def prepare_writes(writes: Sequence[BarWrite]) -> list[SeriesWrite]:
    """Check every batch and group the writes per series, in a stable (ticker, timeframe) order.

    The fixed order makes concurrent writers lock series in the same order (no deadlocks).

    Raises:
        ValidationError: a batch breaks an invariant (the message names the write and the rows),
            or two writes of one call carry the same bar; nothing may be written then.
    """
    groups: dict[tuple[str, str], list[BarWrite]] = {}
    for index, write in enumerate(writes):
        batch = write.batch
        where = f"write {index} ({batch.ticker or '<no ticker>'} {batch.timeframe})"
        if not batch.ticker or batch.ticker != batch.ticker.strip():
            raise ValidationError(f"{where}: the batch has no valid ticker")
        if batch.source not in SOURCES:
            raise ValidationError(f"{where}: source {batch.source!r} is not one of {', '.join(SOURCES)}")
        batch.validate(where)
        groups.setdefault((batch.ticker, str(batch.timeframe)), []).append(write)
    out: list[SeriesWrite] = []
    for (ticker, timeframe), items in sorted(groups.items()):
        covered = RangeSet().union(r for w in items for r in w.covered)
        batches = [w.batch for w in items if len(w.batch)]
        if not batches:
            out.append(SeriesWrite(ticker, timeframe, items[0].batch, covered))
            continue
        batch = BarBatch.concat(batches)
        if len(batches) > 1:
            batch = batch.sorted()
            dup = batch.t[1:] == batch.t[:-1]
            if dup.any():
                first = int(batch.t[1:][dup][0])
                raise ValidationError(
                    f"{ticker} {timeframe}: two writes of one call carry a bar at t={first}", rows=[]
                )
        out.append(SeriesWrite(ticker, timeframe, batch, covered))
    return out


@dataclass(frozen=True, slots=True)
class BarDiff:
    """A batch split against the stored bars of its span."""

    new: BarBatch  # no stored bar at these t: plain inserts
    changed: BarBatch  # stored with other values or source: vendor corrections
    unchanged: int  # identical to what is stored: nothing to write


def diff_bars(
    batch: BarBatch, stored: BarBatch, other_source: npt.NDArray[np.bool_] | None = None
) -> BarDiff:
    """The idempotent-merge rule: which rows of ``batch`` are new, corrected, or already stored.

    ``stored`` holds the stored bars of the batch's span, sorted by ``t``; ``other_source`` marks
    stored rows whose source differs from the batch's. Values compare exactly, with a missing
    value equal only to a missing value (SQL ``IS NOT DISTINCT FROM``).
    """
    if not len(stored):
        return BarDiff(batch, batch.take(slice(0, 0)), 0)
    pos = np.minimum(np.searchsorted(stored.t, batch.t), len(stored) - 1)
    exists = stored.t[pos] == batch.t
    same = exists.copy()
    for name in ("o", "h", "l", "c", "v", "vw", "n", "otc"):
        old, new = getattr(stored, name)[pos], getattr(batch, name)
        if name in ("n", "otc"):
            same &= old == new
        else:
            same &= (old == new) | (np.isnan(old) & np.isnan(new))
    if other_source is not None:
        same &= ~other_source[pos]
    return BarDiff(batch.take(~exists), batch.take(exists & ~same), int(same.sum()))


def prepare_market(bars: MarketBars) -> MarketBars:
    """Check a market write as :func:`prepare_writes` checks batches, as whole columns.

    Returns the rows grouped by ticker in name order (so writers lock series in the same order).

    Raises:
        ValidationError: a ticker is not valid, the source is unknown, or a row breaks an
            invariant (the message names the first ticker's rows); nothing may be written then.
    """
    if bars.source not in SOURCES:
        raise ValidationError(f"market write: source {bars.source!r} is not one of {', '.join(SOURCES)}")
    bars = bars.normalised()
    for name in bars.tickers:
        if not name or name != name.strip():
            raise ValidationError(f"market write: {name!r} is not a valid ticker")
    problems = bars.problems()
    if problems:
        ticker, found = next(iter(problems.items()))
        why = reasons_by_row(found)
        rows = sorted(why)
        shown = "; ".join(f"row {r}: {why[r]}" for r in rows[:20])
        raise ValidationError(
            f"{ticker} {bars.timeframe}: {sum(map(len, problems.values()))} invalid bar(s) in a market write"
            f" ({len(problems)} ticker(s)): {shown}",
            rows=rows, bars=bars.take(np.asarray(rows, dtype=np.int64)).batch(0, len(rows)),
            reasons=[why[r] for r in rows],
        )
    return bars


@dataclass(frozen=True, slots=True)
class MarketDiff:
    """A market write split against the stored bars of its tickers and span (row masks)."""

    new: npt.NDArray[np.bool_]
    changed: npt.NDArray[np.bool_]
    unchanged: int


def diff_market(bars: MarketBars, stored: npt.NDArray[np.float64]) -> MarketDiff:
    """:func:`diff_bars` for a whole market write at once.

    ``bars`` are grouped (:func:`prepare_market`); ``stored`` is the grid of
    ``(code, t, o, h, l, c, v, vw, n, otc, other source)`` rows sorted by code and t, NULL as NaN.
    """
    n = len(bars)
    if not len(stored):
        return MarketDiff(np.ones(n, dtype=bool), np.zeros(n, dtype=bool), 0)
    s_code = stored[:, 0].astype(np.int64)
    s_t = stored[:, 1].astype(np.int64)
    lo = min(int(bars.t.min()), int(s_t.min()))
    width = max(int(bars.t.max()), int(s_t.max())) - lo + 1
    if width * max(1, len(bars.tickers)) >= 2**62:
        raise ValidationError("market write: the bars span too long a time for one write", rows=[])
    key = bars.code * width + (bars.t - lo)
    s_key = s_code * width + (s_t - lo)
    pos = np.minimum(np.searchsorted(s_key, key), len(s_key) - 1)
    exists = s_key[pos] == key
    same = exists.copy()
    for col, name in enumerate(("o", "h", "l", "c", "v", "vw"), start=2):
        old, new = stored[pos, col], getattr(bars, name)
        same &= (old == new) | (np.isnan(old) & np.isnan(new))
    same &= n_from_float(stored[pos, 8]) == bars.n
    same &= otc_from_float(stored[pos, 9]) == bars.otc
    same &= stored[pos, 10] == 0
    return MarketDiff(~exists, exists & ~same, int(same.sum()))
