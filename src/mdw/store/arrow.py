"""Bars as Arrow: the columns t, o, h, l, c, v, vw, n, with nulls where the vendor omitted volume."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mdw.domain import BAR_COLUMNS, BarBatch

if TYPE_CHECKING:
    import pyarrow as pa


def to_arrow(batch: BarBatch) -> pa.Table:
    """A ``pyarrow.Table`` with columns t, o, h, l, c, v, vw, n; NaN v/vw and a missing n become nulls."""
    import pyarrow as pa

    return pa.Table.from_arrays(arrow_arrays(batch), names=list(BAR_COLUMNS))


def arrow_arrays(batch: BarBatch) -> list[pa.Array]:
    """The batch's columns as pyarrow arrays, in :data:`~mdw.domain.BAR_COLUMNS` order (NaN v/vw and a
    missing n as nulls)."""
    import pyarrow as pa

    arrays = []
    for name in BAR_COLUMNS:
        col = getattr(batch, name)
        if name in ("v", "vw", "n"):
            mask = np.isnan(col) if name != "n" else col < 0  # n < 0 is MISSING_N
            arrays.append(pa.array(col, mask=mask) if mask.any() else pa.array(col))
        else:
            arrays.append(pa.array(col))
    return arrays
