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

from mdw.domain import BarBatch, RangeSet, TimeRange
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
