"""The template both backends fill in: invariants here, primitives in ``sqlite.py``/``postgres.py``.

``write_bars`` validates and groups before any I/O (a bad batch writes nothing), then hands the
backend ready :class:`~mdw.store.ledger.SeriesWrite` groups to commit with their coverage in one
transaction. ``gaps`` and ``bars_arrow`` are derived from backend reads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from mdw.calendar import tradable
from mdw.domain import BAR_COLUMNS, AssetClass, BarBatch, RangeSet, Timeframe, TimeRange
from mdw.store.base import BarWrite, Dataset, WriteResult
from mdw.store.ledger import SeriesWrite, now_ms, prepare_writes


class StoreBase(ABC):
    """Shared behaviour of every backend; see :class:`mdw.store.base.Store` for the contract."""

    url: str

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def bars(self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int) -> BarBatch: ...

    @abstractmethod
    async def coverage(self, ticker: str, dataset: Dataset, timeframe: str = "") -> RangeSet: ...

    @abstractmethod
    async def _write_series(self, series: list[SeriesWrite], fetched_at_ms: int) -> WriteResult:
        """Commit the bars and coverage of every group in ONE transaction."""

    async def write_bars(
        self, writes: Sequence[BarWrite], *, fetched_at_ms: int | None = None
    ) -> WriteResult:
        """Validate every batch, then commit all bars and their coverage in one transaction.

        Raises:
            ValidationError: a batch breaks an invariant; nothing was written.
            StoreError: the database failed; nothing was written.
        """
        series = prepare_writes(writes)  # before any I/O: a bad batch must write nothing
        if not series:
            return WriteResult()
        return await self._write_series(series, now_ms() if fetched_at_ms is None else fetched_at_ms)

    async def gaps(
        self, ticker: str, timeframe: Timeframe, asset_class: AssetClass, rng: TimeRange
    ) -> RangeSet:
        """The tradable parts of ``rng`` that the bars ledger does not cover."""
        held = await self.coverage(ticker, Dataset.BARS, str(timeframe))
        return tradable(AssetClass(asset_class), timeframe, rng) - held

    async def bars_arrow(self, ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int) -> Any:
        """The rows of :meth:`bars` as a ``pyarrow.Table`` (nulls where v/vw are missing)."""
        return to_arrow(await self.bars(ticker, timeframe, start_ms, end_ms))


def to_arrow(batch: BarBatch) -> Any:
    """A ``pyarrow.Table`` with columns t, o, h, l, c, v, vw, n; NaN v/vw become nulls."""
    import pyarrow as pa

    return pa.Table.from_arrays(arrow_arrays(batch), names=list(BAR_COLUMNS))


def arrow_arrays(batch: BarBatch) -> list[Any]:
    """The batch's columns as pyarrow arrays, in :data:`~mdw.domain.BAR_COLUMNS` order (NaN v/vw as nulls)."""
    import pyarrow as pa

    arrays = []
    for name in BAR_COLUMNS:
        col = getattr(batch, name)
        if name in ("v", "vw"):
            mask = np.isnan(col)
            arrays.append(pa.array(col, mask=mask) if mask.any() else pa.array(col))
        else:
            arrays.append(pa.array(col))
    return arrays


def as_timeframe(timeframe: Timeframe | str) -> Timeframe:
    """Accept ``"1m"`` as well as ``Timeframe.parse("1m")`` at the read API."""
    return Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe


def tf_text(timeframe: Timeframe | str) -> str:
    """The stored spelling of a timeframe (``1m``, ``4h``, ``1d``)."""
    return str(Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe)


def check_range(start_ms: int, end_ms: int) -> TimeRange:
    """A read/delete range, refusing an end before its start."""
    return TimeRange(int(start_ms), int(end_ms))
